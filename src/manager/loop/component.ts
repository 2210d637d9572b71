import type { Logger } from '../../common/log';
import type { Store } from '../../store/store';

// What every leader component driven by store events (orchestrator,
// scheduler, allocator) is given and hands back.
export interface LeaderComponentOptions {
  store: Store;
  log: Logger;
  now?: () => number;   // the manager's clock (tests inject their own)
}

export interface LeaderComponentHandle {
  stop(): void;
  // Resolves once no pass is pending or running (timers for later wake-ups do not count).
  settled(): Promise<void>;
}
