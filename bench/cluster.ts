// `node dist/bench/cluster.js`: five-host Shoal lab against a five-host lab of
// real Docker Swarm, one after the other on this machine (side by side they
// would share 2 cores and skew each other). Each lab: `shoal lab up --hosts 5
// --managers 3 --workers 2` (Docker's with --docker-swarm), then per round:
//
//   failover     power the leader off (`lab kill`); from the moment its pid 1 is gone,
//                a secret create on another manager every 100 ms (1 s client
//                time-out) until one succeeds; the leader is powered on again
//                and the lab waits until all five are Ready, one Leader.
//   worker loss  a service of --worker-tasks replicas; the worker with most of
//                them powered off; time until that many run on the other hosts.
//   spread       a service of --replicas replicas created: time until all run
//                (tasks per host noted), then removed.
//
// and once, before the rounds, each host's RSS idle (--settle seconds after
// the swarm formed, no services; the median of 5 samples 2 s apart): Shoal's
// daemon (+ etcd on managers) vs dockerd + containerd in swarm mode; for
// Shoal also each process's anon / file pages / PSS (in the log lines), and
// a manager's floor measured beside the lab for as long: a bare three-member
// etcd with Shoal's flags plus an idle node (bench/memory-floor.ts).
// --rounds 0 runs only that memory step.
//
//   node dist/bench/cluster.js [--rounds 3] [--only shoal,docker] [--replicas 100] [--worker-tasks 10]
//                              [--deadline 180] [--settle 60] [--json FILE]
//
// Each lab runs with its own index (Shoal 5, Docker 6; SHOAL_LAB_INDEX and
// DOCKER_LAB_INDEX change them) and is
// removed at the end, also on failure or ctrl-c. Every wait has --deadline.
import { readFileSync } from 'node:fs';
import { alive } from '../src/common/proc';
import { ensureBusyboxImage } from '../test/helpers/images';
import { labCli, labMust, labUp, LAB_INDEX, type LabHost } from '../test/helpers/lab';
import {
  CLUSTER_USAGE, clusterOptions, clusterReport, clusterSettled, nodeViews, runningPerNode, taskViews,
  type ClusterOptions, type Kind, type NodeView, type SideFigures,
} from './cluster-stats';
import { labHostMemory, type HostMemory } from './lab-memory';
import { floorFigures } from './floor-stats';
import { sampleFloor, startMemoryFloor } from './memory-floor';
import { finishBench, http, installSignalCleanup, median, onCleanup, runBenchMain, sleep, until, type RssSplit } from './util';

const IMAGE = 'shoal-test/busybox:1';
const POLL_MS = 100;
const q = (o: unknown) => encodeURIComponent(JSON.stringify(o));
const say = (s: string) => process.stderr.write(`[cluster] ${s}\n`);

