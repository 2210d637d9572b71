// `node dist/bench/scale.js`: issue 10's scale figures. A lab of three
// managers (`shoal lab up --hosts 3 --managers 3`) and simulated nodes
// (`shoal sim`, spread over --sim-procs processes) joined to it; for each step
// of --nodes (with the same step of --tasks):
//
//   join        more simulated nodes started until the step's count; time until
//               every one shows Ready in `node ls`
//   idle        the CPU the joined nodes cost while nothing happens (cores:
//               each manager's daemon and etcd, the simulators), then
//               each manager's RSS (daemon, etcd), etcd's file, `docker node ls`
//               and `docker service ls` through the real CLI on the leader and
//               on a follower (median of --samples), and `docker node ls`
//               against the leader's answers replayed by a stand-in engine
//               (the CLI's own part: decoding and printing thousands of nodes)
//   create      a service of the step's task count on the simulated nodes:
//               time from `service create` to every task reported running,
//               with `docker node ls` on a follower timed every few seconds
//               meanwhile, each time beside the follower's `GET /nodes` and the
//               CLI against that answer replayed (the CLI alone, on the loaded
//               machine)
//   loaded      the same figures as idle, with the service in place
//   held        with --hold S: each manager's memory sampled every 10 s (and at
//               the end) for S seconds more, the service still in place (a create's garbage
//               not yet collected, against what holding the tasks costs)
//   remove      `service rm`; time until the simulated nodes run nothing
//   limit       once the lab is gone: the same writes (puts, bytes,
//               transactions) through three bare etcd members with a watcher
//               on each, no Shoal code (bench/etcd-limit.ts): the physical
//               limit under "create → all running" on this machine
//
// Goals (issue 10): 5,000 nodes and 150,000 tasks on three managers, all
// running within 60 s, `node ls` under 1 s, each manager under 1 GiB.
// There is no anchor: Docker Swarm cannot be given thousands of nodes here.
//
//   node dist/bench/scale.js [--nodes 1000,5000] [--tasks 30000,150000] [--sim-procs 4]
//                            [--samples 5] [--deadline 900] [--json FILE]
//                            [--ingress-subnet 10.255.0.0/16] [--sim-prof DIR] [--leader-prof FILE [--leader-prof-phases join,idle,create]] [--heartbeat 10s] [--logs DIR]
//                            [--sim-nice 0] [--idle-only] [--prof-seconds N] [--hold S] [--limit-runs 1] [--memory-split]
//                            [--sims-to all|followers] [--sim-ping-ms MS]
//
// --ingress-subnet replaces the ingress network before any node joins
// (`docker network rm ingress`, `docker network create --ingress --subnet`,
// as Docker documents for a bigger mesh): the default /24 gives only about
// 250 nodes a load-balancer address. --sim-prof DIR runs each simulated-node
// process under `node --cpu-prof` (profiles written to DIR when it ends);
// --leader-prof FILE profiles the leader's daemon while nodes join and from
// `service create` until every task runs (FILE-join-N, FILE-create-N; through
// its inspector: bench/inspector-profile.ts); the phase `idle` (not among the
// default phases) profiles the idle window (FILE-idle-N); --leader-prof-phases create profiles only
// the create (the profiler slows a starved leader: 5,000 joins no longer fit 420 s).
// The idle and create phases also profile a follower and the first simulator
// (FILE-create-N-follower, FILE-create-N-sim); --prof-seconds N stops the
// create's profiles after N seconds.
// A FILE ending in .heapprofile samples the leader's heap instead: what the
// phase allocated and is still live at its end (FILE-create-N.heapprofile);
// one ending in .allocprofile counts all it allocated, garbage included.
// --idle-only stops each step after its idle figures (no service is created).
// --hold S keeps the service S seconds after the loaded figures, sampling
// the managers' memory every 10 s and at its end (see held, above; off unless given).
// --memory-split adds each daemon's own view of its memory to the loaded and
// held figures (V8's heap and old space, external memory; read through its
// inspector: bench/inspector-profile.ts): what of the RSS is heap, and how
// much of the heap is in use.
// --logs DIR copies each manager's shoal.log to DIR before the lab goes.
// --limit-runs N measures the etcd limit N times per step (median; 0: not at all).
// --heartbeat P runs `docker swarm update --dispatcher-heartbeat P` first: with
// P = 10s a silent node is down after 15 s, SwarmKit's own default detection
// time (its period 5 s times 3), and the leader reads half as many beats.
// Each simulator process runs in a CPU group of its own, as each lab host
// does (see growTo); --sim-nice N sets its nice value (default 0).
//
// --sims-to followers gives the simulators only the followers' addresses to
// join and open their sessions with (default all three managers; a node still
// learns every manager from its session and may move to any of them).
// --sim-ping-ms MS has every simulated node ping its manager every MS rather
// than as often as a real node would (agent/keepalive.ts): to compare rates.
// Runs on lab SHOAL_LAB_INDEX (default 40); the lab and the simulated nodes
// are removed at the end, also on failure or ctrl-c. Every wait has --deadline.
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, createWriteStream, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { daemonNodeFlags } from '../src/common/node-flags';
import { SHOAL_MAIN } from '../test/helpers/daemon';
import { parseHostLines, runLab, type LabHost } from '../test/helpers/lab';
import { startCannedEngine, type CannedEngine } from './canned-engine';
import { memorySplit, profileFile, startProfile } from './inspector-profile';
import { counterDelta, readEtcdCounters, type EtcdCounters } from './etcd-counters';
import { limitSummary, measureEtcdLimit, type LimitFigures } from './etcd-limit';
import { labDaemonPid, labHostMemory } from './lab-memory';
import { heldRanges, holdSampleTimes, type HeldRange } from './held-summary';
import { compactionsIn, linesIn, type Compaction } from './daemon-log';
import { SimCounter, type SimCounts, type SimProc } from './sim-counts';
import { SIM_PING_MS } from '../src/sim/command';
import { exec, finishBench, http, installSignalCleanup, median, onCleanup, positiveOption, runBenchMain, runCleanup, sleep, treeCpuSeconds, treeRssBytes, until } from './util';

