import { test } from 'node:test';
import assert from 'node:assert/strict';
import { controlFixture } from '../../helpers/control-fixture';
import { registerContainerRoutes, type ContainerEngine, type SwarmAttacher } from '../../../src/api/routes/containers';
import type { EngineAnswer } from '../../../src/engine/client';

// `docker run --network SWARMNET` through the /containers/create route, over a
// fake engine and a fake attacher that record what they are asked.
const ID = 'abcdef0123456789'.repeat(4);
const answer = (status: number, body: unknown): EngineAnswer => ({ status, headers: { 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify(body)) });

function setup(createStatus = 201) {
  const calls: string[] = [];
  const named: Array<[string, string, string[]]> = [];
  const released: string[] = [];
  const engine: ContainerEngine = {
    request: async (method, path, opts) => {
      calls.push(`${method} ${path}`);
      if (method === 'POST' && path.startsWith('/v1.41/containers/create')) {
        const body = opts?.body as { HostConfig: { NetworkMode: string } };
        assert.equal(body.HostConfig.NetworkMode, 'shoal-netapp000000');
        return createStatus === 201 ? answer(201, { Id: ID, Warnings: [] }) : answer(createStatus, { message: 'Conflict. The container name is already in use' });
      }
      if (method === 'GET' && path === `/containers/${ID}/json`) return answer(200, { Id: ID, Name: '/eager_turing' });
      return answer(404, { message: 'page not found' });
    },
  };
  const attacher = {
    attach: async () => ({ id: 'att1', networkId: 'netapp', networkName: 'app', address: '10.0.1.7', engineNetwork: 'shoal-netapp000000', dns: '169.254.53.53' }),
    release: async (id: string) => { released.push(id); },
    name: async (id: string, container: string, aliases: string[]) => { named.push([id, container, aliases]); },
    find: () => undefined,
    network: () => undefined,
    carried: () => [],
  } as unknown as SwarmAttacher;
  return { engine, attacher, calls, named, released };
}

test('a container created on a swarm network without --name: its attachment gets the engine\'s name and the short ID', async () => {
  const fx = await controlFixture();
  const s = setup();
  registerContainerRoutes(fx.router, { engine: s.engine, attacher: () => s.attacher, engineNetwork: async () => undefined });
  const r = await fx.call('POST', '/v1.41/containers/create', { Image: 'busybox', HostConfig: { NetworkMode: 'app' } });
  assert.equal(r.status, 201);
  assert.equal(r.json.Id, ID);
  assert.deepEqual(s.named, [['att1', 'eager_turing', [ID.slice(0, 12)]]]);
  assert.deepEqual(s.released, []);
});

test('a create the engine refuses gives the address back and names nothing', async () => {
  const fx = await controlFixture();
  const s = setup(409);
  registerContainerRoutes(fx.router, { engine: s.engine, attacher: () => s.attacher, engineNetwork: async () => undefined });
  const r = await fx.call('POST', '/v1.41/containers/create?name=web', { Image: 'busybox', HostConfig: { NetworkMode: 'app' } });
  assert.equal(r.status, 409);
  assert.deepEqual(s.named, []);
  assert.deepEqual(s.released, ['att1']);
});
