// Integration-test harness: runs real Shoal daemons (node dist/src/cli/main.js
// daemon) in front of the host's dockerd, each on its own temp dir, socket and
// etcd ports, and drives them with the real docker CLI or raw HTTP.
//
//   const shoal = await startShoal({ hostname: 'node-1' });
//   await shoal.docker(['swarm', 'init']);          // {code, stdout, stderr}
//   await shoal.api('GET', '/v1.41/services');       // {status, headers, json, text}
//   await waitFor('3 running', async () => ..., 60_000);
//   const etcd = shoal.etcdClient();                 // etcd3 client with the daemon's certificates (closed by cleanup)
//   await shoal.cleanup();
import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { request, type IncomingHttpHeaders } from 'node:http';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Etcd3 } from 'etcd3';
import { alive } from '../../src/common/proc';
import { daemonEnv, daemonNodeFlags } from '../../src/common/node-flags';

export const HOST_ENGINE_SOCKET = '/var/run/docker.sock';
export const DOCKER_CLIS = ['/usr/bin/docker', '/usr/local/bin/docker'] as const;
export type DockerCli = (typeof DOCKER_CLIS)[number];
// dist/test/helpers/daemon.js -> dist/src/cli/main.js
export const SHOAL_MAIN = resolve(__dirname, '../../src/cli/main.js');

export interface DockerResult { code: number; stdout: string; stderr: string }
export interface DockerOptions { cli?: DockerCli; input?: string; timeoutMs?: number }
// `json` is the parsed body when it is JSON, else undefined.
export interface ApiResult { status: number; headers: IncomingHttpHeaders; json: any; text: string }

export interface StartOptions {
  hostname?: string;
  engine?: string;            // default unix:///var/run/docker.sock
  readyTimeoutMs?: number;    // how long to wait for _ping (default 30 s)
  logLevel?: string;          // passed as --log-level (default: the daemon's own, or SHOAL_LOG_LEVEL)
  extraArgs?: string[];
}

