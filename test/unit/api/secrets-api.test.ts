import { test } from 'node:test';
import assert from 'node:assert/strict';
import { controlFixture, NODE_ID } from '../../helpers/control-fixture';
import { SecretBox } from '../../../src/manager/controlapi/secret-box';
import { localDispatch } from '../../helpers/dispatcher-fixture';
import { waitFor } from '../agent/fakes';
import { MemoryBackend } from '../../../src/store/memory-backend';
import { Store } from '../../../src/store/store';
import { ControlApi } from '../../../src/manager/controlapi';
import { silentLogger } from '../../../src/common/log';

const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');
const f = (o: unknown) => encodeURIComponent(JSON.stringify(o));

const svc = (name: string, cs: Record<string, unknown> = {}) => ({
  Name: name,
  TaskTemplate: { ContainerSpec: { Image: 'shoal-test/busybox:1', Args: ['sleep', '1000'], ...cs } },
  Mode: { Replicated: { Replicas: 1 } },
});
const secretRef = (id: string, name: string, target = name, extra: Record<string, unknown> = {}) =>
  ({ SecretID: id, SecretName: name, File: { Name: target, UID: '0', GID: '0', Mode: 0o444, ...extra } });
const configRef = (id: string, name: string, target = `/${name}`) =>
  ({ ConfigID: id, ConfigName: name, File: { Name: target, UID: '0', GID: '0', Mode: 0o444 } });

test('secret create is 201 {ID}; inspect and list never show the value; the store holds it sealed', async () => {
  const { call, store } = await controlFixture();
  const res = await call('POST', '/v1.41/secrets/create', { Name: 'db_pass', Labels: { env: 'prod' }, Data: b64('s3cret') });
  assert.equal(res.status, 201);
  assert.deepEqual(Object.keys(res.json), ['ID']);
  assert.match(res.json.ID, /^[0-9a-z]{25}$/);
  for (const ref of ['db_pass', res.json.ID, res.json.ID.slice(0, 5)]) {
    const got = await call('GET', `/v1.41/secrets/${ref}`);
    assert.equal(got.status, 200, ref);
    assert.equal(got.json.ID, res.json.ID);
    assert.deepEqual(got.json.Spec, { Name: 'db_pass', Labels: { env: 'prod' } });
    assert.equal(got.json.SealedData, undefined);
    assert.equal(typeof got.json.Version.Index, 'number');
    assert.ok(got.json.CreatedAt && got.json.UpdatedAt);
  }
  const list = await call('GET', '/secrets');
  assert.equal(list.json.length, 1);
  assert.equal(list.json[0].Spec.Data, undefined);
  assert.ok(!list.text.includes('s3cret') && !list.text.includes(b64('s3cret')));
  const stored = JSON.stringify(store.get('secrets', res.json.ID));
  assert.ok(!stored.includes('s3cret') && !stored.includes(b64('s3cret')), 'only ciphertext in the store');
  assert.match(store.get('secrets', res.json.ID)!.SealedData, /^v1:/);
  assert.equal(store.get('secrets', res.json.ID)!.Spec.Data, undefined);
  assert.equal((await call('GET', '/secrets/nosuch')).json.message, 'secret nosuch not found');
  assert.equal((await call('GET', '/secrets/nosuch')).status, 404);
});

test('a duplicate secret or config name is 409 with Docker\'s text and creates nothing', async () => {
  const { call, store } = await controlFixture();
  assert.equal((await call('POST', '/secrets/create', { Name: 'dup', Data: b64('a') })).status, 201);
  const again = await call('POST', '/secrets/create', { Name: 'dup', Data: b64('b') });
  assert.equal(again.status, 409);
  assert.equal(again.json.message, 'rpc error: code = AlreadyExists desc = secret dup already exists');
  assert.equal(store.count('secrets'), 1);
  assert.equal((await call('POST', '/configs/create', { Name: 'dup', Data: b64('a') })).status, 201, 'configs have their own names');
  const c = await call('POST', '/configs/create', { Name: 'dup', Data: b64('a') });
  assert.equal(c.status, 409);
  assert.equal(c.json.message, 'rpc error: code = AlreadyExists desc = config dup already exists');
  assert.equal(store.count('configs'), 1);
});

