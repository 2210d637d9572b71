// A second dockerd just for the bench, in its own network namespace (the
// real Docker Swarm anchor). Recipe from FIELD-NOTES: `ip netns add`, a veth
// pair for an address, `nsenter --net=...` (not `ip netns exec`, which
// remounts /sys), its own data root, exec root, pid file, socket and
// containerd namespaces. The namespace has no default route: nothing it does
// leaves the machine.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, closeSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from '../test/helpers/daemon';
import { alive, cmdline, exec, http, mustExec, sleep } from './util';

export const BENCH_ROOT = '/var/lib/shoal-bench';
const PREFIX = 'shoalbench-';
// RFC 2544 benchmarking range: not used by this machine or Docker's pools.
const HOST_ADDR = '198.18.0.1';
export const NETNS_ADDR = '198.18.0.2';

export interface BenchDockerd {
  name: string;
  socket: string;
  pid: number;
  addr: string;
  dir: string;
  stop(): Promise<void>;
}

interface Layout { name: string; dir: string; data: string; execRoot: string; pidfile: string; socket: string; log: string; vethHost: string; vethNs: string }

function layout(name: string): Layout {
  const dir = join(BENCH_ROOT, name);
  const id = name.slice(PREFIX.length);
  return {
    name, dir,
    data: join(dir, 'data'),
    execRoot: join(dir, 'exec'),
    pidfile: join(dir, 'dockerd.pid'),
    socket: join(dir, 'docker.sock'),
    log: join(dir, 'dockerd.log'),
    vethHost: `sbh${id}`.slice(0, 15),
    vethNs: `sbn${id}`.slice(0, 15),
  };
}

function readPid(file: string): number | undefined {
  try { const n = Number(readFileSync(file, 'utf8').trim()); return n > 0 ? n : undefined; } catch { return undefined; }
}

async function killAndWait(pid: number | undefined, want: string, graceMs: number): Promise<void> {
  if (!pid || !alive(pid) || !cmdline(pid).includes(want)) return;
  try { process.kill(pid, 'SIGTERM'); } catch { return; }
  const deadline = Date.now() + graceMs;
  while (alive(pid) && Date.now() < deadline) await sleep(100);
  if (alive(pid)) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
  const hard = Date.now() + 10_000;
  while (alive(pid) && Date.now() < hard) await sleep(100);
}

function mountsUnder(prefix: string): string[] {
  let text = '';
  try { text = readFileSync('/proc/self/mountinfo', 'utf8'); } catch { return []; }
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const mp = line.split(' ')[4];
    if (!mp) continue;
    const path = mp.replace(/\\040/g, ' ');
    if (path === prefix || path.startsWith(`${prefix}/`)) out.push(path);
  }
  return out.sort((a, b) => b.length - a.length); // deepest first
}

// Tears down everything one bench dockerd made: the daemon, its containerd
// and shims, mounts, the namespace, the veth, the directories.
async function teardown(l: Layout): Promise<void> {
  await killAndWait(readPid(l.pidfile), 'dockerd', 30_000);
  await killAndWait(readPid(join(l.execRoot, 'containerd', 'containerd.pid')), 'containerd', 10_000);
  // Shims of containers that outlived their daemon (kill -9 or a crash).
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const c = cmdline(Number(e));
    if (c.startsWith('/usr/bin/containerd-shim') && c.includes(` -namespace ${l.name} `)) { try { process.kill(Number(e), 'SIGKILL'); } catch { /* gone */ } }
  }
  for (const m of mountsUnder(l.dir)) await exec('umount', ['-l', m], { timeoutMs: 10_000 });
  if (existsSync(`/var/run/netns/${l.name}`)) await exec('ip', ['netns', 'del', l.name], { timeoutMs: 10_000 });
  await exec('ip', ['link', 'del', l.vethHost], { timeoutMs: 10_000 }); // usually gone with the namespace
  rmSync(l.dir, { recursive: true, force: true });
}

