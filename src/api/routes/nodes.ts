import type { NodeSpec } from '../types';
import type { Router } from '../router';
import { parseFilters } from '../filters';
import { NODE_FILTERS } from '../../manager/controlapi/nodes';
import type { SwarmMembership } from './membership';

export function registerNodeRoutes(router: Router, swarm: SwarmMembership): void {
  router.on('GET', '/nodes', async (req) => ({
    status: 200,
    body: swarm.control().nodes.list(parseFilters(req.query.get('filters'), NODE_FILTERS)),
  }));
  router.on('GET', '/nodes/:id', async (req) => ({ status: 200, body: swarm.control().nodes.inspect(req.params.id!) }));
  router.on('POST', '/nodes/:id/update', async (req) => {
    await swarm.control().nodes.update(req.params.id!, req.query.get('version'), await req.json<NodeSpec>());
    return { status: 200 };
  });
  router.on('DELETE', '/nodes/:id', async (req) => {
    await swarm.control().nodes.remove(req.params.id!, ['1', 'true'].includes(req.query.get('force') ?? ''));
    return { status: 200 };
  });
}
