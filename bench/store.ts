// The store at size: N pending tasks (a constraint no node matches, so no
// containers) with ~4 KB specs, in services of 10,000 replicas, on one Shoal
// daemon. Measures, per size:
//   create   from the first `service create` until etcd holds N tasks and is quiet
//   load     the store's own load at start (its "store loaded" log line)
//   restart  clean restart until `service ls` and `service ps` serve every task
//   kill9    kill -9 of the daemon and start again, until the same
//   memory   RSS of the daemon and of its etcd after the restart
//   latency  `docker service ls` and `docker service ps -q <service>`, median of --runs
//
//   node dist/bench/store.js [--sizes 10000,100000] [--runs 5] [--env 4096] [--json FILE]
import { parseArgs } from 'node:util';
import { startShoal, type ShoalHandle } from '../test/helpers/daemon';
import { createPendingServices, waitForQuietTasks, waitServing } from '../test/helpers/store-load';
import { etcdClient } from '../test/helpers/etcd-client';
import { finishBench, installSignalCleanup, median, onCleanup, positiveOption, rssBytes, runBenchMain } from './util';

const PER_SERVICE = 10_000;
const MB = 1024 * 1024;

interface SizeResult {
  tasks: number; createMs: number; loadMs: number[]; restartMs: number; kill9Ms: number;
  idleDaemonRssMB: number; idleEtcdRssMB: number;   // after the restart, loaded, before any listing
  daemonRssMB: number; etcdRssMB: number; etcdDbMB: number; // after the listings below
  serviceLsMs: number; servicePsMs: number; error?: string;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = Date.now();
  await fn();
  return Date.now() - t0;
}

async function cli(h: ShoalHandle, args: string[]): Promise<void> {
  const r = await h.docker(args, { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`docker ${args.join(' ')}: ${r.stderr}`);
}

function loadTimes(h: ShoalHandle): number[] {
  return [...h.logs().matchAll(/"msg":"store loaded"/g)].map((m) => {
    const line = h.logs().slice(h.logs().lastIndexOf('\n', m.index) + 1, h.logs().indexOf('\n', m.index));
    return Number(/"ms":(\d+)/.exec(line)?.[1] ?? NaN);
  });
}

async function runSize(tasks: number, envBytes: number, runs: number): Promise<SizeResult> {
  const services = Math.max(1, Math.round(tasks / PER_SERVICE));
  const replicas = Math.round(tasks / services);
  const h = await startShoal({ hostname: `storebench${tasks}`, readyTimeoutMs: 10 * 60_000 });
  const drop = onCleanup(`shoal ${tasks}`, () => h.cleanup());
  try {
    await cli(h, ['swarm', 'init']);
    const createMs = await timed(async () => {
      await createPendingServices(h, services, replicas, envBytes);
      await waitForQuietTasks(h, services * replicas, 30 * 60_000);
    });
    const loadsBefore = loadTimes(h).length;
    const t1 = Date.now();
    await h.restart();
    const names = await namesOf(h);
    while (loadTimes(h).length === loadsBefore && Date.now() - t1 < 10 * 60_000) await new Promise((res) => setTimeout(res, 100));
    // Memory once loaded and idle, before any big listing inflates the heap.
    await new Promise((res) => setTimeout(res, 3000));
    const idleDaemonRssMB = rssBytes(h.pid) / MB;
    const idleEtcdRssMB = rssBytes(h.etcdPid() ?? 0) / MB;
    const restartMs = (Date.now() - t1 - 3000) + await waitServing(h, names, replicas, 10 * 60_000);
    await h.kill9();
    const t0 = Date.now();
    await h.restart();
    await waitServing(h, await namesOf(h), replicas, 10 * 60_000);
    const kill9Ms = Date.now() - t0;
    const etcdPid = h.etcdPid();
    const c = etcdClient(h);
    const db = await c.status().finally(() => c.close());
    const ls: number[] = [];
    const ps: number[] = [];
    for (let i = 0; i < runs; i++) {
      ls.push(await timed(() => cli(h, ['service', 'ls'])));
      ps.push(await timed(() => cli(h, ['service', 'ps', '-q', 'big0'])));
    }
    return {
      tasks: services * replicas, createMs, loadMs: loadTimes(h), restartMs, kill9Ms, idleDaemonRssMB, idleEtcdRssMB,
      daemonRssMB: rssBytes(h.pid) / MB, etcdRssMB: etcdPid ? rssBytes(etcdPid) / MB : NaN, etcdDbMB: db.dbSize / MB,
      serviceLsMs: median(ls), servicePsMs: median(ps),
    };
  } finally {
    drop();
    await h.cleanup();
  }
}

async function namesOf(h: ShoalHandle): Promise<string[]> {
  for (let i = 0; ; i++) {
    const r = await h.api('GET', '/v1.41/services', undefined, { timeoutMs: 30_000 }).catch(() => undefined);
    if (r?.status === 200) return (r.json as Array<{ Spec: { Name: string } }>).map((s) => s.Spec.Name).sort();
    if (i > 300) throw new Error('the daemon never listed its services');
    await new Promise((res) => setTimeout(res, 100));
  }
}

function report(results: SizeResult[]): string {
  const lines = ['store at size (pending tasks with ~4 KB specs):'];
  for (const r of results) {
    if (r.error) { lines.push(`  ${r.tasks} tasks: FAILED ${r.error}`); continue; }
    lines.push(`  ${r.tasks.toLocaleString('en')} tasks: create ${(r.createMs / 1000).toFixed(1)} s; store load ${r.loadMs.map((m) => `${(m / 1000).toFixed(1)} s`).join(', ')}; `
      + `serving after restart ${(r.restartMs / 1000).toFixed(1)} s, after kill -9 ${(r.kill9Ms / 1000).toFixed(1)} s; `
      + `RSS loaded and idle: daemon ${r.idleDaemonRssMB.toFixed(0)} MB + etcd ${r.idleEtcdRssMB.toFixed(0)} MB = ${(r.idleDaemonRssMB + r.idleEtcdRssMB).toFixed(0)} MB; `
      + `after the listings: daemon ${r.daemonRssMB.toFixed(0)} MB + etcd ${r.etcdRssMB.toFixed(0)} MB = ${(r.daemonRssMB + r.etcdRssMB).toFixed(0)} MB (etcd db ${r.etcdDbMB.toFixed(0)} MB); `
      + `service ls ${r.serviceLsMs} ms, service ps (${PER_SERVICE.toLocaleString('en')} tasks) ${r.servicePsMs} ms (medians)`);
  }
  return lines.join('\n');
}

async function main(): Promise<number> {
  installSignalCleanup();
  const { values } = parseArgs({ options: { sizes: { type: 'string' }, runs: { type: 'string' }, env: { type: 'string' }, json: { type: 'string' } } });
  const sizes = (values.sizes ?? '10000,100000').split(',').map((s) => Math.round(positiveOption(s, 10_000, 'sizes')));
  const runs = Math.round(positiveOption(values.runs, 5, 'runs'));
  const env = Math.round(positiveOption(values.env, 4096, 'env'));
  const results: SizeResult[] = [];
  for (const n of sizes) {
    try { results.push(await runSize(n, env, runs)); } catch (err) {
      results.push({ tasks: n, error: (err as Error).message } as SizeResult);
    }
    process.stderr.write(`${report(results.slice(-1))}\n`);
  }
  const failed = results.find((r) => r.error);
  return finishBench(report(results), values.json, { options: { sizes, runs, env }, shoal: { ...results, error: failed?.error } });
}

runBenchMain(main);
