// The physical limit under bench/scale.ts's "create → all running": the
// etcd cluster alone taking the writes a create cost and delivering them to
// every manager. Three bare members (bench/bare-etcd.ts: Shoal's binary,
// flags and mutual TLS, loopback) take the same number of puts, of the same
// size, in the same number of transactions, with `inflight` transactions
// in flight, through the same client Shoal's store uses (etcd3 over
// grpc-js), while one watcher per member (as each manager's store watches
// its own member) receives every event. No Shoal code runs, no value is
// packed or inflated, no transaction compares anything: what is left of a
// goal's time once this is spent is what the managers' daemons and the
// nodes may use.
//
//   node dist/bench/etcd-limit.js [--puts 456787] [--put-bytes 91696790] [--txns 7302]
//                                 [--keys 150000] [--inflight 4] [--runs 3] [--json FILE]
//
// The defaults are the writes of a 150,000-task create at 5,000 nodes
// (bench/scale.ts, 2026-12-06, run b: 3.05 puts per task, 201 bytes per put
// with its key, 62.6 puts per transaction); a --puts alone keeps those
// proportions. bench/scale.ts runs it after its
// lab is gone, with each step's own figures.
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { ETCD_CERT_NAME } from '../src/manager/ca/ca';
import { CALL_TIMEOUT_MS, EtcdBackend, soft } from '../src/store/etcd-backend';
import { etcdClientOptions } from '../src/store/etcd-process';
import type { WatchHandle } from '../src/store/backend';
import { startBareEtcd } from './bare-etcd';
import type { EtcdCounters } from './etcd-counters';
import { finishBench, installSignalCleanup, median, onCleanup, positiveOption, rssBytes, runBenchMain, treeCpuSeconds } from './util';

const MB = 1024 * 1024;
const PREFIX = '/shoal/v1/tasks/';
const say = (s: string) => process.stderr.write(`[etcd-limit] ${s}\n`);

// What a create wrote (bench/etcd-counters.ts names them the same).
export type WriteShape = Pick<EtcdCounters, 'puts' | 'putBytes' | 'txns'> & { keys: number };

export interface LimitRun {
  ackedSeconds: number;     // first write sent → the last transaction acknowledged
  watchedSeconds: number;   // first write sent → every watcher has every event
  etcdCpuSeconds: number;   // the three members together
  clientCpuSeconds: number; // this process: the writer and the three watchers
  etcdMB: number[];         // each member's RSS once every watcher has everything
  error?: string;
}

export interface LimitFigures { shape: WriteShape; inflight: number; runs: LimitRun[] }

// The transactions to send: `txns` of them (the last ones one put smaller
// when puts do not divide evenly), cycling over `keys` keys.
export function planTxns(shape: WriteShape): number[] {
  const txns = Math.max(1, Math.round(shape.txns));
  const base = Math.floor(shape.puts / txns), extra = shape.puts - base * txns;
  return Array.from({ length: txns }, (_, i) => base + (i < extra ? 1 : 0)).filter((n) => n > 0);
}

// Task-like keys: the prefix and a 25-character ID, as Shoal's.
export function keyOf(i: number): string {
  return `${PREFIX}${i.toString(36).padStart(25, '0')}`;
}

// Bytes per value so that key plus value weigh what the create's puts did.
export function valueBytes(shape: WriteShape): number {
  return Math.max(1, Math.round(shape.putBytes / Math.max(1, shape.puts)) - keyOf(0).length);
}

const DEADLINE_MS = 600_000;
// The writes of bench/scale.ts's run b (5,000 nodes, 150,000 tasks, 2026-12-06).
const RUN_B: WriteShape = { puts: 456_787, putBytes: 91_696_790, txns: 7_302, keys: 150_000 };