test('secret and config payloads: empty or ≥ 500 KiB is 400 with SwarmKit\'s text; bad names and bad base64 are 400', async () => {
  const { call, store } = await controlFixture();
  for (const kind of ['secret', 'config'] as const) {
    const url = `/${kind}s/create`;
    const msg = `rpc error: code = InvalidArgument desc = ${kind} data must be larger than 0 and less than 512000 bytes`;
    const big = await call('POST', url, { Name: 'big', Data: b64(Buffer.alloc(512000, 'x')) });
    assert.equal(big.status, 400);
    assert.equal(big.json.message, msg);
    const empty = await call('POST', url, { Name: 'empty', Data: '' });
    assert.equal(empty.json.message, msg);
    assert.equal((await call('POST', url, { Name: 'nodata' })).json.message, msg);
    assert.equal((await call('POST', url, { Name: 'justunder', Data: b64(Buffer.alloc(511999, 'x')) })).status, 201);
    const nameMsg = 'rpc error: code = InvalidArgument desc = invalid name, only 64 [a-zA-Z0-9-_.] characters allowed, and the start and end character must be [a-zA-Z0-9]';
    for (const name of ['bad name', '-lead', 'trail_', 'x'.repeat(65), 'a/b']) {
      const r = await call('POST', url, { Name: name, Data: b64('v') });
      assert.equal(r.status, 400, name);
      assert.equal(r.json.message, nameMsg, name);
    }
    assert.equal((await call('POST', url, { Data: b64('v') })).json.message, 'rpc error: code = InvalidArgument desc = name must be provided');
    assert.equal((await call('POST', url, { Name: 'x'.repeat(64), Data: b64('v') })).status, 201, '64 characters are fine');
    assert.equal((await call('POST', url, { Name: 'app.conf-v1', Data: b64('v') })).status, 201, 'dots are fine');
    const badB64 = await call('POST', url, { Name: 'b64', Data: 'not base64!' });
    assert.equal(badB64.status, 400);
    assert.match(badB64.json.message, /^illegal base64 data at input byte \d+$/);
  }
  assert.equal(store.count('secrets'), 3);
  assert.equal(store.count('configs'), 3);
  const driver = await call('POST', '/secrets/create', { Name: 'drv', Data: b64('v'), Driver: { Name: 'vault' } });
  assert.equal(driver.status, 400);
  assert.equal(store.count('secrets'), 3);
});

test('secret update: labels only, with a version; a different value or name is refused and nothing changes', async () => {
  const { call, store } = await controlFixture();
  const { json: { ID } } = await call('POST', '/secrets/create', { Name: 'db', Labels: { a: '1' }, Data: b64('v1') });
  const cur = (await call('GET', `/secrets/${ID}`)).json;
  const noVersion = await call('POST', `/secrets/${ID}/update`, { Name: 'db', Labels: {} });
  assert.equal(noVersion.status, 400);
  assert.equal(noVersion.json.message, 'invalid secret version');
  const data = await call('POST', `/secrets/${ID}/update?version=${cur.Version.Index}`, { Name: 'db', Labels: { a: '2' }, Data: b64('v2') });
  assert.equal(data.status, 400);
  assert.equal(data.json.message, 'rpc error: code = InvalidArgument desc = only updates to Labels are allowed');
  const rename = await call('POST', `/secrets/${ID}/update?version=${cur.Version.Index}`, { Name: 'other', Labels: {} });
  assert.equal(rename.json.message, 'rpc error: code = InvalidArgument desc = only updates to Labels are allowed');
  assert.deepEqual(store.get('secrets', ID)!.Spec.Labels, { a: '1' });
  assert.equal(store.get('secrets', ID)!.Version.Index, cur.Version.Index, 'refusals change nothing');
  // The same value again (what stack deploy sends) is fine.
  const ok = await call('POST', `/secrets/${ID}/update?version=${cur.Version.Index}`, { Name: 'db', Labels: { b: '3' }, Data: b64('v1') });
  assert.equal(ok.status, 200);
  assert.equal(ok.text, '');
  const after = (await call('GET', '/secrets/db')).json;
  assert.deepEqual(after.Spec.Labels, { b: '3' });
  assert.ok(after.Version.Index > cur.Version.Index);
  const stale = await call('POST', `/secrets/${ID}/update?version=${cur.Version.Index}`, { Name: 'db', Labels: {} });
  assert.equal(stale.status, 500);
  assert.equal(stale.json.message, 'rpc error: code = Unknown desc = update out of sequence');
  assert.deepEqual(store.get('secrets', ID)!.Spec.Labels, { b: '3' });
  assert.equal((await call('POST', '/secrets/nosuch/update?version=1', { Name: 'x' })).status, 404);
});

