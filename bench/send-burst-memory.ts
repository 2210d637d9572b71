// What a burst of sending leaves in a daemon's memory once it is delivered.
// A server process (Shoal's GrpcServer, mutual TLS on loopback) holds
// --streams server streams from one client channel (a manager's channel, as
// a follower's relay to the leader), then sends --messages messages of
// --bytes on each at once, as a leader sends assignments; the client reads
// them all. Then, after three forced GCs, the server's RSS less its V8 heap
// and external memory: native memory. Run once with glibc's defaults and once
// with each --tunables setting (GLIBC_TUNABLES, in the server's environment
// only), side by side, with the server's CPU for the burst. --malloc-trim
// then calls glibc's malloc_trim(0) in the server through gdb and measures
// again: what it gives back was free memory malloc kept, not data.
//
//   node dist/bench/send-burst-memory.js [--streams 150] [--messages 100] [--bytes 30000]
//                                        [--tunables glibc.malloc.mmap_threshold=16384,...] [--malloc-trim]
import { fork, type ChildProcess } from 'node:child_process';
import { parseArgs } from 'node:util';
import { silentLogger } from '../src/common/log';
import { createRootCA } from '../src/manager/ca/ca';
import { nodeTlsFrom } from '../test/helpers/node-tls';
import { GrpcServer, grpcChannel, MANAGER_CHANNEL, type NodeTls } from '../src/rpc/grpc';
import type { RpcStream, StreamMethod } from '../src/rpc/transport';
import { mustExec, positiveOption, runBenchMain, sleep } from './util';

const CLUSTER = 'benchcluster0000000000000';
const MB = 1024 * 1024;
const DELIVERY_MS = 120_000;
const ANSWER_MS = 30_000;
const GDB_MS = 60_000;

interface Hold { i: number }
interface Msg { Data: string; k: number }
const checkHold = (raw: unknown): Hold => {
  const i = (raw as { i?: unknown } | null)?.i;
  if (typeof i !== 'number') throw new Error('bench.Hold: a request needs a number i');
  return { i };
};
const checkMsg = (raw: unknown): Msg => raw as Msg;
const HOLD: StreamMethod<Hold, Msg> = { name: 'bench.Hold', access: 'node', request: checkHold, message: checkMsg };

// cpuMs: the server process's CPU (user + system) so far.
interface Memory { rss: number; heapTotal: number; external: number; cpuMs: number }
type ToParent = { port: number } | { memory: Memory } | { sent: true };
type ToChild = { measure: true } | { burst: { messages: number; bytes: number } };

// The server side, in a process of its own (`--child TLS-JSON`).
async function child(tlsJson: string): Promise<void> {
  const tls = JSON.parse(tlsJson) as NodeTls;
  const server = new GrpcServer({ tls: () => tls, clusterId: () => CLUSTER, log: silentLogger });
  const sends: Array<(m: Msg) => void> = [];
  server.stream(HOLD, async (_req, ctx, send) => {
    sends.push(send);
    send({ Data: '', k: -1 });
    await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
  });
  const port = await server.listen('127.0.0.1', 0);
  const tell = (m: ToParent): void => { process.send!(m); };
  process.on('message', (m: ToChild) => {
    if ('burst' in m) {
      const data = 'x'.repeat(m.burst.bytes);
      for (const send of sends) for (let k = 0; k < m.burst.messages; k++) send({ Data: data, k });
      tell({ sent: true });
      return;
    }
    for (let i = 0; i < 3; i++) global.gc!();
    const u = process.memoryUsage();
    const cpu = process.cpuUsage();
    tell({ memory: { rss: u.rss, heapTotal: u.heapTotal, external: u.external, cpuMs: (cpu.user + cpu.system) / 1000 } });
  });
  tell({ port });
}

interface Figures { tunables: string; nativeBeforeMB: number; nativeAfterMB: number; rssAfterMB: number; serverCpuS: number; nativeTrimmedMB?: number }

