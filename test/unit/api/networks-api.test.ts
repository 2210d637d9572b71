import { test } from 'node:test';
import assert from 'node:assert/strict';
import { controlFixture } from '../../helpers/control-fixture';
import { registerNetworkRoutes, type NetworkEngine } from '../../../src/api/routes/networks';
import { ENGINE_NETWORK_LABEL } from '../../../src/protocol/network-view';
import type { CallOptions, EngineAnswer } from '../../../src/engine/client';
import { NOT_A_MANAGER, unavailable } from '../../../src/common/errors';
import type { SwarmInfo } from '../../../src/model/types';

// The /networks routes over the control fixture and a fake engine that
// records what it is asked.
const engineNet = (id: string, name: string, labels: Record<string, string> = {}) => ({
  Name: name, Id: id, Created: 't', Scope: 'local', Driver: 'bridge', EnableIPv6: false, IPAM: { Driver: 'default', Options: null, Config: [] },
  Internal: false, Attachable: false, Ingress: false, ConfigFrom: { Network: '' }, ConfigOnly: false, Containers: {}, Options: {}, Labels: labels,
});

function fakeEngine() {
  const calls: Array<{ method: string; path: string; opts?: CallOptions }> = [];
  const nets = [engineNet('b'.repeat(64), 'bridge'), engineNet('c'.repeat(64), 'shoal-plumbing', { [ENGINE_NETWORK_LABEL]: 'x' })];
  const answer = (status: number, body: unknown): EngineAnswer => ({ status, headers: { 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify(body)) });
  const engine: NetworkEngine = {
    request: async (method, path, opts) => {
      calls.push({ method, path, opts });
      if (method === 'GET' && path === '/networks') return answer(200, nets);
      if (method === 'GET' && path.startsWith('/networks/')) {
        const n = nets.find((x) => x.Id === path.slice('/networks/'.length));
        return n ? answer(200, n) : answer(404, { message: 'not found' });
      }
      if (method === 'POST' && path.endsWith('/networks/create')) return answer(201, { Id: 'd'.repeat(64), Warning: '' });
      if (method === 'POST' && path === '/networks/prune') return answer(200, { NetworksDeleted: ['old-bridge'] });
      return answer(404, { message: 'page not found' });
    },
  };
  return { engine, calls };
}

test('GET /networks: the swarm\'s and the engine\'s networks, Shoal\'s plumbing hidden', async () => {
  const fx = await controlFixture();
  const { engine } = fakeEngine();
  registerNetworkRoutes(fx.router, { swarm: { control: () => fx.control } as never, engine });
  const r = await fx.call('GET', '/v1.41/networks');
  assert.equal(r.status, 200);
  assert.deepEqual(r.json.map((n: { Name: string }) => n.Name), ['ingress', 'bridge']);
  const f = await fx.call('GET', `/v1.41/networks?filters=${encodeURIComponent('{"scope":{"swarm":true}}')}`);
  assert.ok(f.json.some((n: { Name: string }) => n.Name === 'ingress'));
  assert.equal((await fx.call('GET', `/v1.41/networks?filters=${encodeURIComponent('{"nope":{"x":true}}')}`)).status, 400);
  const ing = await fx.call('GET', '/v1.41/networks/ingress?verbose=true');
  assert.equal(ing.status, 200);
  assert.equal(ing.json.Ingress, true);
  // Not on this node (no engine network carries it): Docker's cluster object, no containers, no peers.
  assert.equal(ing.json.Containers, null);
  assert.equal(ing.json.Peers, undefined);
  assert.equal((await fx.call('GET', '/v1.41/networks/shoal-plumbing')).status, 404);
  assert.equal((await fx.call('GET', '/v1.41/networks/ingress?verbose=maybe')).status, 400);
});