const LAB = process.env.SHOAL_LAB_INDEX || '40';
const IMAGE = 'shoal-test/sim:1'; // never pulled: simulated nodes start nothing
const SERVICE = 'scale';
const say = (s: string): void => { process.stderr.write(`[scale] ${new Date().toISOString().slice(11, 19)} ${s}\n`); };
const splitText = (d: DaemonSplit | undefined): string => (d ? `; heap ${d.heapUsedMB}/${d.heapMB}, old ${d.oldUsedMB}/${d.oldMB}, external ${d.externalMB} (buffers ${d.arrayBuffersMB})` : '');
const MB = 1024 * 1024;

interface Options { nodes: number[]; tasks: number[]; simProcs: number; samples: number; deadlineMs: number; json?: string; ingressSubnet?: string; simProf?: string; leaderProf?: string; leaderProfPhases: string[]; heartbeat?: string; logs?: string; simNice: number; simPingMs?: number; idleOnly: boolean; profSeconds?: number; holdSeconds: number; limitRuns: number; memorySplit: boolean; simsToFollowers: boolean }

interface ManagerFigures { host: string; leader: boolean; daemonMB: number; etcdMB: number; etcdFileMB: number; daemonAnonMB: number; etcdAnonMB: number; daemonSplit?: DaemonSplit }
// With --memory-split, MB: V8's heap held and in use, its old space held and
// in use, and memory outside the heap (external, of which array buffers).
interface DaemonSplit { heapMB: number; heapUsedMB: number; oldMB: number; oldUsedMB: number; externalMB: number; arrayBuffersMB: number }
// nodeLsCli: `docker node ls` against the leader's own answers replayed by a
// stand-in engine (bench/canned-engine.ts): the CLI's part of nodeLsLeader.
interface Latency { nodeLsLeader: number; nodeLsFollower: number; serviceLs: number; nodeLsApi: number; nodeLsCli: number }
// CPU-seconds per second (cores) while idle: each manager's daemon, its etcd
// and the rest of its host (the engine), and the simulators together.
interface IdleCpu { daemons: Record<string, number>; etcd: Record<string, number>; rest: Record<string, number>; sims: number }
interface StepFigures {
  nodes: number; tasks: number;
  joinSeconds?: number;
  idleCpu?: IdleCpu;
  idle?: { managers: ManagerFigures[]; latency: Latency };
  createSeconds?: number;
  firstRunningSeconds?: number;
  nodeLsDuringCreate?: number[];   // CLI seconds, sampled while tasks were being placed
  // Beside each of those samples: the follower's own answer to `GET /nodes`
  // (its loop's wait included), and the CLI against that answer replayed
  // (canned) on the loaded machine: where the CLI's seconds go.
  nodeLsApiDuringCreate?: number[];
  nodeLsCliAloneDuringCreate?: number[];
  managerCpuSecondsDuringCreate?: Record<string, number>;
  etcdCpuSecondsDuringCreate?: Record<string, number>;
  // The simulated nodes' processes, together (they share the managers' cores).
  simCpuSecondsDuringCreate?: number;
  // Session messages the simulated nodes received from the create's request
  // until all its tasks ran, and the tasks they carried.
  sessionMessagesDuringCreate?: SimCounts;
  // Writes the create cost, from the leader's etcd (every member applies the
  // same), and the bytes each member sent its clients (mostly its daemon's watch).
  etcdDuringCreate?: EtcdCounters;
  etcdSentBytesDuringCreate?: Record<string, number>;
  runningAtEnd?: number;
  loaded?: { managers: ManagerFigures[]; latency: Latency };
  held?: Array<{ seconds: number; managers: ManagerFigures[] }>;
  heldSummary?: { fromSeconds: number; ranges: HeldRange[]; compactions: Record<string, Compaction[]> };
  // From the managers' logs over the create (also one that did not finish):
  // nodes the leaders marked down (a collapse shows here first) and heap compactions.
  markedDownDuringCreate?: number;
  compactionsDuringCreate?: Record<string, number>;
  removeSeconds?: number;
  simRssMB?: number;
  // The create's writes through bare etcd members (measured after the lab is gone).
  limit?: LimitFigures;
  error?: string;
}

// --hold: the summary's ranges start this far into the hold (a create's
// garbage has had its chance to go), or cover it all when it is shorter.
const HELD_FROM_S = 120;

// --sim-nice: the nice value of each simulator's CPU group (autogroup; -20..19; 0: a host's share).
const DEFAULT_SIM_NICE = 0;
function niceOption(v: string | undefined): number {
  if (v === undefined) return DEFAULT_SIM_NICE;
  const n = Number(v);
  if (!Number.isInteger(n) || n < -20 || n > 19) throw new Error(`--sim-nice wants a whole number from -20 to 19, got "${v}"`);
  return n;
}

// --sim-ping-ms: checked here as `shoal sim` checks --ping-ms; a simulator
// that refuses it would leave the bench waiting for joins until --deadline.
function simPingOption(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < SIM_PING_MS.min || n > SIM_PING_MS.max) throw new Error(`--sim-ping-ms wants a whole number from ${SIM_PING_MS.min} to ${SIM_PING_MS.max}, got "${v}"`);
  return n;
}

