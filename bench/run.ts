// `npm run bench`: the same workload on Shoal, on the bare engine and on real
// Docker Swarm, in one run, on this machine; prints the medians and the
// ratios Shoal/engine and Shoal/Docker.
//
//   node dist/bench/run.js [--runs 3] [--only shoal,engine,docker] [--replicas 50] [--scale-to 100]
//                          [--concurrency 10] [--deadline 300] [--settle 3] [--json FILE]
//                          [--docker-offline-images] [--trace]
//
// Steps (each timed from the request until the engine shows the result, polled every 100 ms):
//   create  a service of N replicas of shoal-test/busybox:1 `sleep 3600` until N tasks run
//   scale   N -> M until M tasks run
//   rm      the service until all its containers are gone from the engine
// The engine's limit: the same containers created and started straight
// through the host dockerd's API (bench/engine-limit.ts), `--concurrency` at a
// time (the agent's START_CONCURRENCY), stopped and removed all at once; its
// runs alternate with Shoal's on the same dockerd.
// Memory the swarm layer adds (RSS):
//   Shoal   the daemon process and its children (etcd), idle after swarm init and with M tasks
//   Docker  dockerd in swarm mode minus the same dockerd before `swarm init`, idle and with M tasks
//
// Shoal runs on the host's dockerd (a daemon started by the test harness on a
// temp data root). Docker Swarm runs on a second dockerd started here in its
// own network namespace (bench/docker-host.ts). Everything is removed at the
// end, also on failure or ctrl-c.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { runDocker, HOST_ENGINE_SOCKET } from '../test/helpers/daemon';
import { ensureBusyboxImage } from '../test/helpers/images';
import { START_CONCURRENCY } from '../src/agent/start-limit';
import { startBenchDockerd } from './docker-host';
import { engineRun, removeEngineContainers, type EngineTimes } from './engine-limit';
import { CpuSampler, traceReport, type StepWindow } from './trace';
import { oneRun, removeBenchServices, withShoalSwarm, type RunTimes, type SwarmTarget } from './workload';
import { finishBench, runBenchMain, positiveOption, http, installSignalCleanup, median, onCleanup, pipeHttp, rssBytes, sleep, treeCpuSeconds, treeRssBytes } from './util';

const IMAGE = 'shoal-test/busybox:1';
const MB = 1024 * 1024;

type Side = 'shoal' | 'engine' | 'docker';
const SIDES: Side[] = ['shoal', 'engine', 'docker'];

interface Options { runs: number; sides: Set<Side>; replicas: number; scaleTo: number; concurrency: number; deadlineMs: number; settleMs: number; json?: string; dockerOfflineImages: boolean; trace: boolean }

interface SideResult {
  runs: RunTimes[];
  rssIdle: number;          // swarm layer, bytes
  rssWithTasks: number[];   // swarm layer, bytes, per run
  raw: Record<string, number>;
  error?: string;
  trace?: string;
}

interface EngineResult { runs: EngineTimes[]; error?: string }

function sidesOption(v: string | undefined): Set<Side> {
  if (v === undefined) return new Set(SIDES);
  const list = v.split(',').map((x) => x.trim());
  for (const x of list) if (!SIDES.includes(x as Side)) throw new Error(`--only wants a list of ${SIDES.join(', ')}; got ${x}`);
  return new Set(list as Side[]);
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string' }, only: { type: 'string' }, replicas: { type: 'string' }, 'scale-to': { type: 'string' }, concurrency: { type: 'string' },
      deadline: { type: 'string' }, settle: { type: 'string' }, json: { type: 'string' }, 'docker-offline-images': { type: 'boolean' },
      trace: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(`usage: node dist/bench/run.js [--runs 3] [--only shoal,engine,docker] [--replicas 50] [--scale-to 100] [--concurrency ${START_CONCURRENCY}] [--deadline SECONDS] [--settle SECONDS] [--json FILE] [--docker-offline-images] [--trace]\n`);
    process.exit(0);
  }
  const num = positiveOption;
  return {
    runs: Math.round(num(values.runs, 3, 'runs')),
    sides: sidesOption(values.only),
    replicas: Math.round(num(values.replicas, 50, 'replicas')),
    scaleTo: Math.round(num(values['scale-to'], 100, 'scale-to')),
    concurrency: Math.round(num(values.concurrency, START_CONCURRENCY, 'concurrency')),
    deadlineMs: num(values.deadline, 300, 'deadline') * 1000,
    settleMs: num(values.settle, 3, 'settle') * 1000,
    json: values.json,
    dockerOfflineImages: values['docker-offline-images'] ?? false,
    trace: values.trace ?? false,
  };
}

