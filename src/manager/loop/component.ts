import type { Logger } from '../../common/log';
import type { Store } from '../../store/store';

// What every leader component driven by store events (orchestrator,
// scheduler, allocator) is given and hands back.
export interface LeaderComponentOptions {
  store: Store;
  log: Logger;
  now?: () => number;   // the manager's clock (tests inject their own)
  // The longest a big pass holds the event loop before it lets pending I/O
  // (heartbeats, status reports, the lease's renewal) run; tests use 0.
  sliceMs?: number;
}

// A 150,000-task pass held a loaded leader 4 to 10 s at once, past its lease
// (bench/scale.ts); in slices of this long it never does.
export const DEFAULT_SLICE_MS = 40;

// Resumes after the I/O callbacks that are ready now.
export const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export interface LeaderComponentHandle {
  stop(): void;
  // Resolves once no pass is pending or running (timers for later wake-ups do not count).
  settled(): Promise<void>;
}
