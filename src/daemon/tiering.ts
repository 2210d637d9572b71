import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import type { Logger } from '../common/log';

// TurboFan, V8's optimizing compiler, costs memory from its first use: its
// code pages in the node binary become resident (about 5 MB of RSS per
// daemon) and optimized code fills the heap. An idle daemon never needs it, a
// busy one does (thousands of tasks after an etcd restart, an election on a
// starved host, issue 10's scale). A daemon started with --no-opt (opt-in:
// SHOAL_DAEMON_NODE_FLAGS=--no-opt, see `common/node-flags.ts`; not the
// default, see ARCHITECTURE "Memory"; Sparkplug still compiles hot functions
// to baseline code) turns TurboFan on for good the first time its event loop
// stays busy. V8 reads the flag at each tiering decision: no restart is needed, so a
// worker promoted to manager, or an idle manager that gets work, runs at full
// speed within seconds. (Lite mode cannot be left at run time; this can.)

export interface BusyPolicy {
  windowMs: number;        // one sample per window
  windows: number;         // judged over this many windows in a row
  minUtilization: number;  // mean event-loop utilization over them (0..1)
  minCpuMs: number;        // and at least this much CPU time used over them
}
// 10 s with the loop mostly busy and at least 1.5 s of CPU: a busy store or
// scheduler crosses it in seconds. Event-loop utilization alone is not
// enough: on a starved host a daemon doing little waits long for a core and
// looks busy (on a five-host lab at load 30, four of five daemons "were busy"
// for 3 s while joining, having used about 1 s of CPU in all); a daemon
// starting or joining uses far less CPU than this.
export const DEFAULT_BUSY_POLICY: BusyPolicy = { windowMs: 1_000, windows: 10, minUtilization: 0.5, minCpuMs: 1_500 };

export interface BusySample { utilization: number; cpuMs: number }

// Pure: the last samples (oldest first, at most p.windows kept by the caller)
// say whether to turn the optimizing compiler on.
export function isBusy(samples: readonly BusySample[], p: BusyPolicy): boolean {
  if (samples.length < p.windows) return false;
  const last = samples.slice(-p.windows);
  const utilization = last.reduce((s, x) => s + x.utilization, 0) / last.length;
  const cpuMs = last.reduce((s, x) => s + x.cpuMs, 0);
  return utilization >= p.minUtilization && cpuMs >= p.minCpuMs;
}

// Whether node runs with the optimizing compiler off (the flag on the command line or in NODE_OPTIONS).
export function startedWithoutTurbofan(execArgv: readonly string[] = process.execArgv, nodeOptions: string = process.env.NODE_OPTIONS ?? ''): boolean {
  const off = new Set(['--no-opt', '--no-turbofan']);
  return [...execArgv, ...nodeOptions.split(/\s+/)].some((a) => off.has(a));
}

// Watches the event loop and turns TurboFan on once it is busy; returns a stop function.
export function optimizeWhenBusy(log: Logger, p: BusyPolicy = DEFAULT_BUSY_POLICY): () => void {
  if (!startedWithoutTurbofan()) return () => undefined;
  let lastLoop: EventLoopUtilization = performance.eventLoopUtilization();
  let lastCpu = process.cpuUsage();
  const samples: BusySample[] = [];
  const t = setInterval(() => {
    const loop = performance.eventLoopUtilization();
    const cpu = process.cpuUsage(lastCpu);
    samples.push({ utilization: performance.eventLoopUtilization(loop, lastLoop).utilization, cpuMs: (cpu.user + cpu.system) / 1000 });
    lastLoop = loop;
    lastCpu = process.cpuUsage();
    if (samples.length > p.windows) samples.shift();
    if (!isBusy(samples, p)) return;
    clearInterval(t);
    setFlagsFromString('--turbofan');
    const cpuMs = Math.round(samples.reduce((s, x) => s + x.cpuMs, 0));
    log.info({ cpuMs, seconds: (p.windows * p.windowMs) / 1000 }, 'the daemon is busy: V8 optimizing compiler on');
  }, p.windowMs);
  t.unref();
  return () => clearInterval(t);
}