export interface ShoalHandle {
  readonly socket: string;      // the daemon's API socket path (use unix://<socket>)
  readonly dataRoot: string;
  readonly dir: string;         // temp dir holding socket, data root, daemon.log
  readonly pid: number;         // the current daemon process (changes on restart)
  readonly etcdClientUrl: string;
  readonly etcdPeerUrl: string;
  // etcd accepts only the daemon's certificate (the swarm CA's): these are its
  // files under DATAROOT/certificates, present once the node is in a swarm.
  etcdTlsFiles(): { caFile: string; certFile: string; keyFile: string };
  etcdClient(): Etcd3;                                   // an etcd3 client on etcdClientUrl with those; closed by cleanup()
  etcdPid(): number | undefined;                         // from DATAROOT/etcd/etcd.pid, if that process lives
  nodeIds(): string[];                                   // node IDs this daemon has had
  docker(args: string[], opts?: DockerOptions): Promise<DockerResult>;       // docker -H unix://socket ...
  dockerEngine(args: string[], opts?: DockerOptions): Promise<DockerResult>; // docker against the engine under it
  api(method: string, path: string, body?: unknown, opts?: { timeoutMs?: number; headers?: Record<string, string> }): Promise<ApiResult>;
  logs(): string;                                        // everything the daemon wrote to stderr/stdout
  running(): boolean;
  stop(): Promise<void>;        // SIGTERM, wait (then SIGKILL after 40 s)
  kill9(): Promise<void>;       // SIGKILL the daemon only (its etcd survives, as after a crash)
  restart(): Promise<void>;     // stop if running, start again on the same data root, socket and ports
  cleanup(): Promise<void>;     // stop, kill a leftover etcd, remove this daemon's task containers, rm the temp dir
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// Polls fn every intervalMs until it returns something truthy and returns it.
// Errors thrown by fn count as "not yet"; at the deadline it throws with
// `what` and the last value or error seen.
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false | null>, timeoutMs: number, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (err) {
      last = err instanceof Error ? `error: ${err.message}` : err;
    }
    if (Date.now() >= deadline) {
      let shown: string;
      try { shown = typeof last === 'string' ? last : JSON.stringify(last); } catch { shown = String(last); }
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last value: ${shown?.slice(0, 2000)}${liveLogTails()}`);
    }
    await sleep(Math.min(intervalMs, Math.max(0, deadline - Date.now())));
  }
}

// The docker CLI's environment without anything that could point it elsewhere.
export function dockerEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of ['DOCKER_HOST', 'DOCKER_CONTEXT', 'DOCKER_TLS_VERIFY', 'DOCKER_CERT_PATH', 'DOCKER_API_VERSION']) delete env[k];
  return { ...env, DOCKER_CLI_HINTS: 'false', ...extra };
}

function defaultCli(): DockerCli {
  return existsSync('/usr/bin/docker') ? '/usr/bin/docker' : '/usr/local/bin/docker';
}

// Runs the docker CLI against `host` (unix:///...). Never rejects: a time-out
// kills the CLI and returns code 124 with a note on stderr.
export function runDocker(host: string, args: string[], opts: DockerOptions & { env?: Record<string, string> } = {}): Promise<DockerResult> {
  const cli = opts.cli ?? defaultCli();
  const timeoutMs = opts.timeoutMs ?? 120_000;
  return new Promise((resolveRun) => {
    const child = spawn(cli, ['-H', host, ...args], { stdio: [opts.input !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'], env: dockerEnv(opts.env) });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout!.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, timeoutMs);
    child.on('error', (err) => { clearTimeout(timer); resolveRun({ code: 127, stdout, stderr: `${stderr}\n[harness] cannot run ${cli}: ${err.message}` }); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) resolveRun({ code: 124, stdout, stderr: `${stderr}\n[harness] docker ${args.join(' ')} timed out after ${timeoutMs} ms` });
      else resolveRun({ code: code ?? (signal ? 128 : -1), stdout, stderr });
    });
    if (opts.input !== undefined) child.stdin!.end(opts.input);
  });
}

// The docker CLI straight at the host's dockerd (not through Shoal).
export function dockerEngine(args: string[], opts: DockerOptions = {}): Promise<DockerResult> {
  return runDocker(`unix://${HOST_ENGINE_SOCKET}`, args, opts);
}

// One HTTP request over a unix socket. Bodies that are not strings or Buffers
// are sent as JSON.
export function unixRequest(socketPath: string, method: string, path: string, body?: unknown, opts: { timeoutMs?: number; headers?: Record<string, string> } = {}): Promise<ApiResult> {
  const payload = body === undefined ? undefined : typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  const headers: Record<string, string> = { Host: 'docker', ...(payload !== undefined ? { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(payload)) } : {}), ...opts.headers };
  const timeoutMs = opts.timeoutMs ?? 30_000;
  return new Promise((resolveReq, reject) => {
    const req = request({ socketPath, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        if (text.length > 0) { try { json = JSON.parse(text); } catch { json = undefined; } }
        resolveReq({ status: res.statusCode ?? 0, headers: res.headers, json, text });
      });
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${path} on ${socketPath}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}

// The host engine's API (for checks behind Shoal's back).
export function engineApi(method: string, path: string, body?: unknown): Promise<ApiResult> {
  return unixRequest(HOST_ENGINE_SOCKET, method, path, body);
}

export async function freePort(): Promise<number> {
  const s = await listenAny();
  const p = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

function listenAny(): Promise<Server> {
  return new Promise((resolveListen, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => resolveListen(s));
  });
}

// Two distinct free ports (both held open while choosing).
async function twoFreePorts(): Promise<[number, number]> {
  const a = await listenAny();
  const b = await listenAny();
  const ports: [number, number] = [(a.address() as { port: number }).port, (b.address() as { port: number }).port];
  await Promise.all([a, b].map((s) => new Promise<void>((r) => s.close(() => r()))));
  return ports;
}


// Every daemon started here; killed if the test process exits without cleanup.
const live = new Set<Handle>();

// The end of every live daemon's log, for a timeout's message: cleanup
// removes the log with the test's directory, and a timeout is how most
// failures here show.
function liveLogTails(lines = 25): string {
  let out = '';
  for (const h of live) {
    let text: string;
    try { text = readFileSync(h.logPath, 'utf8'); } catch { continue; }
    const tail = text.trimEnd().split('\n').slice(-lines).map((l) => (l.length > 400 ? `${l.slice(0, 400)}…` : l));
    out += `\n--- last ${tail.length} lines of ${h.logPath} ---\n${tail.join('\n')}`;
  }
  return out;
}
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  const killAll = (): void => { for (const h of live) h.killSync(); };
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    // Re-raised only if nobody else handles the signal (the bench cleans up itself).
    process.once(sig, () => { killAll(); if (process.listenerCount(sig) === 0) process.kill(process.pid, sig); });
  }
}

class Handle implements ShoalHandle {
  private child?: ChildProcess;
  private exited?: Promise<void>;
  private readonly seenNodeIds = new Set<string>();
  private readonly etcdClients: Etcd3[] = [];
  readonly socket: string;
  readonly dataRoot: string;
  readonly logPath: string;
  readonly dockerConfig: string;

