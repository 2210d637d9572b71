// The mesh bench's figures (bench/mesh.ts, on namespaces or on a lab): per
// path the median throughput and latency percentiles, and each balanced path
// against its direct one with the goals of issue 9 (pure).
import { median } from './util';

// One way to the server: `run` starts the namespace tool (test/helpers/lb-ns-tool.ts) where the client sits.
export interface MeshPath { name: string; host: string; namePort: number; sinkPort: number; run: <T>(args: string[], timeoutMs: number) => Promise<T> }
// A pair is (path, its direct path); `goals` false: reported without issue 9's
// goals (they are for the balancer's paths, not for encryption).
export interface MeshPair { via: string; direct: string; goals: boolean }
export interface MeshSetting { paths: MeshPath[]; pairs: MeshPair[]; title: string }
export interface PathResult { latencyMs: number[]; mbps: number[] }
export interface PathSummary { mbpsMedian: number; p50Ms: number; p99Ms: number; samples: number }

export function percentile(xs: number[], p: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

export function summarize(results: Map<string, PathResult>): Record<string, PathSummary> {
  return Object.fromEntries([...results].map(([name, r]) => [name, {
    mbpsMedian: median(r.mbps), p50Ms: percentile(r.latencyMs, 50), p99Ms: percentile(r.latencyMs, 99), samples: r.latencyMs.length,
  }]));
}

// The table and one line per (balanced, direct) pair.
export function meshLines(summary: Record<string, PathSummary>, pairs: MeshPair[]): string[] {
  return [
    'path            MB/s (median)   p50 ms   p99 ms',
    ...Object.entries(summary).map(([n, s]) => `${n.padEnd(15)} ${s.mbpsMedian.toFixed(0).padStart(13)}   ${s.p50Ms.toFixed(3).padStart(6)}   ${s.p99Ms.toFixed(3).padStart(6)}`),
    ...pairs.map(({ via, direct, goals }) => {
      const a = summary[via]!;
      const d = summary[direct]!;
      const goal = (g: string): string => (goals ? ` (goal ${g})` : '');
      return `${via} vs ${direct}: throughput ${(100 * a.mbpsMedian / d.mbpsMedian).toFixed(1)} %${goal('>= 90 %')}, added p99 ${(a.p99Ms - d.p99Ms).toFixed(3)} ms${goal('< 1 ms')}, added p50 ${(a.p50Ms - d.p50Ms).toFixed(3)} ms`;
    }),
  ];
}