function options(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv, strict: true,
    options: { nodes: { type: 'string' }, tasks: { type: 'string' }, 'sim-procs': { type: 'string' }, samples: { type: 'string' }, deadline: { type: 'string' }, json: { type: 'string' }, 'ingress-subnet': { type: 'string' }, 'sim-prof': { type: 'string' }, 'leader-prof': { type: 'string' }, 'leader-prof-phases': { type: 'string' }, heartbeat: { type: 'string' }, logs: { type: 'string' }, 'sim-nice': { type: 'string' }, 'idle-only': { type: 'boolean' }, 'prof-seconds': { type: 'string' }, hold: { type: 'string' }, 'limit-runs': { type: 'string' }, 'memory-split': { type: 'boolean' }, 'sims-to': { type: 'string' }, 'sim-ping-ms': { type: 'string' } },
  });
  const list = (v: string | undefined, dflt: number[], what: string): number[] => {
    if (v === undefined) return dflt;
    const xs = v.split(',').map((x) => Number(x));
    if (!xs.length || xs.some((x) => !Number.isInteger(x) || x <= 0)) throw new Error(`--${what} wants whole numbers separated by commas, got "${v}"`);
    return xs;
  };
  const nodes = list(values.nodes, [1000, 5000], 'nodes');
  const tasks = list(values.tasks, nodes.map((n) => n * 30), 'tasks');
  if (tasks.length !== nodes.length) throw new Error('--tasks wants one count for each step of --nodes');
  if (nodes.some((n, i) => i > 0 && n < nodes[i - 1]!)) throw new Error('--nodes wants growing steps');
  const simsTo = values['sims-to'] ?? 'all';
  if (simsTo !== 'all' && simsTo !== 'followers') throw new Error(`--sims-to wants all or followers, got "${simsTo}"`);
  return {
    nodes, tasks,
    simsToFollowers: simsTo === 'followers',
    simProcs: positiveOption(values['sim-procs'], 4, 'sim-procs'),
    simNice: niceOption(values['sim-nice']),
    ...(values['sim-ping-ms'] !== undefined ? { simPingMs: simPingOption(values['sim-ping-ms']) } : {}),
    idleOnly: values['idle-only'] === true,
    memorySplit: values['memory-split'] === true,
    samples: positiveOption(values.samples, 5, 'samples'),
    deadlineMs: positiveOption(values.deadline, 900, 'deadline') * 1000,
    ...(values.json ? { json: values.json } : {}),
    ...(values['ingress-subnet'] ? { ingressSubnet: values['ingress-subnet'] } : {}),
    ...(values.heartbeat ? { heartbeat: values.heartbeat } : {}),
    ...(values['sim-prof'] ? { simProf: values['sim-prof'] } : {}),
    ...(values['leader-prof'] ? { leaderProf: values['leader-prof'] } : {}),
    leaderProfPhases: (values['leader-prof-phases'] ?? 'join,create').split(',').map((x) => x.trim()),
    ...(values['prof-seconds'] ? { profSeconds: positiveOption(values['prof-seconds'], 0, 'prof-seconds') } : {}),
    ...(values.logs ? { logs: values.logs } : {}),
    holdSeconds: positiveOption(values.hold, 0, 'hold'),
    limitRuns: values['limit-runs'] === '0' ? 0 : Math.round(positiveOption(values['limit-runs'], 1, 'limit-runs')),
  };
}

// --leader-prof asks for a profile of this phase (`what`: join-N, idle-N, create-N).
const profiled = (o: Options, what: string): o is Options & { leaderProf: string } => !!o.leaderProf && o.leaderProfPhases.some((p) => what.startsWith(p));

class Cluster {
  managers: LabHost[] = [];
  sims: ChildProcess[] = [];
  private readonly simLogs = new Map<ChildProcess, string>();
  readonly simCounter = new SimCounter();
  private simCount = 0;
  constructor(private readonly o: Options) {}