const say = (s: string) => process.stderr.write(`[bench] ${s}\n`);

function hostDockerdPid(): number {
  try { return Number(readFileSync('/var/run/docker.pid', 'utf8').trim()) || 0; } catch { return 0; }
}

// `between(i)` runs after each run (the engine's run alternating with Shoal's).
async function runSide(side: 'shoal' | 'docker', target: SwarmTarget, o: Options, measure: () => number, rss: SideResult, between?: (i: number) => Promise<void>): Promise<void> {
  for (let i = 1; i <= o.runs; i++) {
    const r = await oneRun(target, { name: `bench-${side}-${i}`, image: IMAGE, replicas: o.replicas, scaleTo: o.scaleTo, deadlineMs: o.deadlineMs, settleMs: o.settleMs, measure });
    rss.runs.push(r);
    rss.rssWithTasks.push(r.rssWithTasks);
    say(`${side} run ${i}/${o.runs}: create ${r.create.toFixed(2)} s, scale ${r.scale.toFixed(2)} s, rm ${r.remove.toFixed(2)} s, swarm-layer RSS with ${o.scaleTo} tasks ${(r.rssWithTasks / MB).toFixed(1)} MB`);
    await sleep(1000);
    await between?.(i);
  }
}

// One run of the bare engine; a failure is kept and ends the engine's runs, not the bench.
async function engineOnce(o: Options, res: EngineResult, i: number): Promise<void> {
  if (res.error) return;
  const unregister = onCleanup('engine-limit containers', () => removeEngineContainers(HOST_ENGINE_SOCKET));
  try {
    const r = await engineRun({ socket: HOST_ENGINE_SOCKET, name: `bench-engine-${process.pid}-${i}`, image: IMAGE, args: ['sleep', '3600'], concurrency: o.concurrency, graceSeconds: 10 }, o.replicas, o.scaleTo);
    res.runs.push(r);
    say(`engine run ${i}/${o.runs} (${o.concurrency} at a time): create ${r.create.toFixed(2)} s, scale ${r.scale.toFixed(2)} s, rm ${r.remove.toFixed(2)} s`);
  } catch (err) {
    res.error = (err as Error).message.split('\n')[0];
    say(`engine half failed: ${res.error}`);
  } finally {
    unregister();
  }
  await sleep(1000);
}

async function benchShoal(o: Options, eng?: EngineResult): Promise<SideResult> {
  const res: SideResult = { runs: [], rssIdle: 0, rssWithTasks: [], raw: {} };
  say('Shoal: starting a daemon on the host dockerd');
  await withShoalSwarm(async (h, target) => {
    await sleep(o.settleMs);
    const measure = () => treeRssBytes(h.pid);
    res.rssIdle = measure();
    const engine = hostDockerdPid();
    res.raw.shoalDaemonPlusEtcdIdle = res.rssIdle;
    res.raw.hostDockerdIdle = engine ? rssBytes(engine) : 0;
    say(`Shoal idle (swarm initialised): daemon + etcd RSS ${(res.rssIdle / MB).toFixed(1)} MB`);
    const cpu = o.trace ? new CpuSampler(() => treeCpuSeconds(h.pid)) : undefined;
    try {
      await runSide('shoal', target, o, () => { res.raw.hostDockerdWithTasks = engine ? rssBytes(engine) : 0; return measure(); }, res, eng && ((i) => engineOnce(o, eng, i)));
    } finally { cpu?.stop(); }
    if (o.trace) {
      const windows: StepWindow[] = res.runs.flatMap((r, i) => [
        { name: `run ${i + 1}: create ${o.replicas}`, t0: r.at.create[0], t1: r.at.create[1] },
        { name: `run ${i + 1}: scale ${o.replicas} -> ${o.scaleTo}`, t0: r.at.scale[0], t1: r.at.scale[1] },
      ]);
      res.trace = traceReport(h.logs(), windows, cpu);
    }
  }, o.trace ? 'debug' : 'warn');
  return res;
}

