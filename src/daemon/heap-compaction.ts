import { constants, performance, PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Logger } from '../common/log';
import { loopSampler } from './loop-sampler';

// A daemon that was busy keeps the heap it grew to. V8's old generation
// grows to about twice what is live during a burst (a manager's create of
// 150,000 tasks), and its collections afterwards free objects but not the
// pages they sat on: a 5,000-node leader held 435 MB of old space with 212 MB
// in use 100 s after its create (bench/scale.ts, read through the
// inspector). V8's memory reducer compacts only the most fragmented pages.
//
// So, once the loop has been quiet for a while after the heap grew, the
// daemon asks for one full collection that compacts every page: live objects
// move together and the emptied pages go back to the system. How much would
// be freed is judged from the old space in use right after V8's last full
// collection (a PerformanceObserver on 'gc'): V8 counts garbage as in use
// until it marks it, and after a burst it may not collect for minutes. It costs one
// pause: 0.8-2.5 s for 150-206 MB live on the 5,000-node managers (their
// logs, "heap compacted while quiet"). Quiet means little waits on it; the
// dispatcher gives the nodes back any stall of its own loop, and the
// manager's lease is renewed from a thread of its own (store/lease-keeper.ts).
// A small heap never qualifies (minFreeBytes), so a worker or a small swarm
// never pays for it.
//
// Tried and left out: a lean old generation while quiet (--heap-growing-percent
// 20, set at run time). The compacted leader grew back all the same (711 to
// 775 MB in two minutes, against 681 to 751 MB in six without it: what grows
// back is not the old generation), and with followers counted quiet now and
// then in a create it took 430 s against 268-304 s (bench/scale.ts).

export interface CompactionPolicy {
  windowMs: number;        // one sample per window
  quietWindows: number;    // the loop judged over this many windows, the last ones
  maxUtilization: number;  // quiet: event-loop utilization at most this over them, on average (0..1)
  minFreeBytes: number;    // old space not in use, at least this
  minFreeShare: number;    // and at least this share of the old space
  minIntervalMs: number;   // between two compactions
}

export const DEFAULT_COMPACTION_POLICY: CompactionPolicy = {
  windowMs: 1_000, quietWindows: 10, maxUtilization: 0.3, minFreeBytes: 96 * 1024 * 1024, minFreeShare: 0.35, minIntervalMs: 300_000,
};

export interface HeapSample {
  utilization: number; // event-loop utilization over the window
  oldSize: number;     // bytes of old space V8 holds
  oldUsed: number;     // of which in use (live, or garbage not yet collected)
  oldLive?: number;    // in use right after V8's last full collection, if one was seen
}

// Pure: the last samples (oldest first) and the time since the last
// compaction say whether to compact now.
export function shouldCompact(samples: readonly HeapSample[], msSinceLast: number, p: CompactionPolicy): boolean {
  if (samples.length < p.quietWindows || msSinceLast < p.minIntervalMs) return false;
  // On average: a 5,000-node leader, its create over, still had a busy second
  // now and then (a relay's batch, a `node ls`) and went two minutes without
  // ten quiet ones in a row (bench/scale.ts).
  const span = samples.slice(-p.quietWindows);
  if (span.reduce((sum, s) => sum + s.utilization, 0) / span.length > p.maxUtilization) return false;
  const last = samples[samples.length - 1]!;
  // What a collection would leave: V8 marks garbage only in a full
  // collection, and after a burst it may not run one for minutes (a
  // 5,000-node leader: 390 of 415 MB "in use" as its create ended, 507 of 527
  // MB 80 s later, 217 MB live once collected), so the old space's use after
  // the last one counts.
  const free = last.oldSize - Math.min(last.oldUsed, last.oldLive ?? last.oldUsed);
  return free >= p.minFreeBytes && free >= p.minFreeShare * last.oldSize;
}

export function oldSpace(): { size: number; used: number } {
  const s = getHeapSpaceStatistics().find((x) => x.space_name === 'old_space');
  return { size: s?.space_size ?? 0, used: s?.space_used_size ?? 0 };
}

let collect: (() => void) | undefined;

// One full collection that compacts every page of the old generation.
export function compactHeap(): { before: { size: number; used: number }; after: { size: number; used: number }; ms: number } {
  if (!collect) {
    // `gc` is given to contexts made after the flag (the main one predates it).
    setFlagsFromString('--expose-gc');
    collect = runInNewContext('gc') as () => void;
  }
  const before = oldSpace();
  const t = performance.now();
  setFlagsFromString('--compact-on-every-full-gc');
  try { collect(); } finally { setFlagsFromString('--no-compact-on-every-full-gc'); }
  return { before, after: oldSpace(), ms: performance.now() - t };
}

// Samples the loop and the heap and compacts when the policy says; returns a stop function.
export function compactWhenQuiet(log: Logger, p: CompactionPolicy = DEFAULT_COMPACTION_POLICY): () => void {
  const loopSince = loopSampler();
  let lastAt = -Infinity;
  let oldLive: number | undefined;
  const samples: HeapSample[] = [];
  // Read when V8 reports a full collection (shortly after it: an estimate).
  const gcs = new PerformanceObserver((list) => {
    if (list.getEntries().some((e) => (e as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR)) oldLive = oldSpace().used;
  });
  gcs.observe({ entryTypes: ['gc'] });
  const t = setInterval(() => {
    const { size, used } = oldSpace();
    samples.push({ utilization: loopSince(), oldSize: size, oldUsed: used, ...(oldLive !== undefined ? { oldLive } : {}) });
    if (samples.length > p.quietWindows) samples.shift();
    const now = performance.now();
    if (!shouldCompact(samples, now - lastAt, p)) return;
    lastAt = now;
    samples.length = 0;
    const seenLive = oldLive;
    try {
      const r = compactHeap();
      const MB = (b: number): number => Math.round(b / 1048576);
      log.info({ oldSpaceMB: [MB(r.before.size), MB(r.after.size)], inUseMB: [MB(r.before.used), MB(r.after.used)], ...(seenLive !== undefined ? { liveAtLastFullGcMB: MB(seenLive) } : {}), ms: Math.round(r.ms) }, 'heap compacted while quiet');
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'heap compaction failed');
    }
    loopSince(); // the pause is not the loop's work
  }, p.windowMs);
  t.unref();
  return () => { clearInterval(t); gcs.disconnect(); };
}
