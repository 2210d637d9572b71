// The lab's image registry: Debian's docker-registry (distribution 2.8) on the
// bridge address, with htpasswd (bcrypt) auth. Hosts trust it as an insecure
// (plain HTTP) registry.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, createReadStream, createWriteStream, mkdirSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { join } from 'node:path';
import { NETNS_PREFIX, REGISTRY_PORT, REGISTRY_USER, bridgeAddress, type HostLayout, type RegistryLayout } from './layout';
import type { RegistryState } from './state';
import { allPids, alive, cmdline, killPid, must, sleep, until } from './sys';

export const REGISTRY_BINARY = '/usr/bin/docker-registry';

// The registry's configuration (pure).
export function registryConfig(r: RegistryLayout): string {
  return [
    'version: 0.1',
    'log:',
    '  level: warn',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${JSON.stringify(r.data)}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: ${JSON.stringify(`${bridgeAddress()}:${REGISTRY_PORT}`)}`,
    `  secret: ${JSON.stringify(randomBytes(16).toString('hex'))}`,
    'auth:',
    '  htpasswd:',
    '    realm: shoal-lab',
    `    path: ${JSON.stringify(r.htpasswd)}`,
    '',
  ].join('\n');
}

export async function startRegistry(r: RegistryLayout): Promise<RegistryState> {
  mkdirSync(r.data, { recursive: true, mode: 0o700 });
  const password = randomBytes(12).toString('hex');
  const line = await must('htpasswd', ['-Bbn', REGISTRY_USER, password]);
  writeFileSync(r.htpasswd, `${line.trim()}\n`, { mode: 0o600 });
  writeFileSync(r.config, registryConfig(r), { mode: 0o600 });
  const fd = openSync(r.log, 'a');
  let pid: number | undefined;
  try {
    const child = spawn(REGISTRY_BINARY, ['serve', r.config], { detached: true, stdio: ['ignore', fd, fd] });
    child.on('error', () => undefined);
    child.unref();
    pid = child.pid;
  } finally { closeSync(fd); }
  if (!pid) throw new Error(`cannot start ${REGISTRY_BINARY}`);
  const started = pid;
  await until(`the registry on ${r.address}`, async () => {
    if (!alive(started)) throw new Error(`docker-registry exited; see ${r.log}`);
    return (await httpStatus(`http://${r.address}/v2/`)) === 401;
  }, 20_000, 200);
  return { user: REGISTRY_USER, password, pid };
}

function httpStatus(url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve) => {
    const req = request(url, { headers }, (res) => { res.resume(); resolve(res.statusCode ?? 0); });
    req.setTimeout(2_000, () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(0));
    req.end();
  });
}

// The lab's registry processes: the one in the state file and any whose command line names a lab config.
export function registryPids(statePid?: number): number[] {
  const isOurs = (p: number): boolean => { const c = cmdline(p); return c.startsWith(`${REGISTRY_BINARY} serve `) && c.endsWith(`/${NETNS_PREFIX}registry.yml`); };
  const found = new Set(allPids().filter(isOurs));
  if (statePid && alive(statePid) && isOurs(statePid)) found.add(statePid);
  return [...found];
}

export async function stopRegistry(statePid?: number): Promise<void> {
  const pids = registryPids(statePid);
  for (const p of pids) killPid(p, 'SIGTERM');
  const deadline = Date.now() + 5_000;
  while (pids.some(alive) && Date.now() < deadline) await sleep(100);
  for (const p of pids.filter(alive)) killPid(p);
}

// --- the image every host gets ---------------------------------------------------------------

function dockerCall(socketPath: string, method: string, path: string, opts: { headers?: Record<string, string>; body?: NodeJS.ReadableStream; timeoutMs?: number; saveTo?: string } = {}): Promise<{ status: number; text: string }> {
  const timeoutMs = opts.timeoutMs ?? 120_000;
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path, headers: { Host: 'docker', ...opts.headers } }, (res) => {
      if (opts.saveTo && res.statusCode === 200) {
        pipeline(res, createWriteStream(opts.saveTo)).then(() => resolve({ status: 200, text: '' }), reject);
        return;
      }
      let text = '';
      res.on('data', (c: Buffer) => { text += c.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${path}: no answer within ${timeoutMs / 1000} s`)));
    req.on('error', reject);
    if (opts.body) opts.body.pipe(req); else req.end();
  });
}

// Docker's JSON-lines progress streams report failure in an "error" field with status 200.
function streamError(text: string): string | undefined {
  for (const line of text.split('\n')) {
    try { const m = JSON.parse(line) as { error?: string }; if (m.error) return m.error; } catch { /* not a JSON line */ }
  }
  return undefined;
}

function splitRef(ref: string): { repo: string; tag: string } {
  const slash = ref.lastIndexOf('/');
  const colon = ref.lastIndexOf(':');
  return colon > slash ? { repo: ref.slice(0, colon), tag: ref.slice(colon + 1) } : { repo: ref, tag: 'latest' };
}

// X-Registry-Auth: URL-safe base64 with padding, as the docker CLI sends it (dockerd refuses it unpadded).
export const registryAuthHeader = (reg: RegistryState, address: string): string =>
  Buffer.from(JSON.stringify({ username: reg.user, password: reg.password, serveraddress: address })).toString('base64').replace(/\+/g, '-').replace(/\//g, '_');

// Copies `image` from the machine's dockerd into every host and pushes it to
// the registry from the first one; returns the pushed reference, or undefined
// when the machine has no such image.
export async function seedImage(machineSocket: string, image: string, hosts: HostLayout[], reg: RegistryState, r: RegistryLayout, labDir: string): Promise<string | undefined> {
  const tar = join(labDir, 'image.tar');
  try {
    const got = await dockerCall(machineSocket, 'GET', `/images/get?names=${encodeURIComponent(image)}`, { saveTo: tar });
    if (got.status === 404) return undefined;
    if (got.status !== 200) throw new Error(`saving ${image} from the machine's dockerd: ${got.status} ${got.text.trim()}`);
    for (const h of hosts) {
      const load = await dockerCall(h.dockerSocket, 'POST', '/images/load?quiet=1', { headers: { 'Content-Type': 'application/x-tar' }, body: createReadStream(tar) });
      const err = load.status === 200 ? streamError(load.text) : `${load.status} ${load.text.trim()}`;
      if (err) throw new Error(`loading ${image} into ${h.name}: ${err}`);
    }
  } finally { rmSync(tar, { force: true }); }
  const { repo, tag } = splitRef(image);
  const target = `${r.address}/${repo}`;
  const first = hosts[0]!;
  const tagged = await dockerCall(first.dockerSocket, 'POST', `/images/${encodeURIComponent(image)}/tag?repo=${encodeURIComponent(target)}&tag=${encodeURIComponent(tag)}`);
  if (tagged.status !== 201) throw new Error(`tagging ${image} as ${target}:${tag}: ${tagged.status} ${tagged.text.trim()}`);
  const pushed = await dockerCall(first.dockerSocket, 'POST', `/images/${encodeURIComponent(target)}/push?tag=${encodeURIComponent(tag)}`, { headers: { 'X-Registry-Auth': registryAuthHeader(reg, r.address) } });
  const err = pushed.status === 200 ? streamError(pushed.text) : `${pushed.status} ${pushed.text.trim()}`;
  if (err) throw new Error(`pushing ${target}:${tag}: ${err}`);
  return `${target}:${tag}`;
}
