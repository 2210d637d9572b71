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

// A long pass cut into slices: `due()` says the current slice has held the
// event loop sliceMs, `pause()` lets the I/O callbacks that are ready now run
// and starts the next slice; `busyMs()` is the time held, pauses left out.
export class Slicer {
  private held = 0;
  private sliceStart = performance.now();

  constructor(private readonly sliceMs: number) {}

  due(): boolean { return performance.now() - this.sliceStart >= this.sliceMs; }

  async pause(): Promise<void> {
    this.held += performance.now() - this.sliceStart;
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.sliceStart = performance.now();
  }

  busyMs(): number { return this.held + performance.now() - this.sliceStart; }
}

export interface LeaderComponentHandle {
  stop(): void;
  // Resolves once no pass is pending or running (timers for later wake-ups do not count).
  settled(): Promise<void>;
}
