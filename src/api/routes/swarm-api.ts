import type { Router } from '../router';
import { registerConfigRoutes } from './configs';
import type { SwarmMembership } from './membership';
import { registerNodeRoutes } from './nodes';
import { registerSecretRoutes } from './secrets';
import { registerServiceRoutes } from './services';
import { registerSwarmRoutes } from './swarm';
import { registerTaskRoutes } from './tasks';

// The cluster's own resources, all answered by the control API of this node's
// swarm membership (503 with Docker's text when it is not a manager).
export function registerSwarmApiRoutes(router: Router, swarm: SwarmMembership): void {
  registerSwarmRoutes(router, swarm);
  registerNodeRoutes(router, swarm);
  registerServiceRoutes(router, swarm);
  registerTaskRoutes(router, swarm);
  registerSecretRoutes(router, swarm);
  registerConfigRoutes(router, swarm);
}