async function oneRun(shape: WriteShape, inflight: number): Promise<LimitRun> {
  const etcd = await startBareEtcd(3, '/usr/bin/etcd', 'limit');
  const unregister = onCleanup('bare etcd', etcd.stop);
  // The certificate's name, not the IP: Node warns of an IP as TLS server name (DEP0123).
  const backends = etcd.members.map((m) => new EtcdBackend({ ...etcdClientOptions(m.clientUrl, m.tls), grpcOptions: { 'grpc.ssl_target_name_override': ETCD_CERT_NAME } }));
  const watches: WatchHandle[] = [];
  try {
    const writer = backends[0]!;
    const start = (await writer.range(PREFIX, { limit: 1 })).revision;
    const seen = backends.map(() => 0);
    let allSeen: () => void = () => undefined;
    const everyone = new Promise<void>((resolve) => { allSeen = resolve; });
    let lost: Error | undefined;
    for (const [i, b] of backends.entries()) {
      watches.push(await b.watch(PREFIX, start + 1, {
        onEvents: (events) => {
          seen[i]! += events.length;
          if (seen.every((n) => n >= shape.puts)) allSeen();
        },
        onLost: (err) => { lost = err; allSeen(); },
      }));
    }
    // A few distinct random values, none starting with the packed marker (0).
    const size = valueBytes(shape);
    const values = Array.from({ length: 64 }, () => { const v = randomBytes(size); v[0] = 0x7b; return v; });
    const plan = planTxns(shape);
    const cpu0 = etcd.members.reduce((s, m) => s + (m.pid ? treeCpuSeconds(m.pid, 'etcd') : 0), 0);
    const own0 = process.cpuUsage();
    const t0 = Date.now();
    let next = 0, key = 0;
    // etcd3's own call, not the backend's txn (which would pack the values),
    // bounded as the store bounds its writes; the whole run by DEADLINE_MS.
    const worker = async (): Promise<void> => {
      while (next < plan.length) {
        if (Date.now() - t0 > DEADLINE_MS) throw new Error(`${next} of ${plan.length} transactions sent within ${DEADLINE_MS / 1000} s`);
        const n = plan[next++]!;
        const success = Array.from({ length: n }, () => {
          const k = key++ % shape.keys;
          return { request_put: { key: Buffer.from(keyOf(k)), value: values[k % values.length]! } };
        });
        await soft(writer.client.kv.txn({ compare: [], success, failure: [] }), CALL_TIMEOUT_MS, 'a write');
      }
    };
    await Promise.all(Array.from({ length: inflight }, worker));
    const acked = Date.now();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([everyone, new Promise<void>((_, reject) => { timer = setTimeout(() => reject(new Error(`watchers saw ${seen.join(', ')} of ${shape.puts} events within ${DEADLINE_MS / 1000} s`)), Math.max(0, t0 + DEADLINE_MS - Date.now())); })])
      .finally(() => clearTimeout(timer));
    if (lost) throw new Error(`a watch was lost: ${lost.message}`);
    const watched = Date.now();
    const own = process.cpuUsage(own0);
    return {
      ackedSeconds: (acked - t0) / 1000,
      watchedSeconds: (watched - t0) / 1000,
      etcdCpuSeconds: round1(etcd.members.reduce((s, m) => s + (m.pid ? treeCpuSeconds(m.pid, 'etcd') : 0), 0) - cpu0),
      clientCpuSeconds: round1((own.user + own.system) / 1e6),
      etcdMB: etcd.members.map((m) => round1(m.pid ? rssBytes(m.pid) / MB : 0)),
    };
  } finally {
    await Promise.all(watches.map((w) => w.close().catch(() => undefined)));
    await Promise.all(backends.map((b) => b.close().catch(() => undefined)));
    unregister();
    await etcd.stop();
  }
}

const round1 = (x: number): number => Math.round(x * 10) / 10;

// `runs` runs, each on a new cluster; a failed run is kept with its error.
export async function measureEtcdLimit(shape: WriteShape, inflight = 4, runs = 1): Promise<LimitFigures> {
  const out: LimitFigures = { shape, inflight, runs: [] };
  for (let r = 0; r < runs; r++) {
    say(`run ${r + 1} of ${runs}: ${shape.puts} puts (${valueBytes(shape)}-byte values) in ${planTxns(shape).length} transactions, ${inflight} in flight, three watchers`);
    try { out.runs.push(await oneRun(shape, inflight)); } catch (err) {
      out.runs.push({ ackedSeconds: NaN, watchedSeconds: NaN, etcdCpuSeconds: NaN, clientCpuSeconds: NaN, etcdMB: [], error: (err as Error).message });
    }
  }
  return out;
}

