// `--trace`: where a step's time goes inside Shoal. The daemon runs with
// debug logs; afterwards its log gives, per task, when each milestone
// happened (the orchestrator's and scheduler's batches, each state the agent
// reached, each status write that landed in etcd). For a step (from the
// request at t0 to the bench's poll seeing all tasks running) it prints when
// the first, the median and the last task reached each milestone, in seconds
// after t0.
import { median } from './util';

interface Line { time: number | string; msg: string; task?: string; to?: string; state?: string }

export interface StepWindow { name: string; t0: number; t1: number }

// Samples a process tree's CPU time every 100 ms, for the CPU Shoal itself
// (daemon + etcd) spent in each step.
export class CpuSampler {
  private readonly samples: Array<[number, number]> = [];
  private readonly timer: NodeJS.Timeout;

  constructor(read: () => number) {
    this.timer = setInterval(() => this.samples.push([Date.now(), read()]), 100);
  }

  stop(): void { clearInterval(this.timer); }

  between(t0: number, t1: number): number | undefined {
    const at = (t: number) => this.samples.find(([ts]) => ts >= t)?.[1];
    const a = at(t0);
    const b = at(t1) ?? this.samples.at(-1)?.[1];
    return a === undefined || b === undefined ? undefined : b - a;
  }
}

// Milestones in the order a task goes through them. `state:X` comes from the
// agent's runner (the step is done on the engine), `written:X` from the
// status reporter (the write committed to etcd).
const MILESTONES: Array<[string, string]> = [
  ['orchestrator decisions', 'orch'],
  ['scheduling pass', 'sched'],
  ['state:accepted', 'agent: accepted'],
  ['state:ready', 'agent: container created'],
  ['state:running', 'agent: container started'],
  ['written:running', 'etcd: running written'],
];

function parse(text: string): Line[] {
  const out: Line[] = [];
  for (const l of text.split('\n')) {
    if (!l.startsWith('{')) continue;
    try { out.push(JSON.parse(l) as Line); } catch { /* not a log line */ }
  }
  return out;
}

// Per milestone, the time each task (or batch) first reached it.
function milestones(lines: Line[], w: StepWindow): Map<string, number[]> {
  const first = new Map<string, Map<string, number>>();
  const batch = new Map<string, number[]>();
  for (const l of lines) {
    const time = typeof l.time === 'string' ? Date.parse(l.time) : l.time;
    if (!(time >= w.t0 && time <= w.t1)) continue;
    let key: string | undefined;
    if (l.msg === 'task state' && l.to) key = `state:${l.to}`;
    else if (l.msg === 'task status written' && l.state) key = `written:${l.state}`;
    else if (l.msg === 'orchestrator decisions' || l.msg === 'scheduling pass') {
      (batch.get(l.msg) ?? batch.set(l.msg, []).get(l.msg)!).push(time);
      continue;
    }
    if (!key || !l.task) continue;
    const m = first.get(key) ?? first.set(key, new Map()).get(key)!;
    if (!m.has(l.task)) m.set(l.task, time);
  }
  const out = new Map<string, number[]>(batch);
  for (const [k, m] of first) out.set(k, [...m.values()]);
  return out;
}

export function traceReport(daemonLog: string, windows: StepWindow[], cpu?: CpuSampler): string {
  const lines = parse(daemonLog);
  const out: string[] = ['', 'Shoal trace (seconds after the request: first / median / last task, [count])'];
  for (const w of windows) {
    const m = milestones(lines, w);
    const used = cpu?.between(w.t0, w.t1);
    out.push(`${w.name} (seen running by the poll at ${((w.t1 - w.t0) / 1000).toFixed(2)} s; Shoal daemon + etcd CPU ${used === undefined ? '-' : `${used.toFixed(2)} s`})`);
    for (const [key, label] of MILESTONES) {
      const ts = (m.get(key) ?? []).map((t) => (t - w.t0) / 1000).sort((a, b) => a - b);
      if (!ts.length) { out.push(`  ${label.padEnd(28)} -`); continue; }
      out.push(`  ${label.padEnd(28)} ${ts[0]!.toFixed(2)} / ${median(ts).toFixed(2)} / ${ts.at(-1)!.toFixed(2)}  [${ts.length}]`);
    }
  }
  return out.join('\n');
}