  socket(h: LabHost): string { return h.dockerHost.replace(/^unix:\/\//, ''); }
  // A manager's daemon log as it is now ('' when it cannot be read: nothing counted).
  managerLog(name: string): string {
    try { return readFileSync(join(`/var/lib/shoal-lab${LAB}`, 'hosts', name, 'shoal.log'), 'utf8'); } catch { return ''; }
  }

  async up(): Promise<void> {
    await runLab(LAB, ['down'], 120_000);
    onCleanup('lab down', async () => { await runLab(LAB, ['down'], 120_000); });
    // Before the lab goes: each manager's log, to read what happened at scale.
    const logs = this.o.logs;
    if (logs) onCleanup('managers\' logs', async () => {
      mkdirSync(logs, { recursive: true });
      for (const m of this.managers) copyFileSync(join(`/var/lib/shoal-lab${LAB}`, 'hosts', m.name, 'shoal.log'), join(logs, `${m.name}.log`));
    });
    const r = await runLab(LAB, ['up', '--hosts', '3', '--managers', '3', '--image', ''], 300_000);
    if (r.code !== 0) throw new Error(`lab up failed: ${r.stderr.trim()}`);
    this.managers = parseHostLines(r.stdout);
  }

  async nodes(on: LabHost): Promise<Array<{ id: string; hostname: string; state: string; leader: boolean }>> {
    const r = await http(this.socket(on), 'GET', '/v1.41/nodes', undefined, 60_000);
    if (r.status !== 200) throw new Error(`GET /nodes: ${r.status} ${r.text.trim()}`);
    return (r.json as Array<{ ID: string; Description?: { Hostname?: string }; Status?: { State?: string }; ManagerStatus?: { Leader?: boolean } }>)
      .map((n) => ({ id: n.ID, hostname: n.Description?.Hostname ?? '', state: n.Status?.State ?? '', leader: !!n.ManagerStatus?.Leader }));
  }

  async leader(): Promise<{ leader: LabHost; follower: LabHost }> {
    const l = (await this.nodes(this.managers[0]!)).find((n) => n.leader);
    const leader = this.managers.find((m) => m.name === l?.hostname);
    if (!leader) throw new Error('no leader among the managers');
    return { leader, follower: this.managers.find((m) => m !== leader)! };
  }

  // Starts simulated nodes up to `total`, spread over new processes.
  async growTo(total: number, token: string): Promise<void> {
    const more = total - this.simCount;
    if (more <= 0) return;
    const procs = Math.min(this.o.simProcs, more);
    const leaderName = this.o.simsToFollowers ? (await this.leader()).leader.name : undefined;
    const addrs = this.managers.filter((m) => m.name !== leaderName).flatMap((m) => ['--manager', m.address]);
    for (let i = 0; i < procs; i++) {
      const n = Math.floor(more / procs) + (i < more % procs ? 1 : 0);
      const prefix = `sim${this.sims.length + 1}`;
      const logPath = `/tmp/shoal-scale-${prefix}.log`;
      const log = createWriteStream(logPath);
      const prof = this.o.simProf ? ['--cpu-prof', '--cpu-prof-dir', this.o.simProf] : [];
      // Each simulator in a session of its own (`detached`), so in a CPU
      // group of its own: the kernel shares the CPU between sessions first
      // (autogroup), and each lab host's daemon and etcd are one. In the
      // bench's session, the four simulators together got the share of one
      // host, their event loops fell 10-20 s behind after a create, and the
      // managers rightly found 2,500 of 5,000 nodes silent. They stand for
      // thousands of machines with CPUs of their own.
      // The agents they simulate run in daemons: node's flags as a daemon's.
      const p = spawn(process.execPath, [...daemonNodeFlags(), ...prof, SHOAL_MAIN, 'sim', ...addrs, '--token', token, '--nodes', String(n), '--prefix', prefix, '--join-concurrency', '8', ...(this.o.simPingMs ? ['--ping-ms', String(this.o.simPingMs)] : [])],
        { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
      p.stdout!.pipe(log);
      p.stderr!.pipe(log);
      if (p.pid !== undefined && this.o.simNice !== 0) writeFileSync(`/proc/${p.pid}/autogroup`, String(this.o.simNice));
      this.sims.push(p);
      this.simLogs.set(p, logPath);
      onCleanup(`sim ${prefix}`, async () => {
        if (p.exitCode !== null) return;
        const gone = new Promise<void>((resolve) => p.once('exit', () => resolve()));
        p.kill('SIGTERM');
        await Promise.race([gone, sleep(60_000)]);
        if (p.exitCode === null) p.kill('SIGKILL');
      });
    }
    this.simCount = total;
  }

  // With --leader-prof: a CPU profile of the current leader's daemon until the returned function is called.
  async profileLeader(o: Options, what: string): Promise<(() => Promise<void>) | undefined> {
    if (!profiled(o, what)) return undefined;
    const { leader } = await this.leader();
    const pid = await labDaemonPid(LAB, leader.name);
    if (!pid) return undefined;
    return await startProfile(pid, `shoal-lab${LAB}-${leader.name}`, profileFile(o.leaderProf, what));
  }

  // The idle and create phases also profile a follower and the first simulator (what one beat, one task costs on each side).
  async profileOthers(o: Options, what: string): Promise<Array<() => Promise<void>>> {
    if (!profiled(o, what)) return [];
    const { follower } = await this.leader();
    const stops: Array<() => Promise<void>> = [];
    const fpid = await labDaemonPid(LAB, follower.name);
    if (fpid) stops.push(await startProfile(fpid, `shoal-lab${LAB}-${follower.name}`, profileFile(o.leaderProf, `${what}-follower`)));
    const sim = this.liveSimPids()[0];
    if (sim) stops.push(await startProfile(sim, undefined, profileFile(o.leaderProf, `${what}-sim`)));
    return stops;
  }

  // The live simulators and their logs (where they answer SimCounter).
  simProcs(): SimProc[] {
    return this.sims.filter((p) => p.exitCode === null && p.pid).map((p) => ({ pid: p.pid!, log: this.simLogs.get(p)! }));
  }

  private liveSimPids(): number[] {
    return this.simProcs().map((p) => p.pid);
  }

  simCpuSeconds(): number {
    return this.liveSimPids().reduce((s, pid) => s + treeCpuSeconds(pid), 0);
  }

  simRssMB(): number {
    return this.liveSimPids().reduce((s, pid) => s + rssOf(pid), 0) / MB;
  }

  async managerFigures(leaderName: string, split = false): Promise<ManagerFigures[]> {
    const out: ManagerFigures[] = [];
    for (const m of this.managers) {
      const mem = await labHostMemory(LAB, m.name);
      const daemonSplit = split ? await this.daemonSplit(m.name) : undefined;
      out.push({ host: m.name, leader: m.name === leaderName, daemonMB: round1(mem.daemon), etcdMB: round1(mem.etcd), etcdFileMB: round1(etcdFileBytes(m.name) / MB), daemonAnonMB: round1(mem.daemonSplit?.anon ?? 0), etcdAnonMB: round1(mem.etcdSplit?.anon ?? 0), ...(daemonSplit ? { daemonSplit } : {}) });
    }
    return out;
  }

  // A failure to read it is said, not fatal: the figures stand without it.
  private async daemonSplit(host: string): Promise<DaemonSplit | undefined> {
    const pid = await labDaemonPid(LAB, host);
    if (!pid) return undefined;
    try {
      const m = await memorySplit(pid, `shoal-lab${LAB}-${host}`);
      return { heapMB: round1(m.heapTotal / MB), heapUsedMB: round1(m.heapUsed / MB), oldMB: round1(m.oldSize / MB), oldUsedMB: round1(m.oldUsed / MB), externalMB: round1(m.external / MB), arrayBuffersMB: round1(m.arrayBuffers / MB) };
    } catch (err) {
      say(`  ${host}: no memory split (${(err as Error).message})`);
      return undefined;
    }
  }

  // `docker ARGS` through the real CLI on a manager: seconds taken.
  async cliSeconds(on: Pick<LabHost, 'dockerHost'>, args: string[]): Promise<number> {
    const t0 = performance.now();
    const r = await exec('docker', args, { env: { ...process.env, DOCKER_HOST: on.dockerHost }, timeoutMs: 120_000 });
    if (r.code !== 0) throw new Error(`docker ${args.join(' ')}: ${r.stderr.trim()}`);
    return (performance.now() - t0) / 1000;
  }

  async latency(): Promise<Latency> {
    const { leader, follower } = await this.leader();
    const samples = async (f: () => Promise<number>): Promise<number> => {
      const xs: number[] = [];
      for (let i = 0; i < this.o.samples; i++) xs.push(await f());
      return round3(median(xs));
    };
    return {
      nodeLsLeader: await samples(() => this.cliSeconds(leader, ['node', 'ls'])),
      nodeLsFollower: await samples(() => this.cliSeconds(follower, ['node', 'ls'])),
      serviceLs: await samples(() => this.cliSeconds(follower, ['service', 'ls'])),
      nodeLsApi: await samples(() => this.nodesApiSeconds(follower)),
      nodeLsCli: await samples(() => this.cliAlone(leader, ['/nodes', '/info'], ['node', 'ls'])),
    };
  }

  // `docker ARGS` against the manager's answers for `paths`, recorded now and
  // replayed by a stand-in engine: the CLI's own seconds for answers that size.
  async cliAlone(on: LabHost, paths: string[], args: string[]): Promise<number> {
    const canned = await this.canned(on, paths);
    try { return await this.cliSeconds(canned, args); } finally { await canned.close(); }
  }

  // A stand-in engine answering `paths` as the manager answers them now.
  async canned(on: LabHost, paths: string[]): Promise<CannedEngine> {
    const answers = new Map<string, Buffer>();
    for (const p of paths) {
      const r = await http(this.socket(on), 'GET', `/v1.41${p}`, undefined, 60_000);
      if (r.status !== 200) throw new Error(`GET ${p}: ${r.status} ${r.text.trim()}`);
      answers.set(p, Buffer.from(r.text));
    }
    return startCannedEngine(answers);
  }

  // `GET /nodes` on a manager: seconds to its whole answer.
  async nodesApiSeconds(on: LabHost): Promise<number> {
    const t0 = performance.now();
    const r = await http(this.socket(on), 'GET', '/v1.41/nodes', undefined, 60_000);
    if (r.status !== 200) throw new Error(`GET /nodes: ${r.status} ${r.text.trim()}`);
    return (performance.now() - t0) / 1000;
  }

  async runningTasks(on: LabHost): Promise<number> {
    const r = await http(this.socket(on), 'GET', '/v1.41/services?status=true', undefined, 60_000);
    if (r.status !== 200) throw new Error(`GET /services: ${r.status} ${r.text.trim()}`);
    const s = (r.json as Array<{ Spec?: { Name?: string }; ServiceStatus?: { RunningTasks?: number } }>).find((x) => x.Spec?.Name === SERVICE);
    return s?.ServiceStatus?.RunningTasks ?? 0;
  }
}

function rssOf(pid: number): number {
  try { return treeRssBytes(pid); } catch { return 0; }
}
function etcdFileBytes(host: string): number {
  try { return statSync(`/var/lib/shoal-lab${LAB}/hosts/${host}/shoal/etcd/member-data/member/snap/db`).size; } catch { return 0; }
}
const round1 = (x: number): number => Math.round(x * 10) / 10;
const round3 = (x: number): number => Math.round(x * 1000) / 1000;

async function step(c: Cluster, o: Options, i: number, token: string, fig: StepFigures): Promise<void> {
  const { nodes, tasks } = fig;
  say(`step ${i + 1}: ${nodes} simulated nodes, ${tasks} tasks`);
  const t0 = performance.now();
  const stopJoinProfile = await c.profileLeader(o, `join-${i + 1}`);
  try {
    await c.growTo(nodes, token);
    await until(`${nodes} simulated nodes Ready`, o.deadlineMs, async () => {
      const ready = (await c.nodes(c.managers[0]!)).filter((n) => n.hostname.startsWith('sim') && n.state === 'ready').length;
      say(`  ${ready} of ${nodes} Ready`);
      return ready >= nodes;
    }, 5_000);
  } finally {
    await stopJoinProfile?.();
  }
  fig.joinSeconds = round1((performance.now() - t0) / 1000);
  say(`  joined in ${fig.joinSeconds} s`);
  await sleep(10_000); // let the joins' writes and sessions settle before measuring
  fig.idleCpu = await idleCpu(c, o, i);
  say(`  idle CPU (cores): ${JSON.stringify(fig.idleCpu)}`);
  const { leader } = await c.leader();
  fig.idle = { managers: await c.managerFigures(leader.name), latency: await c.latency() };
  say(`  idle: ${JSON.stringify(fig.idle)}`);
  if (o.idleOnly) return;

  // create: from the request to every task reported running
  // What the simulated nodes' sessions delivered so far: the create's share is the difference after it.
  const received0 = await c.simCounter.read(c.simProcs());
  // Recorded before the create (and its CPU counts): the node list does not change during it.
  const canned = await c.canned((await c.leader()).follower, ['/nodes', '/info']);
  let stopProfile: (() => Promise<void>) | undefined;
  try {
    stopProfile = await profileCreate(c, o, `create-${i + 1}`);
  } catch (err) {
    await canned.close();
    throw err;
  }
  const cpu0 = Object.fromEntries(c.managers.map((m) => [m.name, hostCpu(m.name)]));
  const etcdCpu0 = Object.fromEntries(c.managers.map((m) => [m.name, hostCpu(m.name, 'etcd')]));
  const simCpu0 = c.simCpuSeconds();
  const etcd0 = Object.fromEntries(await Promise.all(c.managers.map(async (m) => [m.name, await etcdCounters(m.name)] as const)));
  const createdWall = Date.now();
  try {
    const created = performance.now();
    const r = await http(c.socket(leader), 'POST', '/v1.41/services/create', {
      Name: SERVICE,
      TaskTemplate: { ContainerSpec: { Image: IMAGE, Command: ['sleep', 'infinity'] }, Placement: { Constraints: ['node.role==worker'] } },
      Mode: { Replicated: { Replicas: tasks } },
    }, 120_000);
    if (r.status !== 201) throw new Error(`service create: ${r.status} ${r.text.trim()}`);
    fig.nodeLsDuringCreate = [];
    fig.nodeLsApiDuringCreate = [];
    fig.nodeLsCliAloneDuringCreate = [];
    let lastLs = 0;
    await until(`${tasks} tasks running`, o.deadlineMs, async () => {
      const running = await c.runningTasks(leader);
      fig.runningAtEnd = running;
      if (running > 0 && fig.firstRunningSeconds === undefined) fig.firstRunningSeconds = round1((performance.now() - created) / 1000);
      if (running >= tasks) return true;
      if (performance.now() - lastLs > 5_000) {
        lastLs = performance.now();
        const { follower } = await c.leader();
        fig.nodeLsDuringCreate!.push(round3(await c.cliSeconds(follower, ['node', 'ls'])));
        fig.nodeLsApiDuringCreate!.push(round3(await c.nodesApiSeconds(follower)));
        fig.nodeLsCliAloneDuringCreate!.push(round3(await c.cliSeconds(canned, ['node', 'ls'])));
      }
      say(`  ${running} of ${tasks} running (${((performance.now() - created) / 1000).toFixed(0)} s)`);
      return false;
    }, 1_000);
    fig.createSeconds = round1((performance.now() - created) / 1000);
  } finally {
    await canned.close();
    await stopProfile?.();
    // Also when the create did not finish: where the two cores went.
    fig.managerCpuSecondsDuringCreate = Object.fromEntries(c.managers.map((m) => [m.name, round1(hostCpu(m.name) - cpu0[m.name]!)]));
    fig.etcdCpuSecondsDuringCreate = Object.fromEntries(c.managers.map((m) => [m.name, round1(hostCpu(m.name, 'etcd') - etcdCpu0[m.name]!)]));
    fig.simCpuSecondsDuringCreate = round1(c.simCpuSeconds() - simCpu0);
    // In `finally`: a simulator that died must not hide why the create failed.
    const received1 = await c.simCounter.read(c.simProcs()).catch((err: unknown) => { say(`  session message counts: ${(err as Error).message}`); return undefined; });
    if (received1) fig.sessionMessagesDuringCreate = { messages: received1.messages - received0.messages, tasks: received1.tasks - received0.tasks };
    const logs = Object.fromEntries(c.managers.map((m) => [m.name, c.managerLog(m.name)]));
    fig.markedDownDuringCreate = Object.values(logs).reduce((n, text) => n + linesIn(text, 'node marked down: heartbeat failure', createdWall, Date.now()).length, 0);
    fig.compactionsDuringCreate = Object.fromEntries(Object.entries(logs).map(([h, text]) => [h, compactionsIn(text, createdWall, Date.now()).length]));
    say(`  during the create: ${fig.markedDownDuringCreate} nodes marked down, heap compactions ${JSON.stringify(fig.compactionsDuringCreate)}`);
    const etcd1 = Object.fromEntries(await Promise.all(c.managers.map(async (m) => [m.name, await etcdCounters(m.name)] as const)));
    const deltas = Object.fromEntries(c.managers.flatMap((m) => {
      const [a, b] = [etcd0[m.name], etcd1[m.name]];
      return a && b ? [[m.name, counterDelta(a, b)]] : [];
    }));
    fig.etcdDuringCreate = deltas[leader.name];
    fig.etcdSentBytesDuringCreate = Object.fromEntries(Object.entries(deltas).map(([h, d]) => [h, d.sentBytes]));
    const w = fig.etcdDuringCreate;
    const per = Math.max(1, fig.runningAtEnd ?? 0);
    if (w) {
      say(`  etcd during the create: ${w.puts} keys written in ${w.txns} transactions (${(w.puts / per).toFixed(2)} per running task), ${round1(w.putBytes / MB)} MB (${Math.round(w.putBytes / Math.max(1, w.puts))} bytes per key); `
        + `sent to clients ${JSON.stringify(Object.fromEntries(Object.entries(fig.etcdSentBytesDuringCreate).map(([h, b]) => [h, round1(b / MB)])))} MB`);
    }
    const r = fig.sessionMessagesDuringCreate;
    if (r) say(`  session messages to the simulated nodes during the create: ${r.messages}, carrying ${r.tasks} tasks (${(r.tasks / Math.max(1, r.messages)).toFixed(1)} per message)`);
    say(`  CPU seconds during the create: managers (daemon, etcd, engine) ${JSON.stringify(fig.managerCpuSecondsDuringCreate)}, of which etcd ${JSON.stringify(fig.etcdCpuSecondsDuringCreate)}, simulated nodes ${fig.simCpuSecondsDuringCreate}`);
  }
  say(`  all ${tasks} running in ${fig.createSeconds} s`);
  if (fig.nodeLsDuringCreate?.length) say(`  node ls on a follower during the create: ${duringText(fig)}`);
  const { leader: l2 } = await c.leader();
  fig.loaded = { managers: await c.managerFigures(l2.name, o.memorySplit), latency: await c.latency() };
  fig.simRssMB = round1(c.simRssMB());
  say(`  loaded: ${JSON.stringify(fig.loaded)}, sim processes ${fig.simRssMB} MB`);
  if (o.holdSeconds > 0) {
    fig.held = [];
    const since = performance.now();
    const sinceWall = Date.now();
    for (const t of holdSampleTimes(o.holdSeconds * 1000)) {
      await sleep(Math.max(0, since + t - performance.now()));
      const managers = await c.managerFigures((await c.leader()).leader.name, o.memorySplit);
      fig.held.push({ seconds: round1((performance.now() - since) / 1000), managers });
      say(`  held ${fig.held.at(-1)!.seconds} s: ${managers.map((m) => `${m.host}${m.leader ? ' (leader)' : ''} ${m.daemonMB} + ${m.etcdMB} MB (anon ${m.daemonAnonMB} + ${m.etcdAnonMB}${splitText(m.daemonSplit)})`).join(', ')}`);
    }
    fig.heldSummary = heldSummary(c, fig.held, sinceWall, Date.now());
  }

  const removed = performance.now();
  const rm = await http(c.socket(l2), 'DELETE', `/v1.41/services/${SERVICE}`, undefined, 120_000);
  if (rm.status !== 200) throw new Error(`service rm: ${rm.status} ${rm.text.trim()}`);
  await until('the service\'s tasks gone', o.deadlineMs, async () => {
    const r2 = await http(c.socket(l2), 'GET', `/v1.41/tasks?filters=${encodeURIComponent(JSON.stringify({ service: { [SERVICE]: true } }))}`, undefined, 60_000);
    return r2.status === 200 && (r2.json as unknown[]).length === 0;
  }, 2_000);
  fig.removeSeconds = round1((performance.now() - removed) / 1000);
  say(`  removed in ${fig.removeSeconds} s`);
}

// The hold in brief: each manager's range (daemon + etcd) from HELD_FROM_S
// on, and the heap compactions its log records during the hold.
function heldSummary(c: Cluster, held: NonNullable<StepFigures['held']>, fromMs: number, toMs: number): NonNullable<StepFigures['heldSummary']> {
  const { fromSeconds, ranges } = heldRanges(held, HELD_FROM_S);
  const compactions: Record<string, Compaction[]> = {};
  for (const m of c.managers) compactions[m.name] = compactionsIn(c.managerLog(m.name), fromMs, toMs);
  say(`  held from ${fromSeconds} s, daemon + etcd: ${ranges.map((r) => `${r.host}${r.leader ? ' (leader)' : ''} ${r.minMB}-${r.maxMB} MB (median ${r.medianMB}, ${r.samples} samples)`).join(', ')}`);
  say(`  heap compactions during the hold: ${Object.entries(compactions).map(([h, cs]) => `${h} ${cs.length}${cs.length ? ` (${cs.map((x) => `old space ${x.oldSpaceMB[0]}->${x.oldSpaceMB[1]} MB in ${(x.ms / 1000).toFixed(2)} s`).join('; ')})` : ''}`).join(', ')}`);
  return { fromSeconds, ranges, compactions };
}

// A phase's profiles (the leader's, a follower's, the first simulator's);
// the returned function stops them all, once however often it is called.
async function startProfiles(c: Cluster, o: Options, what: string): Promise<() => Promise<void>> {
  const stops: Array<(() => Promise<void>) | undefined> = [await c.profileLeader(o, what)];
  try { stops.push(...await c.profileOthers(o, what)); } catch (err) {
    for (const stop of stops) await stop?.();
    throw err;
  }
  let stopped: Promise<void> | undefined;
  return () => (stopped ??= (async () => { for (const stop of stops) await stop?.(); })());
}

// The create's profiles stop when it ends or after --prof-seconds (the first
// minutes, before a failing create's aftermath fills the profile).
async function profileCreate(c: Cluster, o: Options, what: string): Promise<() => Promise<void>> {
  const stopAll = await startProfiles(c, o, what);
  const timer = o.profSeconds ? setTimeout(() => { stopAll().catch((err: unknown) => say(`  profile: ${(err as Error).message}`)); }, o.profSeconds * 1000) : undefined;
  return async () => { clearTimeout(timer); await stopAll(); };
}

// What the joined nodes cost while nothing happens (heartbeats, keepalives,
// timers): CPU-seconds per second over IDLE_WINDOW_MS, before the latencies
// are timed (the CLI's own CPU is not in it). --leader-prof-phases idle
// profiles the leader, a follower and the first simulator over the same window
// (FILE-idle-N, FILE-idle-N-follower, FILE-idle-N-sim).
const IDLE_WINDOW_MS = 20_000;
async function idleCpu(c: Cluster, o: Options, i: number): Promise<IdleCpu> {
  const stopProfiles = await startProfiles(c, o, `idle-${i + 1}`);
  const cpu = (): Record<string, { daemon: number; etcd: number; all: number }> => Object.fromEntries(c.managers.map((m) => [m.name, { daemon: hostCpu(m.name, 'node'), etcd: hostCpu(m.name, 'etcd'), all: hostCpu(m.name) }]));
  const before = cpu();
  const sim0 = c.simCpuSeconds();
  const t0 = performance.now();
  let after: typeof before;
  let s: number;
  try {
    await sleep(IDLE_WINDOW_MS);
    after = cpu();
    s = (performance.now() - t0) / 1000;
  } finally {
    await stopProfiles(); // writing a profile is not idle work: after the reading
  }
  const rate = (x: number): number => Math.round((x / s) * 1000) / 1000;
  const per = (f: (x: { daemon: number; etcd: number; all: number }) => number): Record<string, number> => Object.fromEntries(c.managers.map((m) => [m.name, rate(f(after[m.name]!) - f(before[m.name]!))]));
  return { daemons: per((x) => x.daemon), etcd: per((x) => x.etcd), rest: per((x) => x.all - x.daemon - x.etcd), sims: rate(c.simCpuSeconds() - sim0) };
}

function etcdCounters(host: string): Promise<EtcdCounters | undefined> {
  return readEtcdCounters(`/var/lib/shoal-lab${LAB}`, `shoal-lab${LAB}-${host}`, host);
}

// CPU seconds used so far by a lab host's processes (daemon, etcd, engine).
// `command`: only that process (etcd).
function hostCpu(host: string, command?: string): number {
  try {
    const state = JSON.parse(readFileSync(`/var/lib/shoal-lab${LAB}/lab.json`, 'utf8')) as { hosts: Array<{ name: string; initPid: number }> };
    const pid1 = Number(state.hosts.find((h) => h.name === host)?.initPid);
    return treeCpuSeconds(pid1, command);
  } catch { return NaN; }
}

// Median (worst) of each series sampled during the create.
function duringText(s: StepFigures): string {
  const m = (xs: number[] | undefined): string => (xs?.length ? `${round3(median(xs))} s (${Math.max(...xs)} s)` : '-');
  return `the CLI ${m(s.nodeLsDuringCreate)}, its GET /nodes ${m(s.nodeLsApiDuringCreate)}, the CLI alone ${m(s.nodeLsCliAloneDuringCreate)}; median (worst) of ${s.nodeLsDuringCreate?.length ?? 0}`;
}

// The etcd limit's median and how many times longer the create took.
function limitCell(s: StepFigures): string {
  const l = s.limit ? limitSummary(s.limit) : undefined;
  if (!l) return s.limit ? 'failed' : '-';
  return s.createSeconds ? `${l.watchedSeconds} s (${round1(s.createSeconds / l.watchedSeconds)}×)` : `${l.watchedSeconds} s`;
}

function report(o: Options, steps: StepFigures[]): string {
  const lines = ['# Scale: three managers and simulated nodes (bench/scale.ts)', '',
    `Lab ${LAB}; simulated nodes in ${o.simProcs} processes (own CPU groups, nice ${o.simNice}; pinging ${o.simPingMs ? `every ${o.simPingMs} ms` : 'as real nodes do'}); CLI latencies are medians of ${o.samples}; "the CLI alone" is "docker node ls" against the leader's answers replayed by a stand-in engine (bench/canned-engine.ts).`, '',
    '| nodes | tasks | join | idle CPU, cores (managers / simulators) | create → all running | the etcd limit (×) | node ls (leader / follower) idle | the CLI alone idle | loaded | the CLI alone loaded | service ls loaded | node ls on a follower during the create: CLI, GET /nodes, CLI alone, median (worst) | manager RSS daemon+etcd, worst (loaded) | etcd file | remove |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|'];
  for (const s of steps) {
    const worstMgr = s.loaded?.managers.reduce((w, m) => Math.max(w, m.daemonMB + m.etcdMB), 0);
    const file = s.loaded?.managers.reduce((w, m) => Math.max(w, m.etcdFileMB), 0);
    const f = (x: number | undefined, unit = ' s'): string => (x === undefined || Number.isNaN(x) ? '-' : `${x}${unit}`);
    const sum = (r: Record<string, number>): number => Object.values(r).reduce((a, b) => a + b, 0);
    const idle = s.idleCpu ? `${round3(sum(s.idleCpu.daemons) + sum(s.idleCpu.etcd) + sum(s.idleCpu.rest))} / ${s.idleCpu.sims}` : undefined;
    lines.push(`| ${s.nodes} | ${s.tasks} | ${f(s.joinSeconds)} | ${idle ?? '-'} | ${f(s.createSeconds)} | ${limitCell(s)} | ${f(s.idle?.latency.nodeLsLeader)} / ${f(s.idle?.latency.nodeLsFollower)} | ${f(s.idle?.latency.nodeLsCli)} | ${f(s.loaded?.latency.nodeLsLeader)} / ${f(s.loaded?.latency.nodeLsFollower)} | ${f(s.loaded?.latency.nodeLsCli)} | ${f(s.loaded?.latency.serviceLs)} | ${s.nodeLsDuringCreate?.length ? duringText(s) : '-'} | ${f(worstMgr === undefined ? undefined : round1(worstMgr), ' MB')} | ${f(file, ' MB')} | ${f(s.removeSeconds)} |${s.error ? ` failed: ${s.error}` : ''}`);
  }
  const limits = steps.filter((s) => s.limit);
  if (limits.length) {
    lines.push('', 'The etcd limit (bench/etcd-limit.ts): each create\'s writes through three bare etcd members, a watcher on each, no Shoal code, after the lab was gone; medians.', '',
      '| nodes | puts | transactions | all watchers have every event | last write acknowledged | etcd CPU-s | client CPU-s | largest member RSS |', '|---|---|---|---|---|---|---|---|');
    for (const s of limits) {
      const l = limitSummary(s.limit!);
      const err = s.limit!.runs.find((r) => r.error)?.error;
      lines.push(l
        ? `| ${s.nodes} | ${s.limit!.shape.puts} | ${s.limit!.shape.txns} | ${l.watchedSeconds} s | ${l.ackedSeconds} s | ${l.etcdCpuSeconds} | ${l.clientCpuSeconds} | ${l.etcdMB} MB |${err ? ` a run failed: ${err}` : ''}`
        : `| ${s.nodes} | ${s.limit!.shape.puts} | ${s.limit!.shape.txns} | failed: ${err ?? '-'} | | | | |`);
    }
  }
  return lines.join('\n');
}

async function main(): Promise<number> {
  const o = options(process.argv.slice(2));
  installSignalCleanup();
  const c = new Cluster(o);
  const steps: StepFigures[] = o.nodes.map((n, i) => ({ nodes: n, tasks: o.tasks[i]! }));
  let error: string | undefined;
  try {
    say(`lab ${LAB} up: three managers`);
    await c.up();
    const { leader } = await c.leader();
    if (o.ingressSubnet) {
      say(`ingress replaced: ${o.ingressSubnet}`);
      // Through the API: the CLI's `network rm ingress` asks for a confirmation on stdin.
      const rm = await http(c.socket(leader), 'DELETE', '/v1.41/networks/ingress', undefined, 30_000);
      if (rm.status !== 204) throw new Error(`DELETE /networks/ingress: ${rm.status} ${rm.text.trim()}`);
      const mk = await http(c.socket(leader), 'POST', '/v1.41/networks/create',
        { Name: 'ingress', Driver: 'overlay', Ingress: true, CheckDuplicate: true, IPAM: { Driver: 'default', Config: [{ Subnet: o.ingressSubnet }] } }, 30_000);
      if (mk.status !== 201) throw new Error(`POST /networks/create (ingress): ${mk.status} ${mk.text.trim()}`);
    }
    if (o.heartbeat) {
      say(`dispatcher heartbeat: ${o.heartbeat}`);
      await c.cliSeconds(leader, ['swarm', 'update', '--dispatcher-heartbeat', o.heartbeat]);
    }
    const tok = await http(c.socket(leader), 'GET', '/v1.41/swarm', undefined, 10_000);
    const token = (tok.json as { JoinTokens?: { Worker?: string } } | undefined)?.JoinTokens?.Worker;
    if (!token) throw new Error(`no worker token from GET /swarm: ${tok.status}`);
    for (const [i, s] of steps.entries()) {
      try { await step(c, o, i, token, s); } catch (err) { s.error = (err as Error).message; error = s.error; say(`step ${i + 1} failed: ${s.error}`); break; }
    }
  } catch (err) { error = (err as Error).message; }
  // The limit runs alone: the lab and the simulators are gone first.
  await runCleanup();
  for (const s of steps) {
    if (!o.limitRuns || !s.etcdDuringCreate) continue;
    say(`the etcd limit for step ${s.nodes}: the create's writes through three bare members`);
    // What the lab left in the page cache goes to disk first: etcd's fsyncs would wait behind it.
    await exec('sync', [], { timeoutMs: 120_000 });
    s.limit = await measureEtcdLimit({ ...s.etcdDuringCreate, keys: s.tasks }, 4, o.limitRuns);
    // A limit that could not be measured fails the bench, as a failed step does.
    const failed = s.limit.runs.find((r) => r.error)?.error;
    if (failed) error ??= `step ${s.nodes}: the etcd limit failed: ${failed}`;
  }
  return finishBench(report(o, steps), o.json, { options: o, shoal: { ...(error ? { error } : {}), steps } as { error?: string } });
}

runBenchMain(main);
