import type { Router } from '../router';
import { registerConfigRoutes } from './configs';
import type { SwarmMembership } from './membership';
import { registerNodeRoutes } from './nodes';
import { registerSecretRoutes } from './secrets';
import { registerServiceRoutes, type LocalNetworkLookup } from './services';
import { registerSwarmRoutes } from './swarm';
import { registerTaskRoutes } from './tasks';

// The cluster's own resources, all answered by the control API of this node's
// swarm membership (503 with Docker's text when it is not a manager).
// `localNetwork` (optional) names the engine's own network a service asks for, for Docker's refusal.
export function registerSwarmApiRoutes(router: Router, swarm: SwarmMembership, localNetwork?: LocalNetworkLookup): void {
  registerSwarmRoutes(router, swarm);
  registerNodeRoutes(router, swarm);
  registerServiceRoutes(router, swarm, localNetwork);
  registerTaskRoutes(router, swarm);
  registerSecretRoutes(router, swarm);
  registerConfigRoutes(router, swarm);
}
