// What one node's connection costs a manager: memory, and CPU for its
// keepalive pings. A server process (Shoal's GrpcServer with the daemon's
// node flags and malloc setting, mutual TLS on loopback) takes --nodes client
// channels, each with a certificate of its own, each opening the heartbeat
// pipe (dispatcher.Heartbeats) and making one call on it, as an agent's
// session does first. After three forced GCs, the server's memory with the
// connections open less its memory before them, per connection: RSS, V8's heap (in use and held) and the rest (native:
// OpenSSL, nghttp2, libuv, malloc). A follower relaying 2,500 nodes holds
// 2,500 such connections (docs/SCALE.md). Then the server's CPU over --idle
// seconds with nothing but the channels' keepalive pings, less its CPU over
// as long before any connection and a measurement's own. The channels ping
// every second (rpc/grpc.ts KEEPALIVE_TIME_MS): a node's rate at Docker's
// default heartbeat period, slower in a big swarm (agent/keepalive.ts).
//
//   node dist/bench/connection-memory.js [--nodes 1000] [--idle 10]
import { fork, type ChildProcess } from 'node:child_process';
import { parseArgs } from 'node:util';
import { silentLogger } from '../src/common/log';
import { daemonEnv, daemonNodeFlags } from '../src/common/node-flags';
import { createRootCA } from '../src/manager/ca/ca';
import { Heartbeats, type HeartbeatResponse } from '../src/protocol/dispatcher';
import { GrpcServer, grpcChannel, type NodeTls } from '../src/rpc/grpc';
import type { RpcChannel, RpcPipe } from '../src/rpc/transport';
import { nodeTlsFrom } from '../test/helpers/node-tls';
import { positiveOption, runBenchMain, sleep } from './util';

const CLUSTER = 'benchcluster0000000000000';
const MB = 1024 * 1024;
const ANSWER_MS = 30_000;
const CALL_TIMEOUT_MS = 10_000;

interface Memory { rss: number; heapUsed: number; heapTotal: number; external: number; cpuMs: number }
type ToParent = { port: number } | { memory: Memory };

function child(serverTls: NodeTls): void {
  const server = new GrpcServer({ tls: () => serverTls, clusterId: () => CLUSTER, log: silentLogger });
  server.pipe(Heartbeats, async (): Promise<HeartbeatResponse> => ({ PeriodMs: 5000 }));
  const tell = (m: ToParent): void => { process.send!(m); };
  process.on('message', () => {
    for (let i = 0; i < 3; i++) global.gc!();
    const u = process.memoryUsage();
    const cpu = process.cpuUsage();
    tell({ memory: { rss: u.rss, heapUsed: u.heapUsed, heapTotal: u.heapTotal, external: u.external, cpuMs: (cpu.user + cpu.system) / 1000 } });
  });
  // A parent gone (killed, crashed) takes the server with it.
  process.on('disconnect', () => process.exit(0));
  void server.listen('127.0.0.1', 0).then((port) => tell({ port }));
}

async function main(): Promise<number> {
  if (process.argv[2] === '--child') { child(JSON.parse(process.argv[3]!) as NodeTls); return new Promise<number>(() => undefined); }
  const { values } = parseArgs({ options: { nodes: { type: 'string' }, idle: { type: 'string' } } });
  const nodes = positiveOption(values.nodes, 1000, 'nodes');
  const idleS = positiveOption(values.idle, 10, 'idle');
  const ca = await createRootCA();
  const serverTls = await nodeTlsFrom(ca, 'benchmanager0000000000000', 'manager', CLUSTER);
  const proc: ChildProcess = fork(__filename, ['--child', JSON.stringify(serverTls)], {
    env: { ...process.env, ...daemonEnv() }, execArgv: ['--expose-gc', ...daemonNodeFlags()],
  });
  const next = <T extends ToParent>(what: string): Promise<T> => new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`the server did not answer (${what}) within ${ANSWER_MS} ms`)), ANSWER_MS);
    proc.once('message', (m: T) => { clearTimeout(t); resolve(m); });
  });
  const measure = async (): Promise<Memory> => { proc.send('measure'); return (await next<{ memory: Memory }>('memory')).memory; };
  const open: Array<{ ch: RpcChannel; pipe: RpcPipe<{ SessionID: string }, HeartbeatResponse> }> = [];
  try {
    const { port } = await next<{ port: number }>('listening');
    // CPU over an idle window: its end less its start, less a measurement's
    // own cost (three GCs, taken right after the start's).
    const idleCpuMs = async (): Promise<{ ms: number; start: Memory }> => {
      const start = await measure();
      const measuringMs = (await measure()).cpuMs - start.cpuMs;
      const s0 = start.cpuMs + measuringMs;
      await sleep(idleS * 1000);
      return { ms: Math.max(0, (await measure()).cpuMs - s0 - measuringMs), start };
    };
    const quiet = await idleCpuMs();
    const before = quiet.start;
    for (let i = 0; i < nodes; i++) {
      const tls = await nodeTlsFrom(ca, `benchnode${String(i).padStart(16, '0')}`, 'worker', CLUSTER);
      const ch = grpcChannel(`127.0.0.1:${port}`, tls, silentLogger);
      const pipe = ch.pipe(Heartbeats);
      open.push({ ch, pipe });
      await pipe.call({ SessionID: `benchsession${i}` }, { timeoutMs: CALL_TIMEOUT_MS });
      if ((i + 1) % 250 === 0) process.stderr.write(`[connection-memory] ${i + 1} of ${nodes} connected\n`);
    }
    const busy = await idleCpuMs();
    const after = busy.start;
    const pingsMs = Math.max(0, busy.ms - quiet.ms);
    const kb = (a: number, b: number): string => (((a - b) / nodes) / 1024).toFixed(1);
    const native = (m: Memory): number => m.rss - m.heapTotal - m.external;
    process.stdout.write([
      `# One node's connection to a manager: the server's memory per connection (${nodes} connections, each with its own certificate, the heartbeat pipe open, one call made; after three GCs)`, '',
      '| | before (MB) | with the connections (MB) | per connection (KB) |',
      '|---|---|---|---|',
      `| RSS | ${(before.rss / MB).toFixed(1)} | ${(after.rss / MB).toFixed(1)} | ${kb(after.rss, before.rss)} |`,
      `| V8 heap in use | ${(before.heapUsed / MB).toFixed(1)} | ${(after.heapUsed / MB).toFixed(1)} | ${kb(after.heapUsed, before.heapUsed)} |`,
      `| V8 heap held | ${(before.heapTotal / MB).toFixed(1)} | ${(after.heapTotal / MB).toFixed(1)} | ${kb(after.heapTotal, before.heapTotal)} |`,
      `| external (Buffers) | ${(before.external / MB).toFixed(1)} | ${(after.external / MB).toFixed(1)} | ${kb(after.external, before.external)} |`,
      `| native (RSS less heap held and external) | ${(native(before) / MB).toFixed(1)} | ${(native(after) / MB).toFixed(1)} | ${kb(native(after), native(before))} |`, '',
      `The server's CPU over ${idleS} s, the connections idle but for their keepalive pings (one a second each), less its CPU over ${idleS} s before any connection (${quiet.ms.toFixed(0)} ms): ${(pingsMs / 1000 / idleS).toFixed(3)} cores, ${((pingsMs * 1000) / (idleS * nodes)).toFixed(1)} µs per ping.`, '',
    ].join('\n'));
    return 0;
  } finally {
    for (const o of open) { o.pipe.close(); o.ch.close(); }
    proc.kill();
  }
}

runBenchMain(main);
