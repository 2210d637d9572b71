import type { ServiceSpec } from '../../model/types';
import type { Router } from '../router';
import { parseFilters } from '../../common/filters';
import { forbidden, invalid, isShoalError } from '../../common/errors';
import { SERVICE_FILTERS } from '../../manager/controlapi/services';
import { parseRegistryAuthFrom } from '../../manager/controlapi/registry-auth';
import { decodeBody } from '../decode/body';
import { ServiceSpec as ServiceSpecType } from '../decode/docker-types';
import { strictBool, wrappedParseBoolError } from '../../common/go/query';
import type { SwarmMembership } from './membership';

// `--with-registry-auth`: the CLI's credentials for the image (moby's registry.AuthHeader).
function registryAuthHeader(headers: Record<string, string | string[] | undefined>): string | undefined {
  const v = headers['x-registry-auth'];
  return (Array.isArray(v) ? v[0] : v) || undefined;
}

// Whether the engine has a (local) network by this name or ID: moby's
// populateNetworkID refuses such a network for a service with its own text.
export type LocalNetworkLookup = (ref: string) => Promise<string | undefined>;

async function withLocalNetworkCheck<T>(write: () => Promise<T>, localNetwork: LocalNetworkLookup | undefined): Promise<T> {
  try {
    return await write();
  } catch (e) {
    const m = isShoalError(e) && e.kind === 'not_found' ? /^network (.+) not found$/.exec(e.message) : null;
    const name = m && localNetwork ? await localNetwork(m[1]!).catch(() => undefined) : undefined;
    if (name) throw forbidden(`The network ${name} cannot be used with services. Only networks scoped to the swarm can be used, such as those created with the overlay driver.`);
    throw e;
  }
}

export function registerServiceRoutes(router: Router, swarm: SwarmMembership, localNetwork?: LocalNetworkLookup): void {
  router.on('GET', '/services', async (req) => {
    const filters = parseFilters(req.query.get('filters'), SERVICE_FILTERS);
    const status = strictBool(req.query, 'status', wrappedParseBoolError('status'));
    return { status: 200, body: swarm.control().services.list(filters, status) };
  });
  router.on('POST', '/services/create', async (req) => {
    const control = swarm.control();
    const spec = await decodeBody<ServiceSpec>(req, ServiceSpecType);
    return { status: 201, body: await withLocalNetworkCheck(() => control.services.create(spec, { encoded: registryAuthHeader(req.headers) }), localNetwork) };
  });
  router.on('GET', '/services/:id', async (req) => {
    const insertDefaults = strictBool(req.query, 'insertDefaults', wrappedParseBoolError('insertDefaults'));
    return { status: 200, body: swarm.control().services.inspect(req.params.id!, insertDefaults) };
  });
  router.on('POST', '/services/:id/update', async (req) => {
    const control = swarm.control();
    const spec = await decodeBody<ServiceSpec>(req, ServiceSpecType);
    const option = req.query.get('rollback') ?? '';
    if (option !== '' && option !== 'previous') throw invalid(`unrecognized rollback option ${option}`);
    const rollback = option === 'previous';
    const auth = { encoded: registryAuthHeader(req.headers), from: parseRegistryAuthFrom(req.query.get('registryAuthFrom')) };
    return { status: 200, body: await withLocalNetworkCheck(() => control.services.update(req.params.id!, req.query.get('version'), spec, rollback, auth), localNetwork) };
  });
  router.on('DELETE', '/services/:id', async (req) => {
    await swarm.control().services.remove(req.params.id!);
    return { status: 200 };
  });
}
