// The memory floor of a manager: what its two processes hold idle before any
// Shoal code runs. A bare etcd cluster of three members started exactly as a
// Shoal manager starts its own (EtcdProcess: same binary, flags, environment
// and mutual TLS, on loopback ports), and an idle node process (the same node
// binary as the daemon) with nothing loaded, then with the modules every
// Shoal daemon needs for its mutual-TLS HTTP/2 channels (tls, http2, crypto).
// Issue 8's goal for a manager (daemon + etcd under 100 MB RSS) can be met
// only with room above this floor; bench/cluster.ts prints it beside the lab's
// figures.
//
//   node dist/bench/memory-floor.js [--settle 60] [--members 3] [--json FILE]
//
// --members 1 shows what the peers cost: a one-member etcd holds far less.
// etcd gets the daemon's environment (GOGC, GOMEMLIMIT, GOMAXPROCS), so
// `GOGC=100 node dist/bench/memory-floor.js` measures Go's other settings.
import { spawn, type ChildProcess } from 'node:child_process';
import { parseArgs } from 'node:util';
import { startBareEtcd } from './bare-etcd';
import { floorFigures, floorReport, type FloorSample, type ProcSample } from './floor-stats';
import { finishBench, installSignalCleanup, onCleanup, positiveOption, rssBytes, rssSplit, runBenchMain, sleep } from './util';

const MB = 1024 * 1024;
const say = (s: string) => process.stderr.write(`[floor] ${s}\n`);

export interface MemoryFloor { sample(): FloorSample; stop(): Promise<void> }

const NODE_IDLE = 'setInterval(() => {}, 3600e3)';
const NODE_TLS_IDLE = `require('node:tls'); require('node:http2'); require('node:crypto'); ${NODE_IDLE}`;

// Starts the etcd members (bench/bare-etcd.ts) and the two idle node processes.
export async function startMemoryFloor(members = 3, etcdBinary = '/usr/bin/etcd'): Promise<MemoryFloor> {
  const etcd = await startBareEtcd(members, etcdBinary, 'floor');
  const children: ChildProcess[] = [];
  const stop = async () => {
    for (const c of children) c.kill('SIGKILL');
    await etcd.stop();
  };
  for (const code of [NODE_IDLE, NODE_TLS_IDLE]) children.push(spawn(process.execPath, ['-e', code], { stdio: 'ignore' }));
  const proc = (pid: number | undefined): ProcSample => (pid ? { rss: rssBytes(pid) / MB, split: rssSplit(pid) } : { rss: 0, split: { anon: 0, file: 0, pss: 0 } });
  return {
    sample: () => ({ etcd: etcd.members.map((m) => proc(m.pid)), node: proc(children[0]?.pid), nodeTls: proc(children[1]?.pid) }),
    stop,
  };
}

// Samples `count` times `everyMs` apart.
export async function sampleFloor(f: MemoryFloor, count: number, everyMs: number): Promise<FloorSample[]> {
  const out: FloorSample[] = [];
  for (let i = 0; i < count; i++) {
    if (i > 0) await sleep(everyMs);
    out.push(f.sample());
  }
  return out;
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { settle: { type: 'string' }, members: { type: 'string' }, json: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) { process.stdout.write('usage: node dist/bench/memory-floor.js [--settle 60] [--members 3] [--json FILE]\n'); return 0; }
  const settleMs = positiveOption(values.settle, 60, 'settle') * 1000;
  const members = Math.round(positiveOption(values.members, 3, 'members'));
  installSignalCleanup();
  say(`starting ${members} etcd member(s) (Shoal's flags, mutual TLS, loopback) and two idle node processes`);
  const floor = await startMemoryFloor(members);
  const unregister = onCleanup('memory floor', floor.stop);
  say(`idle ${settleMs / 1000} s`);
  await sleep(settleMs);
  const figures = floorFigures(await sampleFloor(floor, 5, 2_000));
  unregister();
  await floor.stop();
  const data = { options: { settleMs, members }, floor: figures };
  return finishBench(floorReport(figures), values.json, data);
}

if (require.main === module) runBenchMain(main);
