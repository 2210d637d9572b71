// The flags node runs the Shoal daemon with (issue 8: a worker's daemon under
// 60 MB RSS idle, a manager's plus its etcd under 100 MB). Every launcher
// uses them: the lab's hosts, scripts/setup.sh, the tests' daemons.
//
// --no-opt: TurboFan off at start; the daemon turns it on for good once its
// event loop is busy (daemon/tiering.ts), so an idle daemon never touches the
// compiler's code pages in the node binary nor holds optimized code, and a busy
// one (a store recovery, a promoted worker, issue 10's scale) runs at full
// speed within seconds. Sparkplug (baseline code) stays on meanwhile.
//
// Lite mode (LITE_MODE_FLAGS) is smaller still but cannot be left at run
// time, and with it the CI on this 2-core machine failed where the daemon is
// busy (4,000 tasks through orchestrator, allocator and scheduler after an
// etcd kill; an election right after a leader's power-off).
// --no-expose-wasm: lite mode turns WebAssembly off anyway; said here, node
// does not print a warning about it on every start.
export const LITE_MODE_FLAGS: readonly string[] = ['--lite-mode', '--no-expose-wasm'];
export const DAEMON_NODE_FLAGS: readonly string[] = ['--no-opt'];

// SHOAL_DAEMON_NODE_FLAGS replaces them (space-separated; "" for node's
// defaults), to compare in a bench.
export function daemonNodeFlags(env: NodeJS.ProcessEnv = process.env): string[] {
  const v = env.SHOAL_DAEMON_NODE_FLAGS;
  if (v === undefined) return [...DAEMON_NODE_FLAGS];
  return v.split(/\s+/).filter((f) => f !== '');
}