test('config: inspect shows Data; update labels only with "invalid config version" and the same refusals', async () => {
  const { call, store } = await controlFixture();
  const { json: { ID } } = await call('POST', '/configs/create', { Name: 'app_cfg', Data: b64('port=80\n') });
  const got = (await call('GET', '/configs/app_cfg')).json;
  assert.deepEqual(got.Spec, { Name: 'app_cfg', Labels: {}, Data: b64('port=80\n') });
  assert.equal((await call('POST', `/configs/${ID}/update`, got.Spec)).json.message, 'invalid config version');
  const changed = await call('POST', `/configs/${ID}/update?version=${got.Version.Index}`, { ...got.Spec, Data: b64('port=81\n') });
  assert.equal(changed.json.message, 'rpc error: code = InvalidArgument desc = only updates to Labels are allowed');
  assert.equal(store.get('configs', ID)!.Spec.Data, b64('port=80\n'));
  assert.equal((await call('POST', `/configs/${ID}/update?version=${got.Version.Index}`, { ...got.Spec, Labels: { x: 'y' } })).status, 200);
  assert.deepEqual(store.get('configs', ID)!.Spec.Labels, { x: 'y' });
});

test('list filters: secrets take id, label, name (prefix) and names (exact); configs id, label, name', async () => {
  const { call } = await controlFixture();
  const a = (await call('POST', '/secrets/create', { Name: 'app_a', Labels: { tier: 'web' }, Data: b64('1') })).json.ID;
  await call('POST', '/secrets/create', { Name: 'app_ab', Labels: { tier: 'db' }, Data: b64('2') });
  await call('POST', '/secrets/create', { Name: 'other', Data: b64('3') });
  const names = async (q: unknown) => (await call('GET', `/secrets?filters=${f(q)}`)).json.map((s: { Spec: { Name: string } }) => s.Spec.Name).sort();
  assert.deepEqual(await names({ name: { app_a: true } }), ['app_a', 'app_ab']);
  assert.deepEqual(await names({ names: { app_a: true } }), ['app_a']);
  assert.deepEqual(await names({ label: { 'tier=db': true } }), ['app_ab']);
  assert.deepEqual(await names({ label: { tier: true } }), ['app_a', 'app_ab']);
  assert.deepEqual(await names({ id: { [a]: true } }), ['app_a']);
  // SwarmKit ORs names, name prefixes and ID prefixes.
  assert.deepEqual(await names({ names: { other: true }, id: { [a]: true } }), ['app_a', 'other']);
  const bogus = await call('GET', `/secrets?filters=${f({ bogus: { x: true } })}`);
  assert.equal(bogus.status, 400);
  assert.equal(bogus.json.message, "Invalid filter 'bogus'");
  await call('POST', '/configs/create', { Name: 'cfg1', Labels: { k: 'v' }, Data: b64('1') });
  await call('POST', '/configs/create', { Name: 'cfg2', Data: b64('2') });
  const cnames = async (q: unknown) => (await call('GET', `/configs?filters=${f(q)}`)).json.map((s: { Spec: { Name: string } }) => s.Spec.Name).sort();
  assert.deepEqual(await cnames({ name: { cfg: true } }), ['cfg1', 'cfg2']);
  assert.deepEqual(await cnames({ label: { k: true } }), ['cfg1']);
  assert.equal((await call('GET', `/configs?filters=${f({ names: { cfg1: true } })}`)).json.message, "Invalid filter 'names'");
});