async function benchDocker(o: Options): Promise<SideResult> {
  const res: SideResult = { runs: [], rssIdle: 0, rssWithTasks: [], raw: {} };
  say(`Docker Swarm: starting a second dockerd in its own network namespace${o.dockerOfflineImages ? ' (DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1)' : ''}`);
  const d = await startBenchDockerd({ env: o.dockerOfflineImages ? { DOCKER_SERVICE_PREFER_OFFLINE_IMAGE: '1' } : {} });
  const unregister = onCleanup('bench dockerd', d.stop);
  const target: SwarmTarget = { apiSocket: d.socket, engineSocket: d.socket };
  try {
    const version = (await http(d.socket, 'GET', '/version')).json as { Version?: string };
    say(`Docker Swarm: dockerd ${version.Version ?? '?'} (pid ${d.pid}) on ${d.socket}; loading ${IMAGE}`);
    await pipeHttp(HOST_ENGINE_SOCKET, `/images/${encodeURIComponent(IMAGE)}/get`, d.socket, '/images/load?quiet=1');
    await sleep(o.settleMs);
    const before = rssBytes(d.pid);
    const init = await runDocker(`unix://${d.socket}`, ['swarm', 'init', '--advertise-addr', d.addr], { timeoutMs: 60_000 });
    if (init.code !== 0) throw new Error(`docker swarm init on the bench dockerd failed: ${init.stderr.trim()}`);
    await sleep(o.settleMs);
    const idle = rssBytes(d.pid);
    res.rssIdle = idle - before;
    res.raw.dockerdBeforeInit = before;
    res.raw.dockerdSwarmIdle = idle;
    say(`Docker idle: dockerd RSS ${(before / MB).toFixed(1)} MB before swarm init, ${(idle / MB).toFixed(1)} MB after (swarm layer ${(res.rssIdle / MB).toFixed(1)} MB)`);
    await runSide('docker', target, o, () => { const now = rssBytes(d.pid); res.raw.dockerdWithTasks = now; return now - before; }, res);
  } finally {
    unregister();
    await removeBenchServices(target).catch(() => undefined);
    await d.stop();
  }
  return res;
}

function fmt(n: number | undefined, unit: string, digits = 2): string {
  return n === undefined || Number.isNaN(n) ? '-' : `${n.toFixed(digits)} ${unit}`;
}