async function oneRun(tunables: string, streams: number, messages: number, bytes: number, serverTls: NodeTls, clientTls: NodeTls, mallocTrim: boolean): Promise<Figures> {
  const env = { ...process.env };
  if (tunables) env.GLIBC_TUNABLES = tunables; else delete env.GLIBC_TUNABLES;
  const proc: ChildProcess = fork(__filename, ['--child', JSON.stringify(serverTls)], { env, execArgv: ['--expose-gc', '--max-semi-space-size=32'] });
  const next = <T extends ToParent>(what: string): Promise<T> => new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`the server did not answer (${what}) within ${ANSWER_MS} ms`)), ANSWER_MS);
    proc.once('message', (m: T) => { clearTimeout(t); resolve(m); });
  });
  const streamsOpen: RpcStream[] = [];
  const ch = grpcChannel(`127.0.0.1:${(await next<{ port: number }>('listening')).port}`, clientTls, silentLogger, MANAGER_CHANNEL);
  try {
    let got = 0;
    const until = async (n: number): Promise<void> => {
      const deadline = Date.now() + DELIVERY_MS;
      while (got < n) {
        if (Date.now() > deadline) throw new Error(`${got} of ${n} messages delivered within ${DELIVERY_MS} ms`);
        await sleep(20);
      }
    };
    for (let i = 0; i < streams; i++) streamsOpen.push(ch.stream(HOLD, { i }, () => { got++; }));
    await until(streams);
    const measure = async (): Promise<Memory> => { proc.send({ measure: true } satisfies ToChild); return (await next<{ memory: Memory }>('memory')).memory; };
    const native = (m: Memory): number => (m.rss - m.heapTotal - m.external) / MB;
    const before = await measure();
    proc.send({ burst: { messages, bytes } } satisfies ToChild);
    await next<{ sent: true }>('burst');
    await until(streams * (messages + 1));
    const after = await measure();
    let nativeTrimmedMB: number | undefined;
    if (mallocTrim) {
      await mustExec('gdb', ['-p', String(proc.pid), '-batch', '-ex', 'call (int)malloc_trim(0)'], { timeoutMs: GDB_MS });
      nativeTrimmedMB = native(await measure());
    }
    return {
      tunables: tunables || '(glibc defaults)', nativeBeforeMB: native(before), nativeAfterMB: native(after), rssAfterMB: after.rss / MB,
      serverCpuS: (after.cpuMs - before.cpuMs) / 1000, ...(nativeTrimmedMB !== undefined ? { nativeTrimmedMB } : {}),
    };
  } finally {
    for (const s of streamsOpen) s.cancel();
    ch.close();
    proc.kill('SIGKILL');
  }
}

async function main(): Promise<number> {
  if (process.argv[2] === '--child') { await child(process.argv[3]!); return -1; }
  const { values } = parseArgs({ options: { streams: { type: 'string' }, messages: { type: 'string' }, bytes: { type: 'string' }, tunables: { type: 'string' }, 'malloc-trim': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) { process.stdout.write('usage: node dist/bench/send-burst-memory.js [--streams 150] [--messages 100] [--bytes 30000] [--tunables T1,T2] [--malloc-trim]\n'); return 0; }
  const streams = Math.round(positiveOption(values.streams, 150, 'streams'));
  const messages = Math.round(positiveOption(values.messages, 100, 'messages'));
  const bytes = Math.round(positiveOption(values.bytes, 30_000, 'bytes'));
  const tunables = ['', ...(values.tunables ?? 'glibc.malloc.mmap_threshold=16384').split(',').filter((t) => t !== '')];

  const ca = await createRootCA();
  const tls = (id: string): Promise<NodeTls> => nodeTlsFrom(ca, id, 'manager', CLUSTER);
  const serverTls = await tls('benchmanager0000000000000');
  const clientTls = await tls('benchmanager0000000000001');
  const rows: Figures[] = [];
  for (const t of tunables) {
    rows.push(await oneRun(t, streams, messages, bytes, serverTls, clientTls, values['malloc-trim'] === true));
    process.stderr.write(`[burst] ${rows.at(-1)!.tunables}: native ${rows.at(-1)!.nativeAfterMB.toFixed(1)} MB after the burst\n`);
  }
  const sentMB = (streams * messages * bytes) / MB;
  process.stdout.write([
    `# Native memory a server keeps after a burst of sending (${streams} streams on one channel, ${messages} messages of ${bytes} bytes each at once: ${sentMB.toFixed(0)} MB), delivered, three GCs later`, '',
    `| glibc tunables (server only) | native before, MB | native after, MB | RSS after, MB | server CPU, burst to delivered, s |${values['malloc-trim'] ? ' native after malloc_trim(0), MB |' : ''}`,
    `|---|---|---|---|---|${values['malloc-trim'] ? '---|' : ''}`,
    ...rows.map((r) => `| ${r.tunables} | ${r.nativeBeforeMB.toFixed(1)} | ${r.nativeAfterMB.toFixed(1)} | ${r.rssAfterMB.toFixed(1)} | ${r.serverCpuS.toFixed(2)} |${r.nativeTrimmedMB !== undefined ? ` ${r.nativeTrimmedMB.toFixed(1)} |` : ''}`),
    '',
  ].join('\n'));
  return 0;
}

if (process.argv[2] === '--child') void main().catch((err: unknown) => { process.stderr.write(`[burst child] ${String(err)}\n`); process.exit(1); });
else runBenchMain(main);