test('services: unknown or renamed secrets/configs, malformed references and duplicate targets are 400; nothing is created', async () => {
  const { call, store } = await controlFixture();
  const sid = (await call('POST', '/secrets/create', { Name: 'db_pass', Data: b64('s3cret') })).json.ID;
  const cid = (await call('POST', '/configs/create', { Name: 'app_cfg', Data: b64('c') })).json.ID;
  const cases: Array<[Record<string, unknown>, string]> = [
    [{ Secrets: [secretRef('nosuchid000000000000000000', 'nosuch')] }, 'secret not found: nosuch'],
    [{ Secrets: [secretRef('x1', 'a'), secretRef('x2', 'b', 'bt')] }, 'secrets not found: a, b'],
    [{ Secrets: [secretRef(sid, 'wrong_name')] }, 'secret not found: wrong_name'],
    [{ Configs: [configRef('nosuchcfg', 'nocfg')] }, 'config not found: nocfg'],
    [{ Secrets: [secretRef(sid, 'db_pass', 'same'), secretRef(sid, 'db_pass', 'same')] }, "secret references 'db_pass' and 'db_pass' have a conflicting target: 'same'"],
    [{ Configs: [configRef(cid, 'app_cfg', '/x'), configRef(cid, 'app_cfg', '/x')] }, "config references 'app_cfg' and 'app_cfg' have a conflicting target: '/x'"],
    [{ Secrets: [{ SecretID: sid, SecretName: 'db_pass' }] }, 'malformed secret reference, no target provided'],
    [{ Secrets: [{ SecretID: '', SecretName: 'db_pass', File: { Name: 'x' } }] }, 'malformed secret reference'],
    [{ Secrets: [secretRef(sid, 'db_pass', '')] }, 'malformed file secret reference, invalid target file name provided'],
  ];
  for (const [cs, msg] of cases) {
    const r = await call('POST', '/services/create', svc('web', cs));
    assert.equal(r.status, 400, msg);
    assert.equal(r.json.message, `rpc error: code = InvalidArgument desc = ${msg}`);
  }
  assert.equal(store.count('services'), 0);
  const ok = await call('POST', '/services/create', svc('web', { Secrets: [secretRef(sid, 'db_pass'), secretRef(sid, 'db_pass', 'other', { UID: '1000', GID: '1000', Mode: 0o400 })], Configs: [configRef(cid, 'app_cfg', '/etc/app.conf')] }));
  assert.equal(ok.status, 201);
  // An update adding an unknown secret is refused and leaves the spec alone.
  const cur = (await call('GET', `/services/${ok.json.ID}`)).json;
  const spec = structuredClone(cur.Spec);
  spec.TaskTemplate.ContainerSpec.Secrets.push(secretRef('gone00000000000000000000000', 'gone', 'g'));
  const upd = await call('POST', `/services/${ok.json.ID}/update?version=${cur.Version.Index}`, spec);
  assert.equal(upd.status, 400);
  assert.equal(upd.json.message, 'rpc error: code = InvalidArgument desc = secret not found: gone');
  assert.equal(store.get('services', ok.json.ID)!.Spec.TaskTemplate!.ContainerSpec!.Secrets!.length, 2);
  assert.equal(store.get('services', ok.json.ID)!.Version.Index, cur.Version.Index);
});

