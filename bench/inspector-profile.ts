// A CPU profile (or a sampling heap profile) of a running lab daemon, taken
// through its inspector, for the benches' --leader-prof (why a manager is slow
// or big under load, from the process that is). The daemon opens its
// inspector on SIGUSR1 (node's default, on 127.0.0.1:9229 of its own network namespace); this module runs a small
// client there (nsenter --net) that starts V8's profiler and, when told to
// stop, writes the profile as a .cpuprofile file (Chrome DevTools' format).
//
// As a script (inside the namespace): node --experimental-websocket
// dist/bench/inspector-profile.js OUT — starts at once, stops on SIGTERM. An OUT
// ending in .heapprofile samples allocations instead (V8's sampling heap
// profiler: what is still live when it stops, by the stack that allocated it,
// after a full GC), in DevTools' format too; one ending in .allocprofile
// counts every allocation, collected or not (where the garbage that the
// collector must chase comes from).
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { sleep } from './util';

// What a profile file holds, from its name (the one place that convention lives).
export type ProfileKind = 'cpu' | 'heap' | 'alloc';
const PROFILE_EXT = /\.(cpu|heap|alloc)profile$/;
export const profileKind = (file: string): ProfileKind => (PROFILE_EXT.exec(file)?.[1] as ProfileKind | undefined) ?? 'cpu';
// `base` (with or without an extension) for one phase: BASE-what.KINDprofile.
export const profileFile = (base: string, what: string): string => `${base.replace(PROFILE_EXT, '')}-${what}.${profileKind(base)}profile`;

function wsUrl(deadlineMs: number): Promise<string> {
  const until = Date.now() + deadlineMs;
  const once = (): Promise<string | undefined> => new Promise((resolve) => {
    const req = get({ host: '127.0.0.1', port: 9229, path: '/json/list', timeout: 2_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => { body += c; }).on('end', () => {
        try { resolve((JSON.parse(body) as Array<{ webSocketDebuggerUrl?: string }>)[0]?.webSocketDebuggerUrl); } catch { resolve(undefined); }
      });
    });
    req.on('error', () => resolve(undefined)).on('timeout', () => { req.destroy(); resolve(undefined); });
  });
  return (async () => {
    for (;;) {
      const u = await once();
      if (u) return u;
      if (Date.now() > until) throw new Error('no inspector on 127.0.0.1:9229');
      await sleep(200);
    }
  })();
}

// What the daemon itself says of its memory (bytes), read once through the
// same inspector: V8's heap (its old space held and in use) and what lives
// outside it (external, of which array buffers). RSS less the heap and the
// external memory is native: malloc's (TLS and HTTP/2 state per connection,
// zlib, V8's own zones), thread stacks, the binary's pages.
export interface MemorySplit { rss: number; heapTotal: number; heapUsed: number; oldSize: number; oldUsed: number; external: number; arrayBuffers: number }
const MEMORY_SPLIT_EXPR = `(() => {
  const m = process.memoryUsage();
  const o = process.getBuiltinModule('v8').getHeapSpaceStatistics().find((s) => s.space_name === 'old_space');
  return JSON.stringify({ rss: m.rss, heapTotal: m.heapTotal, heapUsed: m.heapUsed, oldSize: o.space_size, oldUsed: o.space_used_size, external: m.external, arrayBuffers: m.arrayBuffers });
})()`;
const MEMORY_FLAG = '--memory';

