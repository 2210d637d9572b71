import { test } from 'node:test';
import assert from 'node:assert/strict';
import { controlFixture, NODE_ID, fakeNode } from '../../helpers/control-fixture';

const spec = (name: string, extra: Record<string, unknown> = {}) => ({
  Name: name,
  TaskTemplate: { ContainerSpec: { Image: 'shoal-test/busybox:1', Args: ['sleep', '1000'] } },
  Mode: { Replicated: { Replicas: 2 } },
  ...extra,
});

test('service create returns 201 and an ID; inspect normalises like dockerd', async () => {
  const { call } = await controlFixture();
  const res = await call('POST', '/v1.41/services/create', spec('web'));
  assert.equal(res.status, 201);
  assert.match(res.json.ID, /^[0-9a-z]{25}$/);
  const got = await call('GET', `/v1.41/services/web?insertDefaults=false`);
  assert.equal(got.status, 200);
  assert.equal(got.json.ID, res.json.ID);
  assert.equal(got.json.Spec.TaskTemplate.Runtime, 'container');
  assert.equal(got.json.Spec.TaskTemplate.ContainerSpec.Isolation, 'default');
  assert.deepEqual(got.json.Spec.EndpointSpec, { Mode: 'vip' });
  assert.equal(got.json.UpdateStatus, undefined, 'a new service has no UpdateStatus');
  const withDefaults = await call('GET', `/v1.41/services/${res.json.ID.slice(0, 6)}?insertDefaults=true`);
  assert.deepEqual(withDefaults.json.Spec.TaskTemplate.RestartPolicy, { Condition: 'any', Delay: 5e9, MaxAttempts: 0 });
  assert.equal(withDefaults.json.Spec.UpdateConfig.Order, 'stop-first');
  assert.equal(withDefaults.json.Spec.TaskTemplate.ContainerSpec.StopGracePeriod, 10e9);
});

test('a duplicate service name is 409 with Docker\'s text and creates nothing', async () => {
  const { call, store } = await controlFixture();
  await call('POST', '/services/create', spec('web'));
  const res = await call('POST', '/services/create', spec('web'));
  assert.equal(res.status, 409);
  assert.equal(res.headers['content-type'], 'application/json');
  assert.equal(res.json.message, 'rpc error: code = AlreadyExists desc = name conflicts with an existing object: service web already exists');
  assert.equal(store.count('services'), 1);
});

test('invalid specs are 400 and create nothing', async () => {
  const { call, store } = await controlFixture();
  const cases: Array<[unknown, RegExp]> = [
    [spec('bad name!'), /name must be valid as a DNS name component/],
    [{ Name: 'x', TaskTemplate: { ContainerSpec: {} } }, /image reference must be provided/],
    [spec('c', { TaskTemplate: { ContainerSpec: { Image: 'img' }, Placement: { Constraints: ['node.hostname'] } } }), /InvalidArgument/],
    [spec('m', { Mode: { Replicated: { Replicas: 1 }, Global: {} } }), /^must specify only one service mode$/],
    [spec('r', { TaskTemplate: { ContainerSpec: { Image: 'img' }, RestartPolicy: { Delay: -1 } } }), /restart-delay cannot be negative/],
  ];
  for (const [body, msg] of cases) {
    const res = await call('POST', '/services/create', body);
    assert.equal(res.status, 400, JSON.stringify(body));
    assert.match(res.json.message, msg);
  }
  const badJson = await call('POST', '/services/create', undefined);
  assert.equal(badJson.status, 400);
  assert.equal(store.count('services'), 0);
});

test('unknown service is 404; ambiguous prefix is 400', async () => {
  const { call } = await controlFixture();
  const res = await call('GET', '/services/nosuch');
  assert.equal(res.status, 404);
  assert.equal(res.json.message, 'service nosuch not found');
  await call('POST', '/services/create', spec('a1'));
  await call('POST', '/services/create', spec('a2'));
  const all = await call('GET', '/services');
  const ids: string[] = all.json.map((s: { ID: string }) => s.ID);
  // Find a shared first character if any; otherwise the empty-prefix case is covered by name lookups.
  const shared = ids[0]![0] === ids[1]![0] ? ids[0]![0]! : undefined;
  if (shared) assert.equal((await call('GET', `/services/${shared}`)).status, 400);
});

