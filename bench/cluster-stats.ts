// Pure parts of bench/cluster.ts: its options, reading nodes and tasks as the
// Engine API returns them, and the report.
import { parseArgs } from 'node:util';
import { floorReport, type FloorFigures } from './floor-stats';
import { median, positiveOption } from './util';

export type Kind = 'shoal' | 'docker';
export const KINDS: Kind[] = ['shoal', 'docker'];

export interface ClusterOptions {
  rounds: number;          // failover, worker loss and the 100-replica create, each this many times
  kinds: Kind[];
  replicas: number;        // the spread service
  workerTasks: number;     // replicas of the service whose worker is powered off
  deadlineMs: number;      // any one wait
  settleMs: number;        // idle time before memory is read
  json?: string;
}

export const CLUSTER_USAGE = 'usage: node dist/bench/cluster.js [--rounds 3] [--only shoal,docker] [--replicas 100] [--worker-tasks 10] [--deadline 180] [--settle 60] [--json FILE]\n';

export function clusterOptions(argv: string[]): ClusterOptions | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      rounds: { type: 'string' }, only: { type: 'string' }, replicas: { type: 'string' }, 'worker-tasks': { type: 'string' },
      deadline: { type: 'string' }, settle: { type: 'string' }, json: { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) return 'help';
  const kinds = values.only === undefined ? KINDS : values.only.split(',').map((x) => x.trim());
  for (const k of kinds) if (!KINDS.includes(k as Kind)) throw new Error(`--only wants a list of ${KINDS.join(', ')}; got ${k}`);
  return {
    rounds: values.rounds === '0' ? 0 : Math.round(positiveOption(values.rounds, 3, 'rounds')), // 0: the memory step only
    kinds: kinds as Kind[],
    replicas: Math.round(positiveOption(values.replicas, 100, 'replicas')),
    workerTasks: Math.round(positiveOption(values['worker-tasks'], 10, 'worker-tasks')),
    deadlineMs: positiveOption(values.deadline, 180, 'deadline') * 1000,
    settleMs: positiveOption(values.settle, 60, 'settle') * 1000,
    ...(values.json !== undefined ? { json: values.json } : {}),
  };
}

// --- the Engine API's nodes and tasks, checked where they enter -------------------------------

export interface NodeView { id: string; hostname: string; state: string; role: string; leader: boolean; reachability: string }
export interface TaskView { node: string; desired: string; state: string }

const obj = (v: unknown): Record<string, unknown> => (typeof v === 'object' && v !== null ? v as Record<string, unknown> : {});
const str = (v: unknown): string => (typeof v === 'string' ? v : '');

export function nodeViews(json: unknown): NodeView[] {
  if (!Array.isArray(json)) throw new Error('GET /nodes: not a list');
  return json.map((n) => {
    const o = obj(n);
    const ms = obj(o.ManagerStatus);
    return {
      id: str(o.ID), hostname: str(obj(o.Description).Hostname), state: str(obj(o.Status).State),
      role: str(obj(o.Spec).Role), leader: ms.Leader === true, reachability: str(ms.Reachability),
    };
  });
}

export function taskViews(json: unknown): TaskView[] {
  if (!Array.isArray(json)) throw new Error('GET /tasks: not a list');
  return json.map((t) => { const o = obj(t); return { node: str(o.NodeID), desired: str(o.DesiredState), state: str(obj(o.Status).State) }; });
}

// Running tasks (that should run) per node ID.
export function runningPerNode(tasks: TaskView[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const t of tasks) if (t.desired === 'running' && t.state === 'running') m.set(t.node, (m.get(t.node) ?? 0) + 1);
  return m;
}

// Every host Ready, one leader, every other manager reachable.
export function clusterSettled(nodes: NodeView[], hosts: number): boolean {
  const managers = nodes.filter((n) => n.role === 'manager');
  return nodes.length === hosts && nodes.every((n) => n.state === 'ready')
    && managers.filter((n) => n.leader).length === 1 && managers.every((n) => n.leader || n.reachability === 'reachable');
}

// --- the report ------------------------------------------------------------------------------

