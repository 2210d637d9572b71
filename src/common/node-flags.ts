// The flags node runs the Shoal daemon with (issue 8: a worker's daemon under
// 60 MB RSS idle, a manager's plus its etcd under 100 MB). Every launcher
// uses them: the lab's hosts, scripts/setup.sh, the tests' daemons.
//
// By default, a young generation of up to 2 x 32 MB (V8's own limit is
// 16 MB per half). A busy manager allocates fast (every task it writes, every
// watch event it decodes); with the small one, objects still in use at each
// scavenge were copied and promoted to the old generation, whose collections
// cost more. bench/scale.ts, 1,000 simulated nodes and 30,000 tasks: the
// managers' daemons used 12 % less CPU and the create ended 13 % sooner
// (medians; docs/SCALE.md). V8 grows the young generation only while
// allocation is fast, so a daemon that was never busy keeps a small one
// (bench/cluster.ts --rounds 0: idle RSS within 3 MB of node's defaults);
// one that was busy keeps the grown one (a leader after 1,000 joins: +30 MB).
//
// The daemon itself keeps TurboFan off while it loads and
// while the node is not a manager (daemon/tiering.ts, defer-turbofan.ts): an
// idle worker never touches the compiler's code pages in the node binary
// (3.6 MB of RSS), and a manager runs with V8's defaults from the moment it
// opens its store. --no-opt for every daemon (managers too, TurboFan on only
// once busy) was tried as a default and left out: the store recovery test
// (4,000 tasks after an etcd kill) failed with it twice at load 20-54 and
// passed with V8's defaults (ARCHITECTURE "Memory"). `--turbofan` here keeps
// the compiler on from the start.
//
// And an old generation of at most twice what it held after its last full
// collection (`--heap-growing-percent=100`). V8 lets a fast-allocating heap
// grow to up to four times that before the next one: a 5,000-node leader that
// held about 190 MB of live objects reached 576-614 MB of heap right as a
// 150,000-task create ended, 1,066-1,110 MB with its etcd, over issue 10's
// 1 GiB for a manager. bench/scale.ts at that size, one run each on the same
// machine: V8's own factor 1,066 MB worst manager, 131.2 s, the managers
// 165.6 CPU-seconds; twice 958 MB, 134.9 s, 172.6 (with this default, a
// second run: 982 MB, 138.9 s, 179.0); 1.5 times 923 MB, 141.5 s, 177.4
// (docs/SCALE.md). Twice keeps a manager under the line for 4-8 % more CPU.
//
// Lite mode (LITE_MODE_FLAGS) is smaller still but cannot be left at run
// time, and with it the CI on this 2-core machine failed where the daemon is
// busy (4,000 tasks through orchestrator, allocator and scheduler after an
// etcd kill; an election right after a leader's power-off).
// --no-expose-wasm: lite mode turns WebAssembly off anyway; said here, node
// does not print a warning about it on every start.
export const LITE_MODE_FLAGS: readonly string[] = ['--lite-mode', '--no-expose-wasm'];
export const DAEMON_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=32', '--heap-growing-percent=100'];

// SHOAL_DAEMON_NODE_FLAGS replaces them (space-separated; "" for node's
// defaults), to compare in a bench.
export function daemonNodeFlags(env: NodeJS.ProcessEnv = process.env): string[] {
  const v = env.SHOAL_DAEMON_NODE_FLAGS;
  if (v === undefined) return [...DAEMON_NODE_FLAGS];
  return v.split(/\s+/).filter((f) => f !== '');
}

// glibc's malloc settings for the daemon (GLIBC_TUNABLES, read by glibc when
// the process starts, so every launcher sets it). glibc hands freed memory
// back to the system only from the top of its heap; what a daemon frees
// between blocks still in use stays in its RSS for good. A burst of sending
// (a leader's assignments at 5,000 nodes) queues its output in buffers of
// 16 to 32 KiB, and once it was delivered the process kept the peak:
// bench/send-burst-memory.ts, 429 MB sent at once over 150 streams, left
// 512 MB of native memory (503 MB in a --malloc-trim run, 53 MB after
// malloc_trim: free memory, not data). Blocks of 16 KiB and up mapped of their own (and
// unmapped when freed): 59 MB, for about 45 % more CPU for that burst
// (mapping and faulting each buffer in). A threshold of 32 KiB changed
// nothing: the buffers are smaller. Its cost: a block of that size made and
// freed per operation is mapped each time, so hot paths keep theirs smaller
// (store/value-packing.ts, zlib's deflate state).
export const DAEMON_GLIBC_TUNABLES = 'glibc.malloc.mmap_threshold=16384';

// The daemon's extra environment. SHOAL_DAEMON_GLIBC_TUNABLES replaces the
// setting ("" for glibc's defaults, to compare in a bench); otherwise a
// GLIBC_TUNABLES of the caller's own is left to the daemon as it is.
export function daemonEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const v = env.SHOAL_DAEMON_GLIBC_TUNABLES;
  if (v !== undefined) return { GLIBC_TUNABLES: v };
  return env.GLIBC_TUNABLES !== undefined ? {} : { GLIBC_TUNABLES: DAEMON_GLIBC_TUNABLES };
}