test('service update: version required, stale version 500 out of sequence, nothing changed', async () => {
  const { call } = await controlFixture();
  const { json: { ID } } = await call('POST', '/services/create', spec('web'));
  const svc = (await call('GET', `/services/${ID}`)).json;
  const missing = await call('POST', `/services/${ID}/update`, svc.Spec);
  assert.equal(missing.status, 400);
  assert.match(missing.json.message, /invalid service version/);
  const changed = structuredClone(svc.Spec); changed.Mode.Replicated.Replicas = 5;
  const ok = await call('POST', `/services/${ID}/update?version=${svc.Version.Index}`, changed);
  assert.equal(ok.status, 200);
  assert.deepEqual(ok.json, { Warnings: null });
  const again = structuredClone(svc.Spec); again.Mode.Replicated.Replicas = 7;
  const stale = await call('POST', `/services/${ID}/update?version=${svc.Version.Index}`, again);
  assert.equal(stale.status, 500);
  assert.equal(stale.json.message, 'rpc error: code = Unknown desc = update out of sequence');
  const now = (await call('GET', `/services/${ID}`)).json;
  assert.equal(now.Spec.Mode.Replicated.Replicas, 5);
  assert.equal(now.PreviousSpec.Mode.Replicated.Replicas, 2);
});

test('rollback without a previous spec is refused; with one it swaps Spec and PreviousSpec', async () => {
  const { call } = await controlFixture();
  const { json: { ID } } = await call('POST', '/services/create', spec('web'));
  let svc = (await call('GET', `/services/${ID}`)).json;
  const none = await call('POST', `/services/${ID}/update?version=${svc.Version.Index}&rollback=previous`, svc.Spec);
  assert.equal(none.status, 400);
  assert.match(none.json.message, /does not have a previous spec/);
  const changed = structuredClone(svc.Spec); changed.TaskTemplate.ContainerSpec.Image = 'shoal-test/busybox:2';
  await call('POST', `/services/${ID}/update?version=${svc.Version.Index}`, changed);
  svc = (await call('GET', `/services/${ID}`)).json;
  const rb = await call('POST', `/services/${ID}/update?version=${svc.Version.Index}&rollback=previous`, svc.Spec);
  assert.equal(rb.status, 200);
  svc = (await call('GET', `/services/${ID}`)).json;
  assert.equal(svc.Spec.TaskTemplate.ContainerSpec.Image, 'shoal-test/busybox:1');
  assert.equal(svc.PreviousSpec.TaskTemplate.ContainerSpec.Image, 'shoal-test/busybox:2');
  assert.equal(svc.UpdateStatus.State, 'rollback_started');
});

test('renaming a service or changing its mode is refused', async () => {
  const { call } = await controlFixture();
  const { json: { ID } } = await call('POST', '/services/create', spec('web'));
  const svc = (await call('GET', `/services/${ID}`)).json;
  const renamed = await call('POST', `/services/${ID}/update?version=${svc.Version.Index}`, { ...svc.Spec, Name: 'other' });
  assert.equal(renamed.status, 400);
  const global = await call('POST', `/services/${ID}/update?version=${svc.Version.Index}`, { ...svc.Spec, Mode: { Global: {} } });
  assert.match(global.json.message, /mode change is not allowed/);
});

test('service list filters and status', async () => {
  const { call } = await controlFixture();
  await call('POST', '/services/create', spec('web', { Labels: { tier: 'front' } }));
  await call('POST', '/services/create', spec('db', { Mode: { Global: {} } }));
  const byName = await call('GET', `/services?filters=${encodeURIComponent('{"name":{"we":true}}')}`);
  assert.deepEqual(byName.json.map((s: { Spec: { Name: string } }) => s.Spec.Name), ['web']);
  const byLabel = await call('GET', `/services?filters=${encodeURIComponent('{"label":{"tier=front":true}}')}`);
  assert.equal(byLabel.json.length, 1);
  const byMode = await call('GET', `/services?filters=${encodeURIComponent('{"mode":{"global":true}}')}`);
  assert.deepEqual(byMode.json.map((s: { Spec: { Name: string } }) => s.Spec.Name), ['db']);
  const withStatus = await call('GET', '/services?status=true');
  const web = withStatus.json.find((s: { Spec: { Name: string } }) => s.Spec.Name === 'web');
  assert.deepEqual(web.ServiceStatus, { RunningTasks: 0, DesiredTasks: 2, CompletedTasks: 0 });
  const bad = await call('GET', `/services?filters=${encodeURIComponent('{"bogus":{"x":true}}')}`);
  assert.equal(bad.status, 400);
  assert.equal(bad.json.message, "Invalid filter 'bogus'");
});