  constructor(
    readonly dir: string,
    readonly etcdClientUrl: string,
    readonly etcdPeerUrl: string,
    private readonly opts: StartOptions,
  ) {
    this.socket = join(dir, 'shoal.sock');
    this.dataRoot = join(dir, 'data');
    this.logPath = join(dir, 'daemon.log');
    this.dockerConfig = join(dir, 'docker-config');
    mkdirSync(this.dockerConfig, { recursive: true });
  }

  get pid(): number { return this.child?.pid ?? 0; }
  get engine(): string { return this.opts.engine ?? `unix://${HOST_ENGINE_SOCKET}`; }
  private get engineSocket(): string { return this.engine.replace(/^unix:\/\//, ''); }

  running(): boolean { return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null; }

  etcdPid(): number | undefined {
    try {
      const pid = Number(readFileSync(join(this.dataRoot, 'etcd', 'etcd.pid'), 'utf8').trim());
      return alive(pid) ? pid : undefined;
    } catch { return undefined; }
  }

  nodeIds(): string[] { return [...this.seenNodeIds]; }

  etcdTlsFiles(): { caFile: string; certFile: string; keyFile: string } {
    const certs = join(this.dataRoot, 'certificates');
    return { caFile: join(certs, 'swarm-root-ca.crt'), certFile: join(certs, 'etcd.crt'), keyFile: join(certs, 'etcd.key') };
  }

  etcdClient(): Etcd3 {
    const f = this.etcdTlsFiles();
    const client = new Etcd3({
      hosts: this.etcdClientUrl,
      dialTimeout: 5_000,
      credentials: { rootCertificate: readFileSync(f.caFile), certChain: readFileSync(f.certFile), privateKey: readFileSync(f.keyFile) },
    });
    this.etcdClients.push(client);
    return client;
  }

  logs(): string {
    try { return readFileSync(this.logPath, 'utf8'); } catch { return ''; }
  }

  private logTail(lines = 40): string {
    return this.logs().trimEnd().split('\n').slice(-lines).join('\n');
  }

  async start(): Promise<void> {
    if (!existsSync(SHOAL_MAIN)) throw new Error(`${SHOAL_MAIN} does not exist: run \`npm run build\` first`);
    if (this.running()) throw new Error('daemon already running');
    const args = [
      ...daemonNodeFlags(), SHOAL_MAIN, 'daemon',
      '-H', `unix://${this.socket}`,
      '--data-root', this.dataRoot,
      '--engine', this.engine,
      '--etcd-client-url', this.etcdClientUrl,
      '--etcd-peer-url', this.etcdPeerUrl,
      ...(this.opts.hostname ? ['--hostname', this.opts.hostname] : []),
      ...(this.opts.logLevel ? ['--log-level', this.opts.logLevel] : []),
      ...(this.opts.extraArgs ?? []),
    ];
    const fd = openSync(this.logPath, 'a');
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, args, { stdio: ['ignore', fd, fd], env: { ...process.env, ...daemonEnv() } });
    } finally {
      closeSync(fd);
    }
    this.child = child;
    this.exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.once('error', () => undefined);
    live.add(this);
    installExitHook();

    const deadlineMs = this.opts.readyTimeoutMs ?? 30_000;
    const deadline = Date.now() + deadlineMs;
    let lastErr = '';
    for (;;) {
      if (!this.running()) {
        throw new Error(`shoal daemon exited (code ${child.exitCode}, signal ${child.signalCode}) before answering _ping on ${this.socket}; log:\n${this.logTail()}`);
      }
      try {
        const r = await unixRequest(this.socket, 'GET', '/_ping', undefined, { timeoutMs: 2_000 });
        if (r.status === 200) break;
        lastErr = `status ${r.status}: ${r.text}`;
      } catch (err) { lastErr = (err as Error).message; }
      if (Date.now() >= deadline) {
        await this.stop();
        throw new Error(`shoal daemon did not answer _ping on ${this.socket} within ${deadlineMs} ms (last: ${lastErr}); log:\n${this.logTail()}`);
      }
      await sleep(100);
    }
    await this.recordNodeId();
  }

  // Remembers the node ID the daemon reports (for cleanup of task containers).
  private async recordNodeId(): Promise<void> {
    try {
      const r = await unixRequest(this.socket, 'GET', '/info', undefined, { timeoutMs: 5_000 });
      const id = (r.json as { Swarm?: { NodeID?: string } } | undefined)?.Swarm?.NodeID;
      if (id) this.seenNodeIds.add(id);
    } catch { /* not answering */ }
  }

  private nodeIdFromCert(): void {
    try {
      const cert = new X509Certificate(readFileSync(join(this.dataRoot, 'certificates', 'swarm-node.crt')));
      const cn = /(?:^|\n)CN=([^\n]+)/.exec(cert.subject)?.[1];
      if (cn) this.seenNodeIds.add(cn.trim());
    } catch { /* no certificate */ }
  }