class Lab {
  hosts: LabHost[] = [];
  constructor(readonly kind: Kind) {}
  socket(name: string): string { return this.host(name).dockerHost.replace(/^unix:\/\//, ''); }
  host(name: string): LabHost { const h = this.hosts.find((x) => x.name === name); if (!h) throw new Error(`no host ${name}`); return h; }
  managers(): string[] { return this.hosts.filter((h) => h.role === 'manager').map((h) => h.name); }
  async nodes(on: string): Promise<NodeView[]> {
    const r = await http(this.socket(on), 'GET', '/v1.41/nodes', undefined, 5_000);
    if (r.status !== 200) throw new Error(`GET /nodes on ${on}: ${r.status} ${r.text.trim()}`);
    return nodeViews(r.json);
  }
  async leader(on: string): Promise<NodeView> {
    const l = (await this.nodes(on)).find((n) => n.leader);
    if (!l) throw new Error(`no leader in node ls on ${on}`);
    return l;
  }
  // Powers the host off; resolves when its pid 1 is gone (the moment it went off), with the
  // rest of `lab kill` (cable, state file) still finishing in `done`.
  async kill(name: string): Promise<{ off: number; done: Promise<string> }> {
    const pid = initPid(this.kind, name);
    const done = labMust(this.kind, ['kill', name]);
    let finished = false;
    done.then(() => { finished = true; }, () => { finished = true; });
    while (alive(pid) && !finished) await sleep(5);
    const off = performance.now();
    if (alive(pid)) await done; // the kill failed: let it say why
    return { off, done };
  }
  start(name: string): Promise<string> { return labMust(this.kind, ['start', name]); }
}

// The host's pid 1 (`unshare`) from the lab's state file in its default folder.
function initPid(kind: Kind, name: string): number {
  const state = JSON.parse(readFileSync(`/var/lib/shoal-lab${LAB_INDEX[kind]}/lab.json`, 'utf8')) as { hosts?: Array<{ name?: unknown; initPid?: unknown }> };
  const pid = state.hosts?.find((h) => h.name === name)?.initPid;
  if (typeof pid !== 'number' || pid <= 0) throw new Error(`the lab state has no pid for ${name}`);
  return pid;
}

// All five Ready with one Leader and the others Reachable, as a live manager sees it.
async function settled(lab: Lab, o: ClusterOptions, on: string[]): Promise<void> {
  await until('the lab to settle (all Ready, one Leader)', o.deadlineMs, async () => {
    for (const m of on) { try { if (clusterSettled(await lab.nodes(m), lab.hosts.length)) return true; } catch { /* that one is not answering */ } }
    return false;
  });
}

async function createService(lab: Lab, on: string, name: string, replicas: number): Promise<string> {
  const spec = { Name: name, Labels: { 'shoal.bench': '1' }, TaskTemplate: { ContainerSpec: { Image: IMAGE, Args: ['sleep', '3600'] } }, Mode: { Replicated: { Replicas: replicas } } };
  const r = await http(lab.socket(on), 'POST', '/v1.41/services/create', spec, 60_000);
  if (r.status !== 201 && r.status !== 200) throw new Error(`service create ${name}: ${r.status} ${r.text.trim()}`);
  return (r.json as { ID: string }).ID;
}

async function running(lab: Lab, on: string, serviceId: string): Promise<Map<string, number>> {
  const r = await http(lab.socket(on), 'GET', `/v1.41/tasks?filters=${q({ service: { [serviceId]: true } })}`, undefined, 10_000);
  if (r.status !== 200) throw new Error(`GET /tasks: ${r.status} ${r.text.trim()}`);
  return runningPerNode(taskViews(r.json));
}
const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);

// Removes the service and waits until no host runs a container of it.
async function removeService(lab: Lab, o: ClusterOptions, on: string, id: string): Promise<void> {
  await http(lab.socket(on), 'DELETE', `/v1.41/services/${id}`, undefined, 30_000);
  await until('the service\'s containers to go', o.deadlineMs, async () => {
    for (const h of lab.hosts) {
      const r = await http(lab.socket(h.name), 'GET', `/v1.41/containers/json?all=1&filters=${q({ label: [`com.docker.swarm.service.id=${id}`] })}`, undefined, 10_000);
      if (r.status !== 200 || (r.json as unknown[]).length) return false;
    }
    return true;
  });
}

// One host's RSS now (MB): Shoal's daemon, its etcd, and the engine (dockerd + containerd).
const hostMemory = (lab: Lab, name: string): Promise<HostMemory> => labHostMemory(LAB_INDEX[lab.kind], name);

// Each host's RSS idle: the median of MEMORY_SAMPLES samples MEMORY_SAMPLE_MS apart.
const MEMORY_SAMPLES = 5;
const MEMORY_SAMPLE_MS = 2_000;
async function labMemory(lab: Lab, fig: SideFigures): Promise<void> {
  const per = new Map<string, HostMemory[]>();
  for (let i = 0; i < MEMORY_SAMPLES; i++) {
    if (i > 0) await sleep(MEMORY_SAMPLE_MS);
    for (const h of lab.hosts) per.set(h.name, [...(per.get(h.name) ?? []), await hostMemory(lab, h.name)]);
  }
  const split = { daemon: [] as number[], etcd: [] as number[] };
  for (const h of lab.hosts) {
    const xs = per.get(h.name) ?? [];
    const daemon = median(xs.map((x) => x.daemon));
    const etcd = median(xs.map((x) => x.etcd));
    const engine = median(xs.map((x) => x.engine));
    const layer = lab.kind === 'docker' ? engine : median(xs.map((x) => x.daemon + x.etcd));
    (h.role === 'manager' ? fig.memory.manager : fig.memory.worker).push(layer);
    if (lab.kind === 'shoal') {
      fig.memory.engineUnder?.push(engine);
      if (h.role === 'manager') { split.daemon.push(daemon); split.etcd.push(etcd); }
      const last = xs[xs.length - 1];
      say(`shoal ${h.name} (${h.role}): daemon ${daemon.toFixed(1)} MB${splitText(last?.daemonSplit)}${h.role === 'manager' ? `, etcd ${etcd.toFixed(1)} MB${splitText(last?.etcdSplit)}` : ''}`);
    }
  }
  if (lab.kind === 'shoal') fig.managerSplit = split;
}

const splitText = (s?: RssSplit): string => (s ? ` (anon ${s.anon.toFixed(1)}, file ${s.file.toFixed(1)}, PSS ${s.pss.toFixed(1)})` : '');

async function failover(lab: Lab, o: ClusterOptions, round: number): Promise<number> {
  const managers = lab.managers();
  const leader = (await lab.leader(managers[0]!)).hostname;
  const other = managers.find((m) => m !== leader)!;
  const power = await lab.kill(leader);
  const t0 = power.off;
  let n = 0;
  const took = await until(`a write through ${other} after ${leader} died`, o.deadlineMs, async () => {
    const started = performance.now();
    const data = Buffer.from('x').toString('base64');
    const r = await http(lab.socket(other), 'POST', '/v1.41/secrets/create', { Name: `bench-failover-${round}-${++n}`, Data: data }, 1_000).catch(() => undefined);
    if (r?.status === 201) return (performance.now() - t0) / 1000;
    await sleep(Math.max(0, POLL_MS - (performance.now() - started)));
    return false;
  }, 0);
  say(`${lab.kind} round ${round}: leader ${leader} off, write through ${other} after ${took.toFixed(2)} s (${n} attempts)`);
  await power.done;
  await lab.start(leader);
  await settled(lab, o, managers);
  return took;
}

async function workerLoss(lab: Lab, o: ClusterOptions, round: number): Promise<number> {
  const on = (await lab.leader(lab.managers()[0]!)).hostname;
  const id = await createService(lab, on, `bench-worker-loss-${round}`, o.workerTasks);
  const placed = await until(`${o.workerTasks} tasks running`, o.deadlineMs, async () => { const m = await running(lab, on, id); return sum(m) === o.workerTasks ? m : false; });
  const nodes = await lab.nodes(on);
  const workers = nodes.filter((x) => x.role === 'worker').sort((a, b) => (placed.get(b.id) ?? 0) - (placed.get(a.id) ?? 0));
  const victim = workers[0];
  if (!victim || !placed.get(victim.id)) throw new Error('no worker runs a task of the service');
  const power = await lab.kill(victim.hostname);
  const t0 = power.off;
  const took = await until(`${o.workerTasks} tasks running without ${victim.hostname}`, o.deadlineMs, async () => {
    const m = await running(lab, on, id);
    m.delete(victim.id);
    return sum(m) >= o.workerTasks ? (performance.now() - t0) / 1000 : false;
  }, POLL_MS);
  say(`${lab.kind} round ${round}: worker ${victim.hostname} (${placed.get(victim.id)} tasks) off, all running elsewhere after ${took.toFixed(2)} s`);
  await power.done;
  await lab.start(victim.hostname);
  await settled(lab, o, [on]);
  await removeService(lab, o, on, id);
  return took;
}

async function spread(lab: Lab, o: ClusterOptions, round: number, fig: SideFigures): Promise<number> {
  const on = (await lab.leader(lab.managers()[0]!)).hostname;
  const t0 = performance.now();
  const id = await createService(lab, on, `bench-spread-${round}`, o.replicas);
  const m = await until(`${o.replicas} tasks running`, o.deadlineMs, async () => { const x = await running(lab, on, id); return sum(x) === o.replicas ? x : false; }, POLL_MS);
  const took = (performance.now() - t0) / 1000;
  const names = new Map((await lab.nodes(on)).map((n) => [n.id, n.hostname]));
  fig.spreadHosts = [...m].map(([node, c]) => `${names.get(node) ?? node} ${c}`).sort().join(', ');
  say(`${lab.kind} round ${round}: ${o.replicas} replicas running after ${took.toFixed(2)} s (${fig.spreadHosts})`);
  await removeService(lab, o, on, id);
  return took;
}

async function side(kind: Kind, o: ClusterOptions): Promise<SideFigures> {
  const fig: SideFigures = { failover: [], workerLoss: [], spread: [], memory: { manager: [], worker: [], ...(kind === 'shoal' ? { engineUnder: [] } : {}) } };
  const lab = new Lab(kind);
  const down = async () => { const r = await labCli(kind, ['down']); if (r.code !== 0) say(`${kind} lab down: ${r.stderr.trim()}`); };
  const unregister = onCleanup(`${kind} lab`, down);
  try {
    await down(); // whatever an interrupted run left at this index
    say(`${kind}: lab up --hosts 5 --managers 3 --workers 2${kind === 'docker' ? ' --docker-swarm' : ''}`);
    const t0 = performance.now();
    lab.hosts = (await labUp(kind, ['--hosts', '5', '--managers', '3', '--workers', '2'], o.deadlineMs + 120_000)).hosts;
    fig.up = (performance.now() - t0) / 1000;
    // Shoal's floor idles beside the lab, for as long, and is sampled with it.
    const floor = kind === 'shoal' ? await startMemoryFloor() : undefined;
    const unregisterFloor = floor ? onCleanup('memory floor', floor.stop) : () => undefined;
    try {
      say(`${kind}: the lab is up and joined after ${fig.up.toFixed(1)} s; idle ${o.settleMs / 1000} s${floor ? ' (beside it, the memory floor: bench/memory-floor.ts)' : ''}`);
      await sleep(o.settleMs);
      const floorSamples = floor ? sampleFloor(floor, MEMORY_SAMPLES, MEMORY_SAMPLE_MS) : undefined;
      await labMemory(lab, fig);
      if (floorSamples) fig.floor = floorFigures(await floorSamples);
    } finally {
      unregisterFloor();
      await floor?.stop();
    }
    say(`${kind}: RSS idle, managers ${fig.memory.manager.map((v) => v.toFixed(1)).join(' ')} MB, workers ${fig.memory.worker.map((v) => v.toFixed(1)).join(' ')} MB`);
    for (let i = 1; i <= o.rounds; i++) {
      fig.failover.push(await failover(lab, o, i));
      fig.workerLoss.push(await workerLoss(lab, o, i));
      fig.spread.push(await spread(lab, o, i, fig));
    }
  } catch (err) {
    fig.error = (err as Error).message.split('\n')[0];
    say(`${kind} half failed: ${(err as Error).message}`);
  } finally {
    unregister();
    await down();
  }
  return fig;
}

async function main(): Promise<number> {
  const o = clusterOptions(process.argv.slice(2));
  if (o === 'help') { process.stdout.write(CLUSTER_USAGE); return 0; }
  if (process.getuid?.() !== 0) throw new Error('the bench needs root (it makes labs)');
  installSignalCleanup();
  await ensureBusyboxImage('/var/run/docker.sock', IMAGE);
  const figs: Partial<Record<Kind, SideFigures>> = {};
  for (const k of o.kinds) figs[k] = await side(k, o);
  return finishBench(clusterReport(o, figs.shoal, figs.docker), o.json, { options: o, ...(figs.shoal ? { shoal: figs.shoal } : {}), ...(figs.docker ? { docker: figs.docker } : {}) });
}

runBenchMain(main);
