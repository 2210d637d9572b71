import type { SecretSpec } from '../../model/types';
import type { Router } from '../router';
import { parseFilters } from '../../common/filters';
import { SECRET_FILTERS } from '../../manager/controlapi/secrets';
import { decodeBody } from '../decode/body';
import { SecretSpec as SecretSpecType } from '../decode/docker-types';
import type { SwarmMembership } from './membership';

// moby api/server/router/swarm (secrets): create answers 201 {"ID"}, update
// 200 with no body, delete 204.
export function registerSecretRoutes(router: Router, swarm: SwarmMembership): void {
  router.on('GET', '/secrets', async (req) => ({
    status: 200,
    body: swarm.control().secrets.list(parseFilters(req.query.get('filters'), SECRET_FILTERS)),
  }));
  router.on('POST', '/secrets/create', async (req) => {
    const control = swarm.control();
    return { status: 201, body: await control.secrets.create(await decodeBody<SecretSpec>(req, SecretSpecType)) };
  });
  router.on('GET', '/secrets/:id', async (req) => ({ status: 200, body: swarm.control().secrets.inspect(req.params.id!) }));
  router.on('POST', '/secrets/:id/update', async (req) => {
    const control = swarm.control();
    await control.secrets.update(req.params.id!, req.query.get('version'), await decodeBody<SecretSpec>(req, SecretSpecType));
    return { status: 200 };
  });
  router.on('DELETE', '/secrets/:id', async (req) => {
    await swarm.control().secrets.remove(req.params.id!);
    return { status: 204 };
  });
}