test('tasks list resolves service and node filters server-side', async () => {
  const { call, store } = await controlFixture();
  const { json: { ID } } = await call('POST', '/services/create', spec('web'));
  await store.txn().create('tasks', {
    ID: 'task00000000000000000000001', Version: { Index: 0 }, CreatedAt: 't', UpdatedAt: 't', Labels: {},
    Spec: structuredClone(store.get('services', ID)!.Spec.TaskTemplate!), ServiceID: ID, Slot: 1, NodeID: NODE_ID,
    Status: { Timestamp: 't', State: 'running', Message: 'started' }, DesiredState: 'running',
  }).commit();
  const f = (o: unknown) => `/tasks?filters=${encodeURIComponent(JSON.stringify(o))}`;
  assert.equal((await call('GET', f({ service: { web: true } }))).json.length, 1);
  assert.equal((await call('GET', f({ node: { 'host-a': true } }))).json.length, 1);
  assert.equal((await call('GET', f({ service: { nosuch: true } }))).json.length, 0);
  assert.equal((await call('GET', f({ 'desired-state': { shutdown: true } }))).json.length, 0);
  assert.equal((await call('GET', f({ '_up-to-date': { true: true }, service: { [ID]: true } }))).json.length, 1);
  assert.equal((await call('GET', f({ name: { 'web.1': true } }))).json.length, 1);
  const t = await call('GET', '/tasks/task0000');
  assert.equal(t.json.ID, 'task00000000000000000000001');
  assert.equal((await call('GET', '/tasks/nosuch')).status, 404);
});

test('nodes: inspect by hostname and self, update with version check, local node cannot be removed', async () => {
  const { call, store } = await controlFixture();
  const self = await call('GET', '/nodes/self');
  assert.equal(self.json.ID, NODE_ID);
  const byName = await call('GET', '/nodes/host-a');
  assert.equal(byName.json.ID, NODE_ID);
  const upd = await call('POST', `/nodes/${NODE_ID}/update?version=${self.json.Version.Index}`, { ...self.json.Spec, Availability: 'drain', Labels: { ssd: '' } });
  assert.equal(upd.status, 200);
  assert.equal(store.get('nodes', NODE_ID)!.Spec.Availability, 'drain');
  const stale = await call('POST', `/nodes/${NODE_ID}/update?version=${self.json.Version.Index}`, self.json.Spec);
  assert.equal(stale.status, 500);
  const badAvail = await call('POST', `/nodes/${NODE_ID}/update?version=${store.get('nodes', NODE_ID)!.Version.Index}`, { Availability: 'sleepy' });
  assert.equal(badAvail.status, 400);
  const demote = await call('POST', `/nodes/${NODE_ID}/update?version=${store.get('nodes', NODE_ID)!.Version.Index}`, { Role: 'worker' });
  assert.match(demote.json.message, /demote the last manager/);
  const del = await call('DELETE', `/nodes/${NODE_ID}`);
  assert.equal(del.status, 400);
  assert.ok(store.get('nodes', NODE_ID));
  await store.txn().create('nodes', fakeNode('node0000000000000000000002', 'host-b', 'worker')).commit();
  const filtered = await call('GET', `/nodes?filters=${encodeURIComponent('{"role":{"worker":true}}')}`);
  assert.deepEqual(filtered.json.map((n: { ID: string }) => n.ID), ['node0000000000000000000002']);
  assert.equal((await call('DELETE', '/nodes/host-b')).status, 400, 'a ready node needs --force');
  assert.equal((await call('DELETE', '/nodes/host-b?force=1')).status, 200);
});

test('nodes: inspect and ls show no Attachments (Docker\'s Node has none; Shoal keeps LB addresses there)', async () => {
  const { call, store } = await controlFixture();
  const n = store.get('nodes', NODE_ID)!;
  const net = store.list('networks')[0]!;
  await store.txn().update('nodes', { ...n, Attachments: [{ Network: net, Addresses: ['10.0.0.3/24'] }] }).commit();
  assert.ok(store.get('nodes', NODE_ID)!.Attachments?.length, 'kept in the store');
  const self = await call('GET', '/nodes/self');
  assert.deepEqual(Object.keys(self.json).sort(), ['CreatedAt', 'Description', 'ID', 'ManagerStatus', 'Spec', 'Status', 'UpdatedAt', 'Version']);
  const all = await call('GET', '/nodes');
  assert.equal(all.json[0].Attachments, undefined);
  // The answers are shallow copies: the stored node keeps its attachments and no liveness.
  assert.ok(store.get('nodes', NODE_ID)!.Attachments?.length, 'still kept in the store');
  assert.equal(store.get('nodes', NODE_ID)!.ManagerStatus?.Reachability, n.ManagerStatus?.Reachability, 'the stored ManagerStatus unchanged');
});

