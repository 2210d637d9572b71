import type { Router } from '../router';
import type { SwarmInfo } from '../../model/types';
import { EngineClient } from '../../engine/client';

// What /info needs from the engine: one JSON GET.
export interface EngineJsonGetter {
  getJson<T>(path: string): Promise<T>;
}

export interface InfoRouteDeps {
  // The engine's JSON client; or its address, and a client is made here.
  engine?: EngineJsonGetter;
  engineAddress?: string;
  swarmInfo: () => SwarmInfo;
}

// GET /info is the engine's own answer with its Swarm block replaced by this
// node's membership (the engine itself never joins a swarm). Key order is kept,
// so `docker info` prints as it would against dockerd.
export function registerInfoRoute(router: Router, deps: InfoRouteDeps): void {
  const engine = deps.engine ?? (deps.engineAddress ? new EngineClient(deps.engineAddress) : undefined);
  if (!engine) throw new Error('registerInfoRoute needs engine or engineAddress');
  router.on('GET', '/info', async () => {
    const info = await engine.getJson<Record<string, unknown>>('/info');
    info.Swarm = deps.swarmInfo();
    return { status: 200, body: info };
  });
}
