import type { NodeSpec } from '../../model/types';
import type { Router } from '../router';
import { parseFilters } from '../../common/filters';
import { NODE_FILTERS } from '../../manager/controlapi/nodes';
import { decodeBody } from '../decode/body';
import { NodeSpec as NodeSpecType } from '../decode/docker-types';
import { boolValue } from '../../common/go/query';
import type { SwarmMembership } from './membership';
import { NodeListJson } from './node-list';

export function registerNodeRoutes(router: Router, swarm: SwarmMembership): void {
  const listJson = new NodeListJson();
  router.on('GET', '/nodes', async (req) => ({
    status: 200,
    body: listJson.render(swarm.control().nodes.list(parseFilters(req.query.get('filters'), NODE_FILTERS))),
  }));
  router.on('GET', '/nodes/:id', async (req) => ({ status: 200, body: swarm.control().nodes.inspect(req.params.id!) }));
  router.on('POST', '/nodes/:id/update', async (req) => {
    const spec = await decodeBody<NodeSpec>(req, NodeSpecType);
    await swarm.control().nodes.update(req.params.id!, req.query.get('version'), spec);
    return { status: 200 };
  });
  router.on('DELETE', '/nodes/:id', async (req) => {
    await swarm.control().nodes.remove(req.params.id!, boolValue(req.query, 'force'));
    return { status: 200 };
  });
}