export interface SideFigures {
  // Shoal's managers split: the daemon and its etcd (MB, same hosts and order as memory.manager).
  managerSplit?: { daemon: number[]; etcd: number[] };
  up?: number;                 // s, lab up with the join
  failover: number[];          // s
  workerLoss: number[];        // s
  spread: number[];            // s, create N until N running
  spreadHosts?: string;        // tasks per host, last run
  memory: { manager: number[]; worker: number[]; engineUnder?: number[] }; // MB per host
  floor?: FloorFigures;        // a manager's floor, measured beside the lab (bench/memory-floor.ts)
  error?: string;
}

const MB_DIGITS = 1;
const MANAGER_GOAL_MB = 100; // issue 8: a manager's daemon + etcd, RSS idle
const fmt = (n: number | undefined, unit: string, digits = 2): string => (n === undefined || Number.isNaN(n) ? '-' : `${n.toFixed(digits)} ${unit}`);

export function clusterReport(o: ClusterOptions, s?: SideFigures, d?: SideFigures): string {
  const med = (x: SideFigures | undefined, f: (y: SideFigures) => number[]) => (x && f(x).length ? median(f(x)) : undefined);
  const ratio = (a?: number, b?: number) => (a !== undefined && b !== undefined && b > 0 && !Number.isNaN(a) ? (a / b).toFixed(2) : '-');
  const rows: Array<[string, number | undefined, number | undefined, string, string]> = [
    ['leader off -> first write on another manager', med(s, (x) => x.failover), med(d, (x) => x.failover), 's', '< 2 s'],
    ['worker off -> its tasks running elsewhere', med(s, (x) => x.workerLoss), med(d, (x) => x.workerLoss), 's', '< 10 s'],
    [`create ${o.replicas} replicas -> all running`, med(s, (x) => x.spread), med(d, (x) => x.spread), 's', ''],
    ['RSS idle, a manager', med(s, (x) => x.memory.manager), med(d, (x) => x.memory.manager), 'MB', `< ${MANAGER_GOAL_MB} MB`],
    ['RSS idle, a worker', med(s, (x) => x.memory.worker), med(d, (x) => x.memory.worker), 'MB', '< 60 MB'],
    ['lab up --hosts 5 --managers 3 (with the joins)', s?.up, d?.up, 's', ''],
  ];
  const w = [48, 10, 10, 12, 10];
  const line = (c: string[]) => c.map((x, i) => (i === 0 ? x.padEnd(w[i]!) : x.padStart(w[i]!))).join(' ');
  const out = [
    `\nShoal vs Docker Swarm on five-host labs (3 managers, 2 workers); medians of ${o.rounds} round(s)`,
    line(['step', 'Shoal', 'Docker', 'Shoal/Docker', 'goal']),
    '-'.repeat(w.reduce((a, b) => a + b + 1, -1)),
    ...rows.map(([name, a, b, unit, goal]) => line([name, fmt(a, unit, unit === 'MB' ? MB_DIGITS : 2), fmt(b, unit, unit === 'MB' ? MB_DIGITS : 2), ratio(a, b), goal])),
    '',
    'RSS: Shoal = its daemon (+ etcd on managers); Docker = dockerd + containerd in swarm mode.',
  ];
  for (const [name, x] of [['Shoal', s], ['Docker', d]] as const) {
    if (!x) continue;
    if (x.error) out.push(`${name}: FAILED: ${x.error}`);
    const list = (a: number[]) => a.map((v) => v.toFixed(2)).join(', ') || '-';
    out.push(`${name} runs (s): failover ${list(x.failover)}; worker loss ${list(x.workerLoss)}; create ${o.replicas} ${list(x.spread)}${x.spreadHosts ? ` (per host: ${x.spreadHosts})` : ''}`);
    if (x.managerSplit) out.push(`${name} managers' daemon / etcd (MB): ${x.managerSplit.daemon.map((v, i) => `${v.toFixed(1)} / ${(x.managerSplit?.etcd[i] ?? 0).toFixed(1)}`).join(', ')}`);
    if (x.floor) out.push(floorReport(x.floor, MANAGER_GOAL_MB, med(x, (y) => y.memory.manager)));
    out.push(`${name} RSS per host (MB): managers ${x.memory.manager.map((v) => v.toFixed(1)).join(', ') || '-'}; workers ${x.memory.worker.map((v) => v.toFixed(1)).join(', ') || '-'}${x.memory.engineUnder?.length ? `; the dockerd + containerd under Shoal (not counted) ${x.memory.engineUnder.map((v) => v.toFixed(1)).join(', ')}` : ''}`);
  }
  return out.join('\n');
}