test('removing a secret or config in use is 400 with Docker\'s text; once unused it is 204', async () => {
  const { call, store } = await controlFixture();
  const sid = (await call('POST', '/secrets/create', { Name: 'db_pass', Data: b64('s3cret') })).json.ID;
  const cid = (await call('POST', '/configs/create', { Name: 'app_cfg', Data: b64('c') })).json.ID;
  const web = (await call('POST', '/services/create', svc('web', { Secrets: [secretRef(sid, 'db_pass')], Configs: [configRef(cid, 'app_cfg')] }))).json.ID;
  const inUse = await call('DELETE', '/secrets/db_pass');
  assert.equal(inUse.status, 400);
  assert.equal(inUse.json.message, "rpc error: code = InvalidArgument desc = secret 'db_pass' is in use by the following service: web");
  const cfgInUse = await call('DELETE', `/configs/${cid}`);
  assert.equal(cfgInUse.json.message, "rpc error: code = InvalidArgument desc = config 'app_cfg' is in use by the following service: web");
  await call('POST', '/services/create', svc('api', { Secrets: [secretRef(sid, 'db_pass')] }));
  const two = await call('DELETE', `/secrets/${sid}`);
  assert.match(two.json.message, /secret 'db_pass' is in use by the following services: (web, api|api, web)$/);
  assert.ok(store.get('secrets', sid) && store.get('configs', cid), 'refusals remove nothing');
  // Drop the references (like `service update --secret-rm`), then remove.
  for (const name of ['web', 'api']) {
    const cur = (await call('GET', `/services/${name}`)).json;
    const spec = structuredClone(cur.Spec);
    delete spec.TaskTemplate.ContainerSpec.Secrets;
    delete spec.TaskTemplate.ContainerSpec.Configs;
    assert.equal((await call('POST', `/services/${cur.ID}/update?version=${cur.Version.Index}`, spec)).status, 200);
  }
  // PreviousSpec still names it: like SwarmKit, only the current spec counts...
  const del = await call('DELETE', '/secrets/db_pass');
  assert.equal(del.status, 204);
  assert.equal(del.text, '');
  assert.equal((await call('DELETE', '/configs/app_cfg')).status, 204);
  assert.equal(store.count('secrets'), 0);
  assert.equal((await call('DELETE', '/secrets/db_pass')).status, 404);
  // ...but a rollback to a spec whose secret is gone is refused here.
  const cur = (await call('GET', `/services/${web}`)).json;
  const rb = await call('POST', `/services/${web}/update?version=${cur.Version.Index}&rollback=previous`, cur.Spec);
  assert.equal(rb.status, 400);
  assert.equal(rb.json.message, 'rpc error: code = InvalidArgument desc = secret not found: db_pass');
});

test('a secret removal racing a service create that references it: never both', async () => {
  // etcd answers after a while: a slow backend opens the window between check and commit.
  class SlowBackend extends MemoryBackend {
    override async txn(...args: Parameters<MemoryBackend['txn']>) { await new Promise((r) => setTimeout(r, 3)); return super.txn(...args); }
  }
  const outcomes = new Set<string>();
  for (let i = 0; i < 12; i++) {
    const store = await Store.open(new SlowBackend(), silentLogger);
    const control = new ControlApi({ store, localNodeId: NODE_ID, now: () => Date.now() }, () => ({ certPem: '', keyPem: '' }), new SecretBox(SecretBox.generateKey()));
    const { ID: sid } = await control.secrets.create({ Name: 'db', Data: b64('v') });
    const settle = <T>(p: Promise<T>) => p.then(() => 'ok', (e: Error) => e.message);
    // Either may start first, the other a few ms later, inside the first one's window.
    const later = <T>(fn: () => Promise<T>) => new Promise((r) => setTimeout(r, (i % 3) * 2)).then(fn);
    const create = () => settle(control.services.create(svc('web', { Secrets: [secretRef(sid, 'db')] })));
    const remove = () => settle(control.secrets.remove(sid));
    const [created, removed] = i % 2 ? await Promise.all([create(), later(remove)]) : await Promise.all([later(create), remove()]);
    if (created === 'ok') {
      assert.match(removed, /is in use by the following service: web/);
      assert.ok(store.get('secrets', sid), 'the secret stays while a service uses it');
    } else {
      assert.equal(removed, 'ok');
      assert.equal(created, 'rpc error: code = InvalidArgument desc = secret not found: db');
      assert.equal(store.count('services'), 0);
    }
    outcomes.add(created === 'ok' ? 'service' : 'removal');
    await store.close();
  }
  assert.equal(outcomes.size, 2, 'both orders happened');
});

