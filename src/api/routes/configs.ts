import type { ConfigSpec } from '../../model/types';
import type { Router } from '../router';
import { parseFilters } from '../../common/filters';
import { CONFIG_FILTERS } from '../../manager/controlapi/configs';
import { decodeBody } from '../decode/body';
import { ConfigSpec as ConfigSpecType } from '../decode/docker-types';
import type { SwarmMembership } from './membership';

// moby api/server/router/swarm (configs): create answers 201 {"ID"}, update
// 200 with no body, delete 204.
export function registerConfigRoutes(router: Router, swarm: SwarmMembership): void {
  router.on('GET', '/configs', async (req) => ({
    status: 200,
    body: swarm.control().configs.list(parseFilters(req.query.get('filters'), CONFIG_FILTERS)),
  }));
  router.on('POST', '/configs/create', async (req) => {
    const control = swarm.control();
    return { status: 201, body: await control.configs.create(await decodeBody<ConfigSpec>(req, ConfigSpecType)) };
  });
  router.on('GET', '/configs/:id', async (req) => ({ status: 200, body: swarm.control().configs.inspect(req.params.id!) }));
  router.on('POST', '/configs/:id/update', async (req) => {
    const control = swarm.control();
    await control.configs.update(req.params.id!, req.query.get('version'), await decodeBody<ConfigSpec>(req, ConfigSpecType));
    return { status: 200 };
  });
  router.on('DELETE', '/configs/:id', async (req) => {
    await swarm.control().configs.remove(req.params.id!);
    return { status: 204 };
  });
}
