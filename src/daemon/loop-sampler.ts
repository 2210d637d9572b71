import { performance, type EventLoopUtilization } from 'node:perf_hooks';

// The event loop's utilization (0..1) since the last call (or since made):
// what the daemon's once-a-second samplers judge "busy" and "quiet" on
// (tiering.ts, heap-compaction.ts).
export function loopSampler(): () => number {
  let last: EventLoopUtilization = performance.eventLoopUtilization();
  return () => {
    const now = performance.eventLoopUtilization();
    const u = performance.eventLoopUtilization(now, last).utilization;
    last = now;
    return u;
  };
}