test('GET /networks/ID where the node carries it: its containers and its LB endpoint ("lb-NAME", "ingress-sbox"), peers = the nodes that carry it', async () => {
  const fx = await controlFixture();
  const { engine } = fakeEngine();
  const ingress = fx.store.list('networks')[0]!;
  const node = fx.store.list('nodes')[0]!;
  await fx.store.txn().update('nodes', { ...node, Attachments: [{ Network: ingress, Addresses: ['10.0.0.3/24'] }] }).commit();
  const task = { Name: 'web.1.t1', EndpointID: 'e'.repeat(64), MacAddress: '02:42:0a:00:00:07', IPv4Address: '10.0.0.7/24', IPv6Address: '' };
  const carried = { ...engineNet('f'.repeat(64), `shoal-${ingress.ID.slice(0, 12)}`, { [ENGINE_NETWORK_LABEL]: ingress.ID }), Containers: { ['a'.repeat(64)]: task } };
  const request = engine.request;
  engine.request = async (method, path, opts) => (method === 'GET' && path === `/networks/shoal-${ingress.ID.slice(0, 12)}`
    ? { status: 200, headers: {}, body: Buffer.from(JSON.stringify(carried)) } : request(method, path, opts));
  registerNetworkRoutes(fx.router, { swarm: { control: () => fx.control } as never, engine });
  const r = await fx.call('GET', '/v1.41/networks/ingress');
  assert.equal(r.status, 200);
  assert.deepEqual(Object.keys(r.json.Containers).sort(), ['a'.repeat(64), 'ingress-sbox']);
  const lb = r.json.Containers['ingress-sbox'];
  assert.deepEqual({ ...lb, EndpointID: lb.EndpointID.length }, { Name: 'ingress-endpoint', EndpointID: 64, MacAddress: '02:42:0a:00:00:03', IPv4Address: '10.0.0.3/24', IPv6Address: '' });
  assert.deepEqual(r.json.Peers, [{ Name: 'host-a', IP: '127.0.0.1' }]);
  assert.equal((await fx.call('GET', '/v1.41/networks/ingress')).json.Containers['ingress-sbox'].EndpointID, lb.EndpointID, 'stable');
});

test('POST /networks/create: overlay to the swarm, other drivers relayed as sent, name clashes across both', async () => {
  const fx = await controlFixture();
  const { engine, calls } = fakeEngine();
  registerNetworkRoutes(fx.router, { swarm: { control: () => fx.control } as never, engine });
  const o = await fx.call('POST', '/v1.41/networks/create', { Name: 'front', Driver: 'overlay', CheckDuplicate: true, Labels: { a: 'b' } });
  assert.equal(o.status, 201, o.text);
  assert.match(o.json.Id, /^[0-9a-z]{25}$/);
  assert.equal(o.json.Warning, '');
  const b = await fx.call('POST', '/v1.41/networks/create', { Name: 'local1', Driver: 'bridge', Weird: 1 });
  assert.equal(b.status, 201);
  const relayed = calls.find((c) => c.method === 'POST');
  assert.equal(relayed?.path, '/v1.41/networks/create');
  assert.deepEqual(relayed?.opts?.body, { Name: 'local1', Driver: 'bridge', Weird: 1 });
  assert.equal((await fx.call('POST', '/v1.41/networks/create', { Name: 'front', Driver: 'bridge' })).status, 409);
  assert.equal((await fx.call('POST', '/v1.41/networks/create', { Name: 'bridge', Driver: 'overlay', CheckDuplicate: true })).status, 403);
  assert.equal((await fx.call('POST', '/v1.41/networks/create')).status, 400);
});

test('a worker serves the engine\'s networks and refuses overlay creates with Docker\'s text', async () => {
  const fx = await controlFixture();
  const { engine } = fakeEngine();
  const info: SwarmInfo = { NodeID: 'w', NodeAddr: '', LocalNodeState: 'active', ControlAvailable: false, Error: '', RemoteManagers: null };
  registerNetworkRoutes(fx.router, { swarm: { control: () => { throw unavailable(NOT_A_MANAGER); }, info: () => info } as never, engine });
  assert.deepEqual((await fx.call('GET', '/v1.41/networks')).json.map((n: { Name: string }) => n.Name), ['bridge']);
  const r = await fx.call('POST', '/v1.41/networks/create', { Name: 'x', Driver: 'overlay' });
  assert.equal(r.status, 403);
  assert.equal(r.json.message, 'Cannot create a multi-host network from a worker node. Please create the network from a manager node.');
});