test('secret values open only with the swarm key and only for their own secret ID', () => {
  const box = new SecretBox(SecretBox.generateKey());
  const sealed = box.seal(Buffer.from('s3cret'), 'id1');
  assert.equal(box.open(sealed, 'id1').toString(), 's3cret');
  assert.throws(() => box.open(sealed, 'id2'), /authentication failed/);
  assert.throws(() => new SecretBox(SecretBox.generateKey()).open(sealed, 'id1'), /authentication failed/);
  assert.notEqual(box.seal(Buffer.from('s3cret'), 'id1'), sealed, 'a fresh nonce each time');
});

test('the agent\'s control plane hands out only the secrets and configs of a task assigned to its node', async () => {
  const { call, store, control } = await controlFixture();
  const s1 = (await call('POST', '/secrets/create', { Name: 's1', Data: b64('one') })).json.ID;
  await call('POST', '/secrets/create', { Name: 's2', Data: b64('two') });
  const c1 = (await call('POST', '/configs/create', { Name: 'c1', Data: b64('cfg'), Templating: { Name: 'golang' } })).json.ID;
  const web = (await call('POST', '/services/create', svc('web', { Secrets: [secretRef(s1, 's1'), secretRef(s1, 's1', 'again')], Configs: [configRef(c1, 'c1')] }))).json.ID;
  const spec = structuredClone(store.get('services', web)!.Spec.TaskTemplate!);
  const task = (id: string, nodeId?: string) => ({
    ID: id, Version: { Index: 0 }, CreatedAt: 't', UpdatedAt: 't', Labels: {}, Spec: spec, ServiceID: web, Slot: 1,
    ...(nodeId ? { NodeID: nodeId } : {}),
    Status: { Timestamp: 't', State: 'assigned' as const, Message: '' }, DesiredState: 'running' as const,
  });
  await store.txn().create('tasks', task('mine00000000000000000000001', NODE_ID))
    .create('tasks', task('othr00000000000000000000001', 'node0000000000000000000002'))
    .create('tasks', task('none00000000000000000000001')).commit();
  const dispatch = await localDispatch(store, { revealSecret: (id) => control.secrets.reveal(id), revealConfig: (id) => control.configs.reveal(id) });
  const bare = await localDispatch(store);
  const cp = await dispatch.plane(NODE_ID);
  let delivered = false;
  cp.watchAssignments(NODE_ID, () => { delivered = true; });
  const noValues = await bare.plane(NODE_ID);
  try {
    await waitFor('the session\'s first assignments', () => delivered);
    const secrets = await cp.getSecrets('mine00000000000000000000001');
    assert.deepEqual(secrets.map((s) => [s.ID, s.Name, s.Data.toString()]), [[s1, 's1', 'one']], 'each referenced secret once; s2 not at all');
    const configs = await cp.getConfigs('mine00000000000000000000001');
    assert.deepEqual(configs.map((c) => [c.Name, c.Data.toString(), c.Templating?.Name]), [['c1', 'cfg', 'golang']]);
    assert.deepEqual(await cp.getSecrets('othr00000000000000000000001'), [], 'another node\'s task');
    assert.deepEqual(await cp.getSecrets('none00000000000000000000001'), [], 'an unassigned task');
    assert.deepEqual(await cp.getSecrets('nosuch'), []);
    let bareDelivered = false;
    noValues.watchAssignments(NODE_ID, () => { bareDelivered = true; });
    await waitFor('the second session\'s first assignments', () => bareDelivered);
    assert.deepEqual(await noValues.getSecrets('mine00000000000000000000001'), [], 'no payload source, no values');
  } finally { await dispatch.stop(); await bare.stop(); }
});
