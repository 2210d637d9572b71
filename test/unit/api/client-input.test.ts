import { test } from 'node:test';
import assert from 'node:assert/strict';
import { controlFixture } from '../../helpers/control-fixture';

// Request bodies and query parameters from clients other than the CLI, read
// as dockerd reads them (Go's encoding/json, httputils, strconv).

const IMG = 'shoal-test/busybox:1';
const base = (name: string, extra: Record<string, unknown> = {}) => ({ Name: name, TaskTemplate: { ContainerSpec: { Image: IMG } }, ...extra });

test('lowercase field names, as SDKs send them, are stored under Docker\'s names', async () => {
  const { call } = await controlFixture();
  const rep = await call('POST', '/v1.41/services/create', { name: 'five', tasktemplate: { containerspec: { image: IMG } }, mode: { replicated: { replicas: 5 } }, unknownField: 1 });
  assert.equal(rep.status, 201, rep.text);
  const five = await call('GET', '/services/five');
  assert.deepEqual(five.json.Spec.Mode, { Replicated: { Replicas: 5 } });
  assert.equal(five.json.Spec.TaskTemplate.ContainerSpec.Image, IMG);
  assert.equal(five.json.Spec.unknownField, undefined);

  assert.equal((await call('POST', '/services/create', { Name: 'everywhere', TaskTemplate: { ContainerSpec: { Image: IMG } }, Mode: { global: {} } })).status, 201);
  assert.deepEqual((await call('GET', '/services/everywhere')).json.Spec.Mode, { Global: {} });

  const up = await call('POST', `/services/five/update?version=${five.json.Version.Index}`, { ...five.json.Spec, updateconfig: { parallelism: 2, order: 'start-first' } });
  assert.equal(up.status, 200, up.text);
  assert.deepEqual((await call('GET', '/services/five')).json.Spec.UpdateConfig, { Parallelism: 2, Order: 'start-first' });
});

test('a config\'s lowercase Templating is kept', async () => {
  const { call } = await controlFixture();
  const res = await call('POST', '/configs/create', { name: 'tpl', data: Buffer.from('{{ .Service.Name }}').toString('base64'), templating: { name: 'golang' } });
  assert.equal(res.status, 201, res.text);
  assert.deepEqual((await call('GET', '/configs/tpl')).json.Spec.Templating, { Name: 'golang' });
});

test('wrong JSON types are 400 with Go\'s message and change nothing', async () => {
  const { call, store } = await controlFixture();
  const bad = await call('POST', '/services/create', base('p', { Mode: 'replicated' }));
  assert.equal(bad.status, 400);
  assert.equal(bad.json.message, 'json: cannot unmarshal string into Go struct field ServiceSpec.Mode of type swarm.ServiceMode');
  const plat = await call('POST', '/services/create', { Name: 'p', TaskTemplate: { ContainerSpec: { Image: IMG }, Placement: { Platforms: 'linux/amd64' } } });
  assert.equal(plat.status, 400);
  assert.equal(plat.json.message, 'json: cannot unmarshal string into Go struct field Placement.TaskTemplate.Placement.Platforms of type []swarm.Platform');
  assert.equal(store.count('services'), 0);

  await call('POST', '/services/create', base('keep'));
  const before = (await call('GET', '/services/keep')).json;
  const up = await call('POST', `/services/keep/update?version=${before.Version.Index}`, { ...before.Spec, UpdateConfig: { Delay: '5s' } });
  assert.equal(up.status, 400);
  assert.equal(up.json.message, 'json: cannot unmarshal string into Go struct field UpdateConfig.UpdateConfig.Delay of type time.Duration');
  assert.deepEqual((await call('GET', '/services/keep')).json, before, 'a refused update changes nothing');

  const empty = await call('POST', '/services/create');
  assert.equal(empty.status, 400);
  assert.equal(empty.json.message, 'got EOF while reading request body');
});