test('nodes: ls keeps each worker\'s JSON per version: a change shows at once, a removed node goes, managers stay live', async () => {
  const { call, store } = await controlFixture();
  await store.txn().create('nodes', fakeNode('node0000000000000000000002', 'host-b', 'worker')).commit();
  const first = await call('GET', '/nodes');
  assert.deepEqual(first.json.map((n: { ID: string }) => n.ID), [NODE_ID, 'node0000000000000000000002']);
  assert.equal((await call('GET', '/nodes')).text, first.text, 'the same answer again');
  const w = store.get('nodes', 'node0000000000000000000002')!;
  await store.txn().update('nodes', { ...w, Status: { ...w.Status, State: 'down', Message: 'heartbeat failure' } }).commit();
  const changed = await call('GET', '/nodes');
  assert.equal(changed.json[1].Status.State, 'down');
  assert.equal(changed.json[1].Version.Index, store.get('nodes', 'node0000000000000000000002')!.Version.Index);
  // The manager's liveness is read at each call (as inspect does), not kept with its JSON.
  assert.deepEqual(changed.json[0].ManagerStatus, (await call('GET', '/nodes/self')).json.ManagerStatus);
  assert.ok(changed.json[0].ManagerStatus.Reachability);
  assert.equal((await call('DELETE', '/nodes/host-b?force=1')).status, 200);
  assert.deepEqual((await call('GET', '/nodes')).json.map((n: { ID: string }) => n.ID), [NODE_ID]);
});

test('swarm: inspect hides the CA key; not-a-manager is 503 with Docker\'s text', async () => {
  const { call } = await controlFixture();
  const sw = await call('GET', '/swarm');
  assert.equal(sw.status, 200);
  assert.equal(sw.json.Spec.Orchestration.TaskHistoryRetentionLimit, 5);
  assert.equal(sw.json.CAKey, undefined, 'the CA key never leaves the store');
  const inactive = await controlFixture({ active: false });
  const res = await inactive.call('GET', '/services');
  assert.equal(res.status, 503);
  assert.equal(res.json.message, 'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again.');
});

test('API version above 1.41 is refused like dockerd', async () => {
  const { call } = await controlFixture();
  const res = await call('GET', '/v1.99/services');
  assert.equal(res.status, 400);
  assert.equal(res.json.message, 'client version 1.99 is too new. Maximum supported API version is 1.41');
});

test('a published port another service uses is refused at create and update with Docker\'s 400', async () => {
  const { call, store } = await controlFixture();
  const ports = (p: Array<Record<string, unknown>>) => ({ EndpointSpec: { Ports: p } });
  const web = await call('POST', '/services/create', spec('web', ports([{ TargetPort: 80, PublishedPort: 8080 }])));
  assert.equal(web.status, 201);
  const clash = await call('POST', '/services/create', spec('api', ports([{ TargetPort: 81, PublishedPort: 8080, Protocol: 'tcp' }])));
  assert.equal(clash.status, 400);
  assert.equal(clash.json.message, `rpc error: code = InvalidArgument desc = port '8080' is already in use by service 'web' (${web.json.ID}) as an ingress port`);
  assert.equal((await call('POST', '/services/create', spec('udp', ports([{ TargetPort: 81, PublishedPort: 8080, Protocol: 'udp' }])))).status, 201, 'another protocol is another port');
  const api = await call('POST', '/services/create', spec('api', ports([{ TargetPort: 81 }])));
  assert.equal(api.status, 201);
  const cur = await call('GET', '/services/api');
  const upd = await call('POST', `/services/api/update?version=${cur.json.Version.Index}`, spec('api', ports([{ TargetPort: 81, PublishedPort: 8080 }])));
  assert.equal(upd.status, 400);
  assert.match(upd.json.message, /port '8080' is already in use by service 'web'/);
  // The same service keeps its own port through an update.
  const w = await call('GET', '/services/web');
  assert.equal((await call('POST', `/services/web/update?version=${w.json.Version.Index}`, spec('web', ports([{ TargetPort: 80, PublishedPort: 8080 }, { TargetPort: 443 }])))).status, 200);
  assert.equal(store.count('services'), 3);
});
