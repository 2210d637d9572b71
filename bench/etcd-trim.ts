// What the store's raft-log trim (src/store/maintenance.ts) gives back: three
// bare members (bench/bare-etcd.ts: Shoal's binary, flags and mutual TLS)
// take a create's writes, sit quiet, and each member's RSS is read; then the
// real Maintenance, on the member that leads etcd, runs its passes until it
// trims, and the members' RSS is read again after the same quiet.
//
//   node dist/bench/etcd-trim.js [--puts 313722] [--txns 5010] [--keys 150000]
//                                [--settle 30] [--runs 1] [--json FILE]
//
// The defaults are the writes of a 150,000-task create at 5,000 nodes
// (bench/scale.ts, 2026-12-06, run e: 313,722 puts of 200 bytes with the
// key, in some 5,000 transactions).
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { ETCD_CERT_NAME } from '../src/manager/ca/ca';
import { silentLogger } from '../src/common/log';
import { CALL_TIMEOUT_MS, EtcdBackend, soft } from '../src/store/etcd-backend';
import { etcdClientOptions } from '../src/store/etcd-process';
import { DEFAULT_MAINTENANCE, Maintenance, type MaintenanceBackend } from '../src/store/maintenance';
import { startBareEtcd } from './bare-etcd';
import { keyOf } from './etcd-limit';
import { finishBench, installSignalCleanup, median, onCleanup, positiveOption, rssBytes, runBenchMain, sleep, treeCpuSeconds } from './util';

const MB = 1024 * 1024;
const PUT_BYTES = 200;
const say = (s: string) => process.stderr.write(`[etcd-trim] ${s}\n`);
const round1 = (x: number): number => Math.round(x * 10) / 10;

interface TrimRun { beforeMB: number[]; afterMB: number[]; entries: number; trimSeconds: number; etcdCpuSeconds: number; error?: string }

async function oneRun(per: number, txns: number, keys: number, settleMs: number): Promise<TrimRun> {
  const etcd = await startBareEtcd(3, '/usr/bin/etcd', 'trim');
  const unregister = onCleanup('bare etcd', etcd.stop);
  const backends = etcd.members.map((m) => new EtcdBackend({ ...etcdClientOptions(m.clientUrl, m.tls), grpcOptions: { 'grpc.ssl_target_name_override': ETCD_CERT_NAME } }));
  const rss = (): number[] => etcd.members.map((m) => round1(m.pid ? rssBytes(m.pid) / MB : 0));
  const cpu = (): number => etcd.members.reduce((s, m) => s + (m.pid ? treeCpuSeconds(m.pid, 'etcd') : 0), 0);
  try {
    // The manager whose member leads is the one that trims.
    const leads = await Promise.all(backends.map(async (b) => (await b.status()).leads));
    const b = backends[Math.max(0, leads.indexOf(true))]!;
    let revision = 0, entries = 0;
    // The no-op entries the trim sent, counted on their way (a run without a trim measures nothing).
    const counted: MaintenanceBackend = {
      status: () => b.status(), alarms: () => b.alarms(), compact: (rev) => b.compact(rev), defragment: () => b.defragment(), disarm: () => b.disarm(),
      noopEntry: async () => { await b.noopEntry(); entries++; },
    };
    const m = new Maintenance(counted, () => revision, silentLogger, { ...DEFAULT_MAINTENANCE, intervalMs: 3_600_000 });
    // Values as packed ones look: random bytes, not starting with the packed marker.
    const size = PUT_BYTES - keyOf(0).length;
    const values = Array.from({ length: 64 }, () => { const v = randomBytes(size); v[0] = 0x7b; return v; });
    let sent = 0, key = 0;
    const worker = async (): Promise<void> => {
      while (sent < txns) {
        sent++;
        const success = Array.from({ length: per }, () => { const k = key++ % keys; return { request_put: { key: Buffer.from(keyOf(k)), value: values[k % values.length]! } }; });
        const res = await soft(b.client.kv.txn({ compare: [], success, failure: [] }), CALL_TIMEOUT_MS, 'a write');
        const rev = Number(res.header.revision);
        m.noteWritten(rev, per * PUT_BYTES);
        revision = Math.max(revision, rev);
      }
    };
    await Promise.all(Array.from({ length: 4 }, worker));
    say(`${key} puts in ${txns} transactions written; quiet for ${settleMs / 1000} s`);
    await m.tick(); // compacts as a daemon does; the first look cannot tell quiet
    await sleep(settleMs);
    const beforeMB = rss();
    const cpu0 = cpu(), t0 = Date.now();
    await m.tick(); // quiet since: trims
    const trimSeconds = (Date.now() - t0) / 1000, etcdCpuSeconds = round1(cpu() - cpu0);
    if (entries === 0) throw new Error('the maintenance pass sent no entry: no trim to measure');
    await sleep(settleMs);
    return { beforeMB, afterMB: rss(), entries, trimSeconds, etcdCpuSeconds };
  } finally {
    await Promise.all(backends.map((x) => x.close().catch(() => undefined)));
    unregister();
    await etcd.stop();
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { puts: { type: 'string' }, txns: { type: 'string' }, keys: { type: 'string' }, settle: { type: 'string' }, runs: { type: 'string' }, json: { type: 'string' } } });
  const puts = Math.round(positiveOption(values.puts, 313_722, 'puts'));
  const txns = Math.round(positiveOption(values.txns, 5_010, 'txns'));
  const keys = Math.round(positiveOption(values.keys, 150_000, 'keys'));
  const settleMs = positiveOption(values.settle, 30, 'settle') * 1000;
  const count = Math.round(positiveOption(values.runs, 1, 'runs'));
  const per = Math.max(1, Math.round(puts / txns)); // puts per transaction
  installSignalCleanup();
  const runs: TrimRun[] = [];
  for (let r = 0; r < count; r++) {
    say(`run ${r + 1} of ${count}`);
    try { runs.push(await oneRun(per, txns, keys, settleMs)); } catch (err) { runs.push({ beforeMB: [], afterMB: [], entries: 0, trimSeconds: NaN, etcdCpuSeconds: NaN, error: (err as Error).message }); }
  }
  const ok = runs.filter((r) => !r.error);
  const lines = ['# etcd\'s raft log trimmed after a burst (bench/etcd-trim.ts)', '',
    `${per * txns} puts of ${PUT_BYTES} bytes in ${txns} transactions over ${keys} keys, three bare members; RSS after ${settleMs / 1000} s quiet; medians of ${ok.length} run(s).`, '',
    '| member RSS before the trim | after | entries sent | trim | etcd CPU-s of the trim |', '|---|---|---|---|---|'];
  if (ok.length) {
    const span = (xs: number[]) => `${Math.min(...xs)}-${Math.max(...xs)} MB`;
    lines.push(`| ${span(ok.flatMap((r) => r.beforeMB))} | ${span(ok.flatMap((r) => r.afterMB))} | ${median(ok.map((r) => r.entries))} | ${round1(median(ok.map((r) => r.trimSeconds)))} s | ${median(ok.map((r) => r.etcdCpuSeconds))} |`);
  }
  const failed = runs.find((r) => r.error)?.error;
  if (failed) lines.push(`failed: ${failed}`);
  return finishBench(lines.join('\n'), values.json, { options: { puts, txns, keys, settleMs, runs: count }, shoal: { ...(failed ? { error: failed } : {}), runs } as { error?: string } });
}

if (require.main === module) runBenchMain(main);