// Medians over the runs that finished.
export function limitSummary(f: LimitFigures): { runs: number; watchedSeconds: number; ackedSeconds: number; etcdCpuSeconds: number; clientCpuSeconds: number; etcdMB: number; putsPerSecond: number } | undefined {
  const ok = f.runs.filter((r) => !r.error);
  if (!ok.length) return undefined;
  const watched = median(ok.map((r) => r.watchedSeconds));
  return {
    runs: ok.length,
    watchedSeconds: watched,
    ackedSeconds: median(ok.map((r) => r.ackedSeconds)),
    etcdCpuSeconds: median(ok.map((r) => r.etcdCpuSeconds)),
    clientCpuSeconds: median(ok.map((r) => r.clientCpuSeconds)),
    etcdMB: median(ok.map((r) => Math.max(...r.etcdMB))),
    putsPerSecond: Math.round(f.shape.puts / watched),
  };
}

export function limitReport(f: LimitFigures): string {
  const s = limitSummary(f);
  const failed = f.runs.filter((r) => r.error).map((r) => r.error);
  const lines = ['# The etcd limit: a create\'s writes through three bare members (bench/etcd-limit.ts)', '',
    `${f.shape.puts} puts over ${f.shape.keys} keys, ${valueBytes(f.shape)}-byte values, ${planTxns(f.shape).length} transactions, ${f.inflight} in flight; medians of ${s?.runs ?? 0} run(s).`, '',
    '| all watchers have every event | last write acknowledged | puts/s | etcd CPU-s (three members) | client CPU-s | largest member RSS after |',
    '|---|---|---|---|---|---|'];
  if (s) lines.push(`| ${s.watchedSeconds} s | ${s.ackedSeconds} s | ${s.putsPerSecond} | ${s.etcdCpuSeconds} | ${s.clientCpuSeconds} | ${s.etcdMB} MB |`);
  for (const e of failed) lines.push(`failed: ${e}`);
  return lines.join('\n');
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: {
    puts: { type: 'string' }, 'put-bytes': { type: 'string' }, txns: { type: 'string' }, keys: { type: 'string' },
    inflight: { type: 'string' }, runs: { type: 'string' }, json: { type: 'string' }, help: { type: 'boolean', short: 'h' },
  } });
  if (values.help) {
    process.stdout.write('usage: node dist/bench/etcd-limit.js [--puts 456787] [--put-bytes 91696790] [--txns 7302] [--keys 150000] [--inflight 4] [--runs 3] [--json FILE]\n');
    return 0;
  }
  // What is not given keeps run b's proportions to the puts.
  const puts = Math.round(positiveOption(values.puts, RUN_B.puts, 'puts'));
  const shape: WriteShape = {
    puts,
    putBytes: positiveOption(values['put-bytes'], Math.round(puts * RUN_B.putBytes / RUN_B.puts), 'put-bytes'),
    txns: Math.round(positiveOption(values.txns, Math.max(1, Math.round(puts * RUN_B.txns / RUN_B.puts)), 'txns')),
    keys: Math.round(positiveOption(values.keys, Math.max(1, Math.round(puts * RUN_B.keys / RUN_B.puts)), 'keys')),
  };
  const inflight = Math.round(positiveOption(values.inflight, 4, 'inflight'));
  const runs = Math.round(positiveOption(values.runs, 3, 'runs'));
  installSignalCleanup();
  const figures = await measureEtcdLimit(shape, inflight, runs);
  const failed = figures.runs.find((r) => r.error)?.error;
  return finishBench(limitReport(figures), values.json, { options: { shape, inflight, runs }, shoal: { ...(failed ? { error: failed } : {}), ...figures } });
}

if (require.main === module) runBenchMain(main);