// The client, inside the daemon's namespace. OUT `--memory`: prints the
// daemon's MemorySplit as JSON and exits.
async function client(out: string): Promise<void> {
  const WS = (globalThis as unknown as { WebSocket?: new (url: string) => WebSocketLike }).WebSocket;
  if (!WS) throw new Error('run with --experimental-websocket');
  const ws = new WS(await wsUrl(10_000));
  let id = 0;
  const pending = new Map<number, (r: unknown) => void>();
  ws.onmessage = (ev) => {
    const m = JSON.parse(String(ev.data)) as { id?: number; result?: unknown };
    if (m.id !== undefined) { pending.get(m.id)?.(m.result); pending.delete(m.id); }
  };
  await new Promise<void>((resolve, reject) => { ws.onopen = () => resolve(); ws.onerror = () => reject(new Error('inspector connection failed')); });
  const call = (method: string, params: Record<string, unknown> = {}): Promise<unknown> => new Promise((resolve) => {
    id += 1;
    pending.set(id, resolve);
    ws.send(JSON.stringify({ id, method, params }));
  });
  if (out === MEMORY_FLAG) {
    const r = await call('Runtime.evaluate', { expression: MEMORY_SPLIT_EXPR, returnByValue: true }) as { result?: { value?: unknown }; exceptionDetails?: { text?: string } };
    ws.close();
    if (typeof r.result?.value !== 'string') throw new Error(`the daemon did not give its memory figures: ${r.exceptionDetails?.text ?? 'no value'}`);
    process.stdout.write(`${r.result.value}\n`);
    process.exit(0);
  }
  const kind = profileKind(out);
  if (kind === 'cpu') {
    await call('Profiler.enable');
    await call('Profiler.setSamplingInterval', { interval: 1_000 });
    await call('Profiler.start');
  } else {
    const all = kind === 'alloc';
    await call('HeapProfiler.enable');
    await call('HeapProfiler.startSampling', { samplingInterval: 64 * 1024, includeObjectsCollectedByMajorGC: all, includeObjectsCollectedByMinorGC: all });
  }
  process.stdout.write('started\n');
  await new Promise<void>((resolve) => process.once('SIGTERM', () => resolve()));
  if (kind === 'heap') await call('HeapProfiler.collectGarbage'); // so that only what is live counts
  const r = await call(kind === 'cpu' ? 'Profiler.stop' : 'HeapProfiler.stopSampling') as { profile: unknown };
  writeFileSync(out, JSON.stringify(r.profile));
  ws.close();
  process.exit(0);
}
interface WebSocketLike {
  onmessage: (ev: { data: unknown }) => void; onopen: () => void; onerror: () => void;
  send(s: string): void; close(): void;
}

// The client for `pid`, its inspector opened (SIGUSR1), run in `netns`.
function spawnClient(pid: number, netns: string | undefined, out: string): ChildProcess {
  process.kill(pid, 'SIGUSR1');
  const client = [process.execPath, '--experimental-websocket', '--no-warnings', __filename, out];
  return netns === undefined
    ? spawn(client[0]!, client.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] })
    : spawn('nsenter', [`--net=/var/run/netns/${netns}`, ...client], { stdio: ['ignore', 'pipe', 'inherit'] });
}

// From the bench: the daemon `pid`'s MemorySplit (bounded: 20 s).
export async function memorySplit(pid: number, netns: string | undefined): Promise<MemorySplit> {
  const p = spawnClient(pid, netns, MEMORY_FLAG);
  let text = '';
  p.stdout!.setEncoding('utf8').on('data', (c: string) => { text += c; });
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => { p.kill('SIGKILL'); reject(new Error('no memory figures within 20 s')); }, 20_000);
    p.once('exit', (code) => { clearTimeout(t); if (code === 0) resolve(); else reject(new Error(`memory client exited ${code}`)); });
  });
  return JSON.parse(text) as MemorySplit;
}

// From the bench: opens the inspector of `pid` (in network namespace `netns`)
// and starts profiling; the returned function stops and writes `out`.
// netns undefined: a process of this machine's own namespace (a simulator).
export async function startProfile(pid: number, netns: string | undefined, out: string): Promise<() => Promise<void>> {
  const p = spawnClient(pid, netns, out);
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('profiler did not start within 20 s')), 20_000);
    p.stdout!.on('data', (c: Buffer) => { if (c.toString().includes('started')) { clearTimeout(t); resolve(); } });
    p.once('exit', (code) => { clearTimeout(t); reject(new Error(`profiler client exited ${code}`)); });
  });
  return async () => {
    const gone = new Promise<void>((resolve) => p.once('exit', () => resolve()));
    p.kill('SIGTERM');
    await Promise.race([gone, sleep(60_000)]);
  };
}

if (require.main === module) {
  client(process.argv[2] ?? 'daemon.cpuprofile').catch((err: Error) => { process.stderr.write(`${err.message}\n`); process.exit(1); });
}
