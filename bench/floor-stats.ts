// The memory floor's figures (bench/memory-floor.ts measures them): pure, for
// the reports of memory-floor.ts and cluster.ts.
import { median, type RssSplit } from './util';

// MB resident (RSS) with its split, per process kind: a median over samples.
export interface FloorFigure { rss: number; anon: number; file: number }
export interface FloorFigures {
  members: number;       // the etcd cluster's size
  etcd: FloorFigure;     // one member of it (the median member)
  node: FloorFigure;     // `node` idle, nothing loaded
  nodeTls: FloorFigure;  // `node` idle with tls, http2 and crypto loaded
}

export interface ProcSample { rss: number; split: RssSplit }
export interface FloorSample { etcd: ProcSample[]; node: ProcSample; nodeTls: ProcSample }

// Pure: the medians over samples (an etcd member: the median of the members' medians).
export function floorFigures(samples: readonly FloorSample[]): FloorFigures {
  const fig = (xs: ProcSample[]): FloorFigure => ({ rss: median(xs.map((x) => x.rss)), anon: median(xs.map((x) => x.split.anon)), file: median(xs.map((x) => x.split.file)) });
  const members = samples[0]?.etcd.map((_, i) => fig(samples.map((s) => s.etcd[i]!))) ?? [];
  const mid = [...members].sort((a, b) => a.rss - b.rss)[Math.floor(members.length / 2)] ?? { rss: NaN, anon: NaN, file: NaN };
  return { members: members.length, etcd: mid, node: fig(samples.map((s) => s.node)), nodeTls: fig(samples.map((s) => s.nodeTls)) };
}

const COUNT = ['none', 'one', 'two', 'three', 'four', 'five', 'six', 'seven'];
const figText = (f: FloorFigure): string => `${f.rss.toFixed(1)} MB (anon ${f.anon.toFixed(1)}, file ${f.file.toFixed(1)})`;

// Pure: the floor in a few lines; `manager` (MB, optional) is the lab's figure to compare.
export function floorReport(f: FloorFigures, goalMB = 100, manager?: number): string {
  const floor = f.etcd.rss + f.node.rss;
  return [
    `Floor of a manager, no Shoal code (idle, RSS): ${floor.toFixed(1)} MB = an etcd member of ${COUNT[f.members] ?? f.members} ${figText(f.etcd)} + node ${figText(f.node)}`,
    `  node with tls, http2 and crypto loaded: ${figText(f.nodeTls)}; room left for Shoal's manager daemon under the ${goalMB} MB goal: ${(goalMB - floor).toFixed(1)} MB`
      + (manager !== undefined && !Number.isNaN(manager) ? `; Shoal's manager (daemon + etcd) is ${(manager - floor).toFixed(1)} MB above the floor` : ''),
  ].join('\n');
}