// Removes what earlier bench runs left behind (their process is gone).
export async function cleanStale(): Promise<void> {
  const names = new Set<string>();
  try { for (const n of readdirSync('/var/run/netns')) if (n.startsWith(PREFIX)) names.add(n); } catch { /* none */ }
  try { for (const n of readdirSync(BENCH_ROOT)) if (n.startsWith(PREFIX)) names.add(n); } catch { /* none */ }
  for (const name of names) {
    const owner = Number(name.slice(PREFIX.length));
    if (owner && owner !== process.pid && alive(owner) && cmdline(owner).includes('bench')) continue; // another bench is running
    process.stderr.write(`[bench] removing leftovers of an earlier run: ${name}\n`);
    await teardown(layout(name));
  }
  // A leftover host-side veth holding our address (its namespace already gone).
  const addrs = await exec('ip', ['-o', 'addr', 'show', 'to', `${HOST_ADDR}/32`]);
  for (const line of addrs.stdout.split('\n')) {
    const dev = /^\d+:\s+(\S+)/.exec(line)?.[1]?.split('@')[0];
    if (dev?.startsWith('sbh')) await exec('ip', ['link', 'del', dev]);
  }
}

export async function startBenchDockerd(opts: { env?: Record<string, string>; readyTimeoutMs?: number } = {}): Promise<BenchDockerd> {
  const l = layout(`${PREFIX}${process.pid}`);
  await cleanStale();
  mkdirSync(l.data, { recursive: true });
  mkdirSync(l.execRoot, { recursive: true });
  let started = false;
  const stop = async (): Promise<void> => { await teardown(l); };
  try {
    await mustExec('ip', ['netns', 'add', l.name]);
    const ns = ['-n', l.name];
    await mustExec('ip', ['link', 'add', l.vethHost, 'type', 'veth', 'peer', 'name', l.vethNs]);
    await mustExec('ip', ['link', 'set', l.vethNs, 'netns', l.name]);
    await mustExec('ip', ['addr', 'add', `${HOST_ADDR}/30`, 'dev', l.vethHost]);
    await mustExec('ip', ['link', 'set', l.vethHost, 'up']);
    await mustExec('ip', [...ns, 'addr', 'add', `${NETNS_ADDR}/30`, 'dev', l.vethNs]);
    await mustExec('ip', [...ns, 'link', 'set', l.vethNs, 'up']);
    await mustExec('ip', [...ns, 'link', 'set', 'lo', 'up']);

    const fd = openSync(l.log, 'a');
    const child = spawn('nsenter', [
      `--net=/var/run/netns/${l.name}`, 'dockerd',
      '--data-root', l.data, '--exec-root', l.execRoot, '--pidfile', l.pidfile,
      '-H', `unix://${l.socket}`,
      '--containerd-namespace', l.name, '--containerd-plugins-namespace', `${l.name}p`,
    ], { stdio: ['ignore', fd, fd], detached: true, env: { ...process.env, ...opts.env } });
    closeSync(fd);
    child.unref();
    started = true;
    const readyMs = opts.readyTimeoutMs ?? 60_000;
    await waitFor('the bench dockerd to answer _ping', async () => {
      if (child.exitCode !== null) throw new Error(`dockerd exited with ${child.exitCode}; log ${l.log}:\n${readFileSync(l.log, 'utf8').split('\n').slice(-15).join('\n')}`);
      return (await http(l.socket, 'GET', '/_ping', undefined, 2_000)).status === 200;
    }, readyMs, 200).catch((err: Error) => {
      if (child.exitCode !== null) throw err;
      throw new Error(`${err.message}; log ${l.log}:\n${readFileSync(l.log, 'utf8').split('\n').slice(-15).join('\n')}`);
    });
    const pid = readPid(l.pidfile) ?? child.pid!;
    return { name: l.name, socket: l.socket, pid, addr: NETNS_ADDR, dir: l.dir, stop };
  } catch (err) {
    if (started || existsSync(l.dir)) await stop().catch(() => undefined);
    throw err;
  }
}
