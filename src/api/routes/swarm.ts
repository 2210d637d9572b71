import type { InitRequest, SwarmSpec } from '../../model/types';
import type { Router } from '../router';
import type { SwarmMembership } from './membership';
import { decodeBody } from '../decode/body';
import { InitRequest as InitRequestType, JoinRequest as JoinRequestType, SwarmSpec as SwarmSpecType, UnlockRequest as UnlockRequestType } from '../decode/docker-types';
import { boolValue, strictBool } from '../../common/go/query';

// moby's updateCluster: strconv.ParseBool, `invalid value for <key>: <raw>`.
const rotateFlag = (q: URLSearchParams, k: string): boolean => strictBool(q, k, (raw) => `invalid value for ${k}: ${raw}`);

export function registerSwarmRoutes(router: Router, swarm: SwarmMembership): void {
  router.on('GET', '/swarm', async () => ({ status: 200, body: swarm.control().cluster.inspect() }));

  router.on('POST', '/swarm/init', async (req) => {
    const body = await decodeBody<InitRequest>(req, InitRequestType);
    const nodeId = await swarm.init(body);
    return { status: 200, body: nodeId };
  });

  router.on('POST', '/swarm/join', async (req) => {
    await swarm.join(await decodeBody<Record<string, unknown>>(req, JoinRequestType));
    return { status: 200 };
  });

  router.on('POST', '/swarm/leave', async (req) => {
    await swarm.leave(boolValue(req.query, 'force'));
    return { status: 200 };
  });

  router.on('POST', '/swarm/update', async (req) => {
    const spec = await decodeBody<SwarmSpec>(req, SwarmSpecType);
    await swarm.control().cluster.update(req.query.get('version'), spec, {
      worker: rotateFlag(req.query, 'rotateWorkerToken'),
      manager: rotateFlag(req.query, 'rotateManagerToken'),
      managerUnlockKey: rotateFlag(req.query, 'rotateManagerUnlockKey'),
    });
    return { status: 200 };
  });

  router.on('GET', '/swarm/unlockkey', async () => ({ status: 200, body: swarm.control().cluster.unlockKey() }));

  router.on('POST', '/swarm/unlock', async (req) => {
    const body = await decodeBody<{ UnlockKey?: string }>(req, UnlockRequestType);
    await swarm.unlock(body.UnlockKey ?? '');
    return { status: 200 };
  });
}