  async docker(args: string[], opts: DockerOptions = {}): Promise<DockerResult> {
    const r = await runDocker(`unix://${this.socket}`, args, { ...opts, env: { DOCKER_CONFIG: this.dockerConfig } });
    if (r.code === 0 && args.includes('swarm') && (args.includes('init') || args.includes('join'))) await this.recordNodeId();
    return r;
  }

  dockerEngine(args: string[], opts: DockerOptions = {}): Promise<DockerResult> {
    return runDocker(this.engine, args, { ...opts, env: { DOCKER_CONFIG: this.dockerConfig } });
  }

  async api(method: string, path: string, body?: unknown, opts?: { timeoutMs?: number; headers?: Record<string, string> }): Promise<ApiResult> {
    const r = await unixRequest(this.socket, method, path, body, opts);
    if (r.status === 200 && method.toUpperCase() === 'POST' && /\/swarm\/(init|join)$/.test(path.split('?')[0]!)) await this.recordNodeId();
    return r;
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || !this.running()) { live.delete(this); return; }
    child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      this.exited!.then(() => false),
      new Promise<boolean>((r) => { timer = setTimeout(() => r(true), 40_000); }),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      process.stderr.write(`[harness] shoal daemon ${child.pid} ignored SIGTERM for 40 s; killing it\n`);
      child.kill('SIGKILL');
      await this.exited;
    }
    live.delete(this);
  }

  async kill9(): Promise<void> {
    const child = this.child;
    if (!child || !this.running()) return;
    child.kill('SIGKILL');
    await this.exited;
    live.delete(this);
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  // Synchronous last resort (process exit): the daemon and its etcd.
  killSync(): void {
    const etcd = this.etcdPid();
    if (this.running()) { try { this.child!.kill('SIGKILL'); } catch { /* gone */ } }
    if (etcd && this.ownsEtcd(etcd)) { try { process.kill(etcd, 'SIGKILL'); } catch { /* gone */ } }
  }

  private ownsEtcd(pid: number): boolean {
    try { return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(this.dataRoot); } catch { return false; }
  }

  async cleanup(): Promise<void> {
    for (const c of this.etcdClients.splice(0)) c.close();
    if (this.running()) await this.recordNodeId();
    this.nodeIdFromCert();
    await this.stop();
    // An etcd the daemon left behind (after kill9, or a daemon that died).
    const etcd = this.etcdPid();
    if (etcd && this.ownsEtcd(etcd)) {
      try { process.kill(etcd, 'SIGTERM'); } catch { /* gone */ }
      const deadline = Date.now() + 10_000;
      while (alive(etcd) && Date.now() < deadline) await sleep(100);
      if (alive(etcd)) { try { process.kill(etcd, 'SIGKILL'); } catch { /* gone */ } }
    }
    for (const id of this.seenNodeIds) await removeNodeContainers(this.engineSocket, id);
    if (process.env.SHOAL_KEEP_TEST_DIRS === '1') {
      process.stderr.write(`[harness] keeping ${this.dir} (SHOAL_KEEP_TEST_DIRS=1)\n`);
      return;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

// Force-removes every container on the engine labelled as a task of nodeId.
export async function removeNodeContainers(engineSocket: string, nodeId: string): Promise<number> {
  const filters = encodeURIComponent(JSON.stringify({ label: [`com.docker.swarm.node.id=${nodeId}`] }));
  const list = await unixRequest(engineSocket, 'GET', `/containers/json?all=1&filters=${filters}`);
  const ids = ((list.json as Array<{ Id: string }> | undefined) ?? []).map((c) => c.Id);
  for (let i = 0; i < ids.length; i += 8) {
    await Promise.all(ids.slice(i, i + 8).map((id) => unixRequest(engineSocket, 'DELETE', `/containers/${id}?force=1&v=1`, undefined, { timeoutMs: 60_000 }).catch(() => undefined)));
  }
  return ids.length;
}

// Starts a Shoal daemon on fresh temp dirs and free ports; resolves once it
// answers _ping on its socket.
export async function startShoal(opts: StartOptions = {}): Promise<ShoalHandle> {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-it-'));
  const [client, peer] = await twoFreePorts();
  const h = new Handle(dir, `https://127.0.0.1:${client}`, `https://127.0.0.1:${peer}`, opts);
  try {
    await h.start();
  } catch (err) {
    await h.cleanup().catch(() => undefined);
    throw err;
  }
  return h;
}

// Whether the host's dockerd answers (integration prerequisites).
export async function hostEngineAnswers(): Promise<boolean> {
  try { return (await unixRequest(HOST_ENGINE_SOCKET, 'GET', '/_ping', undefined, { timeoutMs: 3_000 })).status === 200; } catch { return false; }
}