test('replicas are capped at 1000000 and a spec at 1 MiB, with clear 400s', async () => {
  const { call, store } = await controlFixture();
  const many = await call('POST', '/services/create', base('many', { Mode: { Replicated: { Replicas: 10_000_000 } } }));
  assert.equal(many.status, 400);
  assert.equal(many.json.message, 'rpc error: code = InvalidArgument desc = invalid replicas value 10000000: the maximum is 1000000');
  assert.equal((await call('POST', '/services/create', base('max', { Mode: { Replicated: { Replicas: 1_000_000 } } }))).status, 201);
  const huge = await call('POST', '/services/create', base('huge', { Labels: { big: 'x'.repeat(1024 * 1024) } }));
  assert.equal(huge.status, 400);
  assert.match(huge.json.message, /^service spec too large: \d+ bytes encoded, the maximum is 1048576$/);
  assert.equal(store.count('services'), 1);

  const max = (await call('GET', '/services/max')).json;
  const up = await call('POST', `/services/max/update?version=${max.Version.Index}`, { ...max.Spec, Mode: { Replicated: { Replicas: 1_000_001 } } });
  assert.equal(up.status, 400);
  assert.equal((await call('GET', '/services/max')).json.Spec.Mode.Replicated.Replicas, 1_000_000);
});

test('spread descriptors Docker accepts are accepted; preferences without Spread are dropped', async () => {
  const { call } = await controlFixture();
  const prefs = ['node.labels.zone', 'Node.Labels.Zone', 'engine.labels.disk', 'node.hostname', 'node.labels.', 'anything'].map((d) => ({ Spread: { SpreadDescriptor: d } }));
  const res = await call('POST', '/services/create', { Name: 'spread', TaskTemplate: { ContainerSpec: { Image: IMG }, Placement: { Preferences: [...prefs, {}] } } });
  assert.equal(res.status, 201, res.text);
  assert.deepEqual((await call('GET', '/services/spread')).json.Spec.TaskTemplate.Placement.Preferences, prefs);
});

test('negative durations and bad enums are refused with Docker\'s messages', async () => {
  const { call } = await controlFixture();
  const cases: Array<[Record<string, unknown>, string]> = [
    [{ UpdateConfig: { Delay: -1 } }, 'rpc error: code = InvalidArgument desc = TaskSpec: update-delay cannot be negative'],
    [{ UpdateConfig: { Monitor: -1 } }, 'rpc error: code = InvalidArgument desc = TaskSpec: update-monitor cannot be negative'],
    [{ RollbackConfig: { Delay: -1 } }, 'rpc error: code = InvalidArgument desc = TaskSpec: update-delay cannot be negative'],
    [{ UpdateConfig: { Order: 'sideways' } }, 'unrecognized update order sideways'],
    [{ UpdateConfig: { FailureAction: 'panic' } }, 'unrecognized update failure action panic'],
    [{ EndpointSpec: { Mode: 'rr' } }, 'invalid resolution mode: "rr"'],
    [{ TaskTemplate: { ContainerSpec: { Image: IMG }, RestartPolicy: { Condition: 'always' } } }, 'invalid RestartCondition: "always"'],
    [{ TaskTemplate: { ContainerSpec: { Image: IMG, StopGracePeriod: -5 } } }, 'rpc error: code = InvalidArgument desc = ContainerSpec: StopGracePeriod cannot be negative'],
    [{ TaskTemplate: { ContainerSpec: { Image: IMG, Healthcheck: { Interval: 10 } } } }, 'rpc error: code = InvalidArgument desc = ContainerSpec: Interval in HealthConfig cannot be less than 1ms'],
    [{ TaskTemplate: { ContainerSpec: { Image: IMG }, Resources: { Limits: { NanoCPUs: -1 } } } }, 'rpc error: code = InvalidArgument desc = invalid cpu value -1e-09: Must be at least 0.001'],
    [{ TaskTemplate: { ContainerSpec: { Image: IMG, Ulimits: [null] } } }, 'rpc error: code = InvalidArgument desc = ContainerSpec: malformed ulimit'],
    [{ TaskTemplate: {} }, 'mismatched Runtime and *Spec fields'],
    [{ Mode: { ReplicatedJob: {} }, UpdateConfig: {} }, 'rpc error: code = InvalidArgument desc = Jobs may not have an update config'],
  ];
  for (const [extra, message] of cases) {
    const res = await call('POST', '/services/create', base('bad', extra));
    assert.equal(res.status, 400, JSON.stringify(extra));
    assert.equal(res.json.message, message);
  }
});

