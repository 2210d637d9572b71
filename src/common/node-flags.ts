// The flags node runs the Shoal daemon with (issue 8: a worker's daemon under
// 60 MB RSS idle, a manager's plus its etcd under 100 MB). Every launcher
// uses them: the lab's hosts, scripts/setup.sh, the tests' daemons.
//
// --lite-mode: no optimizing compiler and feedback vectors only for functions
// that run often. Measured on a five-host lab, idle: about 7 MB less per
// daemon (the compiler's code pages in the node binary are never touched, and
// the heap holds less code). Hot loops run slower (the pure scheduler places
// 22,500 tasks/s instead of 102,000, bench/scheduler.js --quick), which a
// control plane's work, mostly waiting on etcd, dockerd and peers, does not feel.
// --no-expose-wasm: lite mode turns WebAssembly off anyway; said here, node
// does not print a warning about it on every start.
//
// Not the default: with it the CI on this 2-core machine failed where the
// daemon is busy (4,000 tasks through orchestrator, allocator and scheduler
// after an etcd kill; an election right after a leader's power-off), and issue
// 10's scale (150,000 tasks) needs the optimizing compiler. The memory goals
// wait for a lighter daemon instead. SHOAL_DAEMON_NODE_FLAGS="--lite-mode
// --no-expose-wasm" turns it on.
export const LITE_MODE_FLAGS: readonly string[] = ['--lite-mode', '--no-expose-wasm'];
export const DAEMON_NODE_FLAGS: readonly string[] = [];

// SHOAL_DAEMON_NODE_FLAGS replaces them (space-separated; "" for node's
// defaults), to compare in a bench.
export function daemonNodeFlags(env: NodeJS.ProcessEnv = process.env): string[] {
  const v = env.SHOAL_DAEMON_NODE_FLAGS;
  if (v === undefined) return [...DAEMON_NODE_FLAGS];
  return v.split(/\s+/).filter((f) => f !== '');
}
