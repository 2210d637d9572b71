import type { InitRequest, SwarmInfo } from '../../model/types';
import type { ControlApi } from '../../manager/controlapi';

// What the API edge needs from the node's swarm membership (daemon/swarm-node.ts).
export interface SwarmMembership {
  init(req: InitRequest): Promise<string>;
  join(req: Record<string, unknown>): Promise<void>;
  leave(force: boolean): Promise<void>;
  info(): SwarmInfo;
  // docker swarm unlock (autolock): Docker's 409 when not locked, 401 for a wrong key.
  unlock(unlockKey: string): Promise<void>;
  // The control API of an active manager; throws 503 with Docker's text otherwise.
  control(): ControlApi;
}