test('query flags: ParseBool where dockerd uses it, BoolValue elsewhere', async () => {
  const { call } = await controlFixture();
  await call('POST', '/services/create', base('q'));
  const listed = await call('GET', '/services?status=True');
  assert.deepEqual(listed.json[0].ServiceStatus, { RunningTasks: 0, DesiredTasks: 1, CompletedTasks: 0 });
  assert.equal((await call('GET', '/services?status=0')).json[0].ServiceStatus, undefined);
  const yes = await call('GET', '/services?status=yes');
  assert.equal(yes.status, 400);
  assert.equal(yes.json.message, 'invalid value for status: yes: strconv.ParseBool: parsing "yes": invalid syntax');
  const inspected = await call('GET', '/services/q?insertDefaults=True');
  assert.equal(inspected.json.Spec.UpdateConfig.Order, 'stop-first');
  assert.equal((await call('GET', '/services/q?insertDefaults=T')).json.Spec.UpdateConfig?.Order, 'stop-first');
  assert.equal((await call('GET', '/services/q?insertDefaults=yes')).status, 400);
  const rot = await call('POST', '/swarm/update?version=1&rotateWorkerToken=yes', (await call('GET', '/swarm')).json.Spec);
  assert.equal(rot.status, 400);
  assert.equal(rot.json.message, 'invalid value for rotateWorkerToken: yes');
  const rb = await call('POST', '/services/q/update?version=1&rollback=next', base('q'));
  assert.equal(rb.status, 400);
  assert.equal(rb.json.message, 'unrecognized rollback option next');
});

test('node updates: roles and availabilities in any case, Docker\'s message otherwise', async () => {
  const { call } = await controlFixture();
  const node = (await call('GET', '/nodes/self')).json;
  const ok = await call('POST', `/nodes/self/update?version=${node.Version.Index}`, { labels: { a: 'b' }, role: 'Manager', availability: 'DRAIN' });
  assert.equal(ok.status, 200, ok.text);
  const after = (await call('GET', '/nodes/self')).json;
  assert.deepEqual(after.Spec, { Labels: { a: 'b' }, Role: 'manager', Availability: 'drain' });
  const bad = await call('POST', `/nodes/self/update?version=${after.Version.Index}`, { Availability: 'sleep' });
  assert.equal(bad.status, 400);
  assert.equal(bad.json.message, 'invalid Availability: "sleep"');
});

test('swarm init and update: bodies decoded, specs validated before anything happens', async () => {
  const { call } = await controlFixture({ active: false });
  const short = await call('POST', '/swarm/init', { listenaddr: '0.0.0.0:2377', spec: { caconfig: { nodecertexpiry: 1e9 } } });
  assert.equal(short.status, 400);
  assert.equal(short.json.message, 'rpc error: code = InvalidArgument desc = minimum certificate expiry time is: 1h0m0s');
  const ca = await call('POST', '/swarm/init', { Spec: { CAConfig: { ExternalCAs: [{ Protocol: 'acme', URL: 'https://ca' }] } } });
  assert.equal(ca.status, 400);
  assert.equal(ca.json.message, 'invalid protocol: "acme"');
  const typed = await call('POST', '/swarm/init', { ForceNewCluster: 'yes' });
  assert.equal(typed.status, 400);
  assert.equal(typed.json.message, 'json: cannot unmarshal string into Go struct field InitRequest.ForceNewCluster of type bool');
  assert.equal((await call('POST', '/swarm/init')).json.message, 'got EOF while reading request body');
  assert.equal((await call('POST', '/swarm/init', { AdvertiseAddr: '127.0.0.1' })).status, 200);
});

test('secrets: lowercase fields decoded, a wrongly typed Data refused', async () => {
  const { call } = await controlFixture();
  const res = await call('POST', '/secrets/create', { name: 'pw', data: Buffer.from('s3cret').toString('base64'), labels: { a: 'b' } });
  assert.equal(res.status, 201, res.text);
  assert.deepEqual((await call('GET', '/secrets/pw')).json.Spec, { Name: 'pw', Labels: { a: 'b' } });
  const bad = await call('POST', '/secrets/create', { Name: 'pw2', Data: ['x'] });
  assert.equal(bad.status, 400);
  assert.equal(bad.json.message, 'json: cannot unmarshal array into Go struct field SecretSpec.Data of type []uint8');
});
