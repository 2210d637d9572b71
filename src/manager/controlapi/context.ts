import type { Store } from '../../store/store';

// What every control API verb needs: the store, who we are, and a clock.
export interface ControlContext {
  store: Store;
  localNodeId: string;
  now(): number;
  // The node IDs of the voting etcd members (raft membership, for the quorum
  // check of a demotion); absent in tests without etcd.
  etcdMembers?(): Promise<string[]>;
}