function report(o: Options, shoal?: SideResult, eng?: EngineResult, docker?: SideResult): string {
  const med = (s: SideResult | undefined, f: (r: RunTimes) => number) => (s && s.runs.length ? median(s.runs.map(f)) : undefined);
  const emed = (f: (r: EngineTimes) => number) => (eng?.runs.length ? median(eng.runs.map(f)) : undefined);
  const ratio = (a?: number, b?: number) => (a !== undefined && b !== undefined && b > 0 && !Number.isNaN(a) ? (a / b).toFixed(2) : '-');
  const rows: Array<[string, number | undefined, number | undefined, number | undefined, string]> = [
    [`create ${o.replicas}, until ${o.replicas} running`, med(shoal, (r) => r.create), emed((r) => r.create), med(docker, (r) => r.create), 's'],
    [`scale ${o.replicas} -> ${o.scaleTo}, until ${o.scaleTo} running`, med(shoal, (r) => r.scale), emed((r) => r.scale), med(docker, (r) => r.scale), 's'],
    ['rm, until its containers are gone', med(shoal, (r) => r.remove), emed((r) => r.remove), med(docker, (r) => r.remove), 's'],
    ['swarm-layer RSS, idle', shoal && !shoal.error ? shoal.rssIdle / MB : undefined, undefined, docker && !docker.error ? docker.rssIdle / MB : undefined, 'MB'],
    [`swarm-layer RSS, ${o.scaleTo} tasks`, shoal?.rssWithTasks.length ? median(shoal.rssWithTasks) / MB : undefined, undefined, docker?.rssWithTasks.length ? median(docker.rssWithTasks) / MB : undefined, 'MB'],
  ];
  const w = [38, 10, 10, 10, 12, 12];
  const line = (c: string[]) => c.map((x, i) => (i === 0 ? x.padEnd(w[i]!) : x.padStart(w[i]!))).join(' ');
  const out: string[] = [];
  out.push(`\nShoal vs the engine alone and Docker Swarm (one node, ${IMAGE} \`sleep 3600\`; times are medians of ${o.runs} run(s); engine: ${o.concurrency} creates+starts at a time)`);
  out.push(line(['step', 'Shoal', 'engine', 'Docker', 'Shoal/engine', 'Shoal/Docker']));
  out.push('-'.repeat(w.reduce((a, b) => a + b + 1, -1)));
  for (const [name, s, e, d, unit] of rows) {
    const f = (n?: number) => fmt(n, unit, unit === 'MB' ? 1 : 2);
    out.push(line([name, f(s), f(e), f(d), ratio(s, e), ratio(s, d)]));
  }
  const runs = (name: string, s?: SideResult) => {
    if (!s) return;
    if (s.error) { out.push(`${name}: FAILED: ${s.error}`); return; }
    out.push(`${name} runs (create/scale/rm s): ${s.runs.map((r) => `${r.create.toFixed(2)}/${r.scale.toFixed(2)}/${r.remove.toFixed(2)}`).join(', ')}`);
  };
  out.push('');
  runs('Shoal', shoal);
  if (eng?.error) out.push(`engine: FAILED: ${eng.error}`);
  else if (eng) out.push(`engine runs (create/scale/rm s): ${eng.runs.map((r) => `${r.create.toFixed(2)}/${r.scale.toFixed(2)}/${r.remove.toFixed(2)}`).join(', ')}`);
  runs('Docker', docker);
  if (shoal && !shoal.error) {
    out.push(`Shoal memory: daemon + etcd ${fmt(shoal.rssIdle / MB, 'MB', 1)} idle; the host dockerd under it (not counted) ${fmt((shoal.raw.hostDockerdIdle ?? 0) / MB, 'MB', 1)} idle, ${fmt((shoal.raw.hostDockerdWithTasks ?? 0) / MB, 'MB', 1)} with ${o.scaleTo} tasks`);
  }
  if (docker && !docker.error) {
    out.push(`Docker memory: dockerd ${fmt((docker.raw.dockerdBeforeInit ?? 0) / MB, 'MB', 1)} before swarm init, ${fmt((docker.raw.dockerdSwarmIdle ?? 0) / MB, 'MB', 1)} in swarm mode idle, ${fmt((docker.raw.dockerdWithTasks ?? 0) / MB, 'MB', 1)} with ${o.scaleTo} tasks (last run)`);
  }
  if (shoal?.trace) out.push(shoal.trace);
  return out.join('\n');
}

async function main(): Promise<number> {
  const o = options();
  if (process.getuid?.() !== 0) throw new Error('the bench needs root (network namespaces, a second dockerd)');
  installSignalCleanup();
  await ensureBusyboxImage(HOST_ENGINE_SOCKET, IMAGE);
  let shoal: SideResult | undefined;
  let docker: SideResult | undefined;
  const engine: EngineResult | undefined = o.sides.has('engine') ? { runs: [] } : undefined;
  const side = async (name: 'shoal' | 'docker', fn: () => Promise<SideResult>): Promise<SideResult> => {
    try { return await fn(); } catch (err) {
      say(`${name} half failed: ${(err as Error).message}`);
      return { runs: [], rssIdle: 0, rssWithTasks: [], raw: {}, error: (err as Error).message.split('\n')[0] };
    }
  };
  if (o.sides.has('shoal')) shoal = await side('shoal', () => benchShoal(o, engine));
  else if (engine) for (let i = 1; i <= o.runs; i++) await engineOnce(o, engine, i);
  if (o.sides.has('docker')) docker = await side('docker', () => benchDocker(o));
  return finishBench(report(o, shoal, engine, docker), o.json, { options: { ...o, sides: [...o.sides] }, shoal, engine, docker });
}

runBenchMain(main);
