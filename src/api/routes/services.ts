import type { ServiceSpec } from '../types';
import type { Router } from '../router';
import { parseFilters } from '../filters';
import { SERVICE_FILTERS } from '../../manager/controlapi/services';
import type { SwarmMembership } from './membership';

const truthy = (v: string | null): boolean => v === '1' || v === 'true';

export function registerServiceRoutes(router: Router, swarm: SwarmMembership): void {
  router.on('GET', '/services', async (req) => ({
    status: 200,
    body: swarm.control().services.list(parseFilters(req.query.get('filters'), SERVICE_FILTERS), truthy(req.query.get('status'))),
  }));
  router.on('POST', '/services/create', async (req) => {
    const control = swarm.control();
    return { status: 201, body: await control.services.create(await req.json<ServiceSpec>()) };
  });
  router.on('GET', '/services/:id', async (req) => ({
    status: 200,
    body: swarm.control().services.inspect(req.params.id!, truthy(req.query.get('insertDefaults'))),
  }));
  router.on('POST', '/services/:id/update', async (req) => {
    const control = swarm.control();
    const rollback = req.query.get('rollback') === 'previous';
    const spec = await req.json<ServiceSpec>();
    return { status: 200, body: await control.services.update(req.params.id!, req.query.get('version'), spec, rollback) };
  });
  router.on('DELETE', '/services/:id', async (req) => {
    await swarm.control().services.remove(req.params.id!);
    return { status: 200 };
  });
}
