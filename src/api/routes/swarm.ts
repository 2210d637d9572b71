import type { InitRequest, SwarmSpec } from '../types';
import type { Router } from '../router';
import type { SwarmMembership } from './membership';
import { invalid, precondition } from '../../common/errors';

const flag = (q: URLSearchParams, k: string): boolean => ['1', 'true', 'True'].includes(q.get(k) ?? '');

export function registerSwarmRoutes(router: Router, swarm: SwarmMembership): void {
  router.on('GET', '/swarm', async () => ({ status: 200, body: swarm.control().cluster.inspect() }));

  router.on('POST', '/swarm/init', async (req) => {
    const body = (await req.json<InitRequest>()) ?? {};
    if (typeof body !== 'object') throw invalid('invalid init request');
    const nodeId = await swarm.init(body);
    return { status: 200, body: nodeId };
  });

  router.on('POST', '/swarm/join', async (req) => {
    await swarm.join((await req.json<Record<string, unknown>>()) ?? {});
    return { status: 200 };
  });

  router.on('POST', '/swarm/leave', async (req) => {
    await swarm.leave(flag(req.query, 'force'));
    return { status: 200 };
  });

  router.on('POST', '/swarm/update', async (req) => {
    const spec = await req.json<SwarmSpec>();
    await swarm.control().cluster.update(req.query.get('version'), spec, {
      worker: flag(req.query, 'rotateWorkerToken'),
      manager: flag(req.query, 'rotateManagerToken'),
    });
    return { status: 200 };
  });

  // Autolock is not built (controlapi/cluster.ts refuses to turn it on): there is never a key to show.
  router.on('GET', '/swarm/unlockkey', async () => {
    swarm.control();
    throw precondition('no unlock key is set: autolock is not supported yet by Shoal');
  });

  router.on('POST', '/swarm/unlock', async () => {
    swarm.control();
    throw precondition('swarm is not locked: autolock is not supported yet by Shoal');
  });
}
