import { loopSampler } from './loop-sampler';
import { setFlagsFromString } from 'node:v8';
import type { Logger } from '../common/log';

// TurboFan, V8's optimizing compiler, costs memory from its first use: its
// code pages in the node binary become resident (about 3.5 MB of RSS per
// daemon) and optimized code fills the heap. A worker rarely needs it; a
// manager does (thousands of tasks after an etcd restart, an election on a
// starved host, issue 10's scale), and without it a busy manager was too slow
// (the store recovery test failed with --no-opt for every daemon).
//
// So the daemon starts with TurboFan off (deferTurbofan, before its modules
// load: defer-turbofan.ts) and turns it on for good (turbofanOn) as soon as the node
// opens a manager's store (daemon/swarm-node.ts: init, join or promotion as a
// manager, restart as one), or the first time its event loop stays busy
// (optimizeWhenBusy: a worker with much to do). V8 reads the flag at each
// tiering decision: no restart is needed. A manager thus runs as with V8's
// defaults from the moment it is one; only a worker (or a node not yet in a
// swarm) stays without TurboFan. `--turbofan` (or `--opt`) in
// SHOAL_DAEMON_NODE_FLAGS keeps it on from the start; `--no-opt` there keeps
// it off on managers too until busy (the earlier opt-in).
// (Lite mode cannot be left at run time; this can.)

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

// Whether one of these flags is on node's command line or in NODE_OPTIONS.
function nodeFlagGiven(flags: readonly string[], execArgv: readonly string[], nodeOptions: string): boolean {
  return [...execArgv, ...nodeOptions.split(/\s+/)].some((a) => flags.includes(a));
}

// Whether node runs with the optimizing compiler off from the start.
export function startedWithoutTurbofan(execArgv: readonly string[] = process.execArgv, nodeOptions: string = process.env.NODE_OPTIONS ?? ''): boolean {
  return nodeFlagGiven(['--no-opt', '--no-turbofan'], execArgv, nodeOptions);
}

// Whether node was told to keep the optimizing compiler on from the start.
export function startedWithTurbofan(execArgv: readonly string[] = process.execArgv, nodeOptions: string = process.env.NODE_OPTIONS ?? ''): boolean {
  return nodeFlagGiven(['--opt', '--turbofan'], execArgv, nodeOptions);
}

let deferred = false; // TurboFan is off until turbofanOn
let offForManagers = false; // --no-opt given: on only once busy, on managers too

// Turns TurboFan off until turbofanOn, unless node was told to keep it on.
export function deferTurbofan(): void {
  if (startedWithTurbofan()) return;
  offForManagers = startedWithoutTurbofan();
  if (!offForManagers) setFlagsFromString('--no-turbofan');
  deferred = true;
}

// The node now runs as a manager: TurboFan on (unless node was started with --no-opt).
export function turbofanForManager(log: Logger): void {
  if (!offForManagers) turbofanOn(log, 'manager');
}

// Turns TurboFan on for good (once; nothing if it never was off).
export function turbofanOn(log: Logger, why: string, detail: Record<string, unknown> = {}): void {
  if (!deferred) return;
  deferred = false;
  setFlagsFromString('--turbofan');
  log.info({ why, ...detail }, 'V8 optimizing compiler on');
}

// Watches the event loop and turns TurboFan on once it is busy; returns a stop function.
export function optimizeWhenBusy(log: Logger, p: BusyPolicy = DEFAULT_BUSY_POLICY): () => void {
  if (!deferred) return () => undefined;
  const loopSince = loopSampler();
  let lastCpu = process.cpuUsage();
  const samples: BusySample[] = [];
  const t = setInterval(() => {
    if (!deferred) { clearInterval(t); return; } // a manager now
    const cpu = process.cpuUsage(lastCpu);
    samples.push({ utilization: loopSince(), cpuMs: (cpu.user + cpu.system) / 1000 });
    lastCpu = process.cpuUsage();
    if (samples.length > p.windows) samples.shift();
    if (!isBusy(samples, p)) return;
    clearInterval(t);
    turbofanOn(log, 'busy', { cpuMs: Math.round(samples.reduce((s, x) => s + x.cpuMs, 0)), seconds: (p.windows * p.windowMs) / 1000 });
  }, p.windowMs);
  t.unref();
  return () => clearInterval(t);
}
