import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import type { Logger } from '../common/log';

// TurboFan, V8's optimizing compiler, costs memory from its first use: its
// code pages in the node binary become resident (about 5 MB of RSS per
// daemon) and optimized code fills the heap. An idle daemon never needs it, a
// busy one does (thousands of tasks after an etcd restart, an election on a
// starved host, issue 10's scale). So the daemon starts with --no-opt
// (`common/node-flags.ts`; Sparkplug still compiles hot functions to baseline
// code) and turns TurboFan on for good the first time its event loop stays
// busy. V8 reads the flag at each tiering decision: no restart is needed, so a
// worker promoted to manager, or an idle manager that gets work, runs at full
// speed within seconds. (Lite mode cannot be left at run time; this can.)

export interface BusyPolicy {
  windowMs: number;   // one event-loop-utilization sample per window
  threshold: number;  // a window counts as busy from this utilization (0..1)
  windows: number;    // this many busy windows in a row turn TurboFan on
}
// 3 s at half the loop's time or more: a daemon starting or joining stays
// below it, a busy store or scheduler crosses it in seconds.
export const DEFAULT_BUSY_POLICY: BusyPolicy = { windowMs: 1_000, threshold: 0.5, windows: 3 };

// Pure: given the busy windows in a row so far and this window's utilization,
// the new count and whether to turn the optimizing compiler on.
export function busyStep(busyInARow: number, utilization: number, p: BusyPolicy): { busyInARow: number; optimize: boolean } {
  const n = utilization >= p.threshold ? busyInARow + 1 : 0;
  return { busyInARow: n, optimize: n >= p.windows };
}

// Whether node runs with the optimizing compiler off (the flag on the command line or in NODE_OPTIONS).
export function startedWithoutTurbofan(execArgv: readonly string[] = process.execArgv, nodeOptions: string = process.env.NODE_OPTIONS ?? ''): boolean {
  const off = new Set(['--no-opt', '--no-turbofan']);
  return [...execArgv, ...nodeOptions.split(/\s+/)].some((a) => off.has(a));
}

// Watches the event loop and turns TurboFan on once it is busy; returns a stop function.
export function optimizeWhenBusy(log: Logger, p: BusyPolicy = DEFAULT_BUSY_POLICY): () => void {
  if (!startedWithoutTurbofan()) return () => undefined;
  let last: EventLoopUtilization = performance.eventLoopUtilization();
  let busyInARow = 0;
  const t = setInterval(() => {
    const now = performance.eventLoopUtilization();
    const u = performance.eventLoopUtilization(now, last).utilization;
    last = now;
    const s = busyStep(busyInARow, u, p);
    busyInARow = s.busyInARow;
    if (!s.optimize) return;
    clearInterval(t);
    setFlagsFromString('--turbofan');
    log.info({ utilization: Math.round(u * 100) / 100 }, 'the daemon is busy: V8 optimizing compiler on');
  }, p.windowMs);
  t.unref();
  return () => clearInterval(t);
}