test('a worker lists and inspects the swarm networks it carries (its network view), with its containers, LB endpoint and peers; others are not found', async () => {
  const fx = await controlFixture();
  const { engine } = fakeEngine();
  const netId = '9'.repeat(25);
  const view = { ID: netId, Name: 'appnet', Subnet: '10.0.1.0/24', Gateway: '10.0.1.1', VNI: 4097, Internal: false, Attachable: true, Ingress: false, Encrypted: false, Labels: { team: 'a' }, LBAddr: '10.0.1.9' };
  const carried = [{ network: view, peers: [{ NodeID: 'w', IP: '10.199.0.14' }, { NodeID: 'm', IP: '10.199.0.11' }] }];
  const task = { Name: 'web.1.t1', EndpointID: 'e'.repeat(64), MacAddress: '02:42:0a:00:01:07', IPv4Address: '10.0.1.7/24', IPv6Address: '' };
  const request = engine.request;
  engine.request = async (method, path, opts) => (method === 'GET' && path === `/networks/shoal-${netId.slice(0, 12)}`
    ? { status: 200, headers: {}, body: Buffer.from(JSON.stringify({ ...engineNet('f'.repeat(64), 'carrier'), Created: '2026-12-02T10:00:00Z', Containers: { ['a'.repeat(64)]: task } })) }
    : request(method, path, opts));
  const info: SwarmInfo = { NodeID: 'w', NodeAddr: '', LocalNodeState: 'active', ControlAvailable: false, Error: '', RemoteManagers: null };
  registerNetworkRoutes(fx.router, { swarm: { control: () => { throw unavailable(NOT_A_MANAGER); }, info: () => info } as never, engine, attacher: () => ({ carried: () => carried }) as never });
  const ls = await fx.call('GET', '/v1.41/networks');
  assert.deepEqual(ls.json.map((n: { Name: string; Scope: string }) => `${n.Name}/${n.Scope}`), ['appnet/swarm', 'bridge/local']);
  // Docker's filters apply to them (the engine applies its own to its networks).
  const bridges = await fx.call('GET', `/v1.41/networks?filters=${encodeURIComponent('{"driver":{"bridge":true}}')}`);
  assert.ok(!bridges.json.some((n: { Name: string }) => n.Name === 'appnet'));
  for (const term of ['appnet', netId, netId.slice(0, 6)]) {
    const r = await fx.call('GET', `/v1.41/networks/${term}`);
    assert.equal(r.status, 200, term);
    assert.equal(r.json.Id, netId);
    assert.equal(r.json.Driver, 'overlay');
    assert.equal(r.json.Created, '2026-12-02T10:00:00Z');
    assert.deepEqual(r.json.IPAM.Config, [{ Subnet: '10.0.1.0/24', Gateway: '10.0.1.1' }]);
    assert.equal(r.json.Options['com.docker.network.driver.overlay.vxlanid_list'], '4097');
    assert.deepEqual(Object.keys(r.json.Containers).sort(), ['a'.repeat(64), 'lb-appnet']);
    assert.equal(r.json.Containers['lb-appnet'].IPv4Address, '10.0.1.9');
    assert.deepEqual(r.json.Peers, [{ Name: 'm', IP: '10.199.0.11' }, { Name: 'w', IP: '10.199.0.14' }]);
  }
  const missing = await fx.call('GET', '/v1.41/networks/othernet');
  assert.equal(missing.status, 404);
  assert.equal(missing.json.message, 'network othernet not found');
  assert.equal((await fx.call('GET', '/v1.41/networks/appnet?scope=local')).status, 404);
});

test('POST /networks/prune: the swarm\'s then the engine\'s, the engine told to spare the plumbing', async () => {
  const fx = await controlFixture();
  const { engine, calls } = fakeEngine();
  registerNetworkRoutes(fx.router, { swarm: { control: () => fx.control } as never, engine });
  await fx.control.networks.create({ Name: 'unused', DriverConfiguration: { Name: 'overlay' } });
  const r = await fx.call('POST', '/v1.41/networks/prune');
  assert.equal(r.status, 200);
  assert.deepEqual(r.json.NetworksDeleted, ['unused', 'old-bridge']);
  const sent = JSON.parse(calls.find((c) => c.path === '/networks/prune')!.opts!.query!.filters!);
  assert.deepEqual(sent['label!'], { [ENGINE_NETWORK_LABEL]: true });
  assert.equal((await fx.call('POST', `/v1.41/networks/prune?filters=${encodeURIComponent('{"until":{"yesterday-ish":true}}')}`)).status, 400);
});
