import type { Store } from '../../store/store';

// What every control API verb needs: the store, who we are, and a clock.
export interface ControlContext {
  store: Store;
  localNodeId: string;
  now(): number;
}
