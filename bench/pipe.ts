// `node dist/bench/pipe.js`: what one heartbeat costs over Shoal's node-to-node
// transport, as a unary call and as a call on a pipe (rpc/transport.ts
// RpcPipe). Shoal's own GrpcServer and grpcChannel with mutual TLS on
// loopback, the dispatcher's heartbeat messages, one call at a time as an
// agent makes them; client and server in this one process, so the CPU time
// (user + system) per call is both sides' together. Each round times --calls
// of each kind, alternating which goes first; medians over --rounds.
//
//   node dist/bench/pipe.js [--calls 5000] [--rounds 5]
import { parseArgs } from 'node:util';
import { silentLogger } from '../src/common/log';
import { createRootCA } from '../src/manager/ca/ca';
import { nodeTlsFrom } from '../test/helpers/node-tls';
import { GrpcServer, grpcChannel, type NodeTls } from '../src/rpc/grpc';
import { Heartbeat, Heartbeats, type HeartbeatRequest, type HeartbeatResponse } from '../src/protocol/dispatcher';
import type { RpcChannel } from '../src/rpc/transport';
import { median, positiveOption, runBenchMain } from './util';

const CLUSTER = 'benchcluster0000000000000';
const WARMUP_CALLS = 500;
const CALL_TIMEOUT_MS = 5_000;

interface Figures { cpuUsPerCall: number; wallUsPerCall: number }

async function timeCalls(calls: number, one: () => Promise<unknown>): Promise<Figures> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < calls; i++) await one();
  const cpu = process.cpuUsage(cpu0);
  return { cpuUsPerCall: (cpu.user + cpu.system) / calls, wallUsPerCall: ((performance.now() - t0) * 1000) / calls };
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { calls: { type: 'string' }, rounds: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) { process.stdout.write('usage: node dist/bench/pipe.js [--calls 5000] [--rounds 5]\n'); return 0; }
  const calls = positiveOption(values.calls, 5000, 'calls');
  const rounds = positiveOption(values.rounds, 5, 'rounds');

  const ca = await createRootCA();
  const tls = (id: string, role: 'manager' | 'worker'): Promise<NodeTls> => nodeTlsFrom(ca, id, role, CLUSTER);
  const serverTls = await tls('benchmanager0000000000000', 'manager');
  const clientTls = await tls('benchworker00000000000000', 'worker');
  const server = new GrpcServer({ tls: () => serverTls, clusterId: () => CLUSTER, log: silentLogger });
  // The dispatcher's answer to a beat of a known session, without the dispatcher.
  const beat = async (_req: HeartbeatRequest): Promise<HeartbeatResponse> => ({ PeriodMs: 5000 });
  server.unary(Heartbeat, beat);
  server.pipe(Heartbeats, beat);
  const port = await server.listen('127.0.0.1', 0);
  const ch: RpcChannel = grpcChannel(`127.0.0.1:${port}`, clientTls, silentLogger);
  const pipe = ch.pipe(Heartbeats);
  const req: HeartbeatRequest = { SessionID: 'benchsession0000000000000' };
  const unaryCall = (): Promise<HeartbeatResponse> => ch.unary(Heartbeat, req, { timeoutMs: CALL_TIMEOUT_MS });
  const pipeCall = (): Promise<HeartbeatResponse> => pipe.call(req, { timeoutMs: CALL_TIMEOUT_MS });
  try {
    await timeCalls(WARMUP_CALLS, unaryCall);
    await timeCalls(WARMUP_CALLS, pipeCall);
    const unary: Figures[] = [];
    const piped: Figures[] = [];
    for (let r = 0; r < rounds; r++) {
      if (r % 2 === 0) { unary.push(await timeCalls(calls, unaryCall)); piped.push(await timeCalls(calls, pipeCall)); }
      else { piped.push(await timeCalls(calls, pipeCall)); unary.push(await timeCalls(calls, unaryCall)); }
      process.stderr.write(`[pipe] round ${r + 1}: unary ${unary[r]!.cpuUsPerCall.toFixed(0)} µs CPU, pipe ${piped[r]!.cpuUsPerCall.toFixed(0)} µs CPU per call\n`);
    }
    const cpuU = median(unary.map((f) => f.cpuUsPerCall));
    const cpuP = median(piped.map((f) => f.cpuUsPerCall));
    const wallU = median(unary.map((f) => f.wallUsPerCall));
    const wallP = median(piped.map((f) => f.wallUsPerCall));
    process.stdout.write([
      `# One heartbeat over Shoal's transport (mutual TLS, loopback; client and server in one process; medians of ${rounds} rounds of ${calls} calls)`, '',
      '| carried as | CPU per call (µs, both sides) | wall per call (µs) |',
      '|---|---|---|',
      `| unary call (dispatcher.Heartbeat) | ${cpuU.toFixed(0)} | ${wallU.toFixed(0)} |`,
      `| call on a pipe (dispatcher.Heartbeats) | ${cpuP.toFixed(0)} | ${wallP.toFixed(0)} |`,
      `| ratio unary / pipe | ${(cpuU / cpuP).toFixed(2)} | ${(wallU / wallP).toFixed(2)} |`, '',
    ].join('\n'));
    return 0;
  } finally {
    pipe.close();
    ch.close();
    await server.close();
  }
}

runBenchMain(main);
