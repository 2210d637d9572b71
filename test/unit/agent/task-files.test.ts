import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../../src/common/log';
import { startAgent } from '../../../src/agent/agent';
import type { PayloadValue } from '../../../src/agent/control-plane';
import { buildContainerConfig, type EngineMount } from '../../../src/agent/executor/container-config';
import { buildTaskFiles, configTarget, secretTarget, type TaskFile, type TaskFiles } from '../../../src/agent/executor/task-files';
import type { TemplateContext } from '../../../src/agent/executor/templates';
import { FakeControlPlane, FakeExecutor, makeTask, NODE_ID, waitFor } from './fakes';

const RETRY = { minMs: 5, maxMs: 20 };
const CTX: TemplateContext = {
  Service: { ID: 'svc1', Name: 'web', Labels: {} },
  Node: { ID: NODE_ID, Hostname: 'host-a', Platform: { Architecture: 'x86_64', OS: 'linux' } },
  Task: { ID: 't1', Name: 'web.1.t1', Slot: '1' },
};
const val = (ID: string, Name: string, data: string, Templating?: { Name: string }): PayloadValue =>
  ({ ID, Name, Data: Buffer.from(data), ...(Templating ? { Templating } : {}) });
const sref = (id: string, name: string, target: string, uid = '0', gid = '0', mode = 0o444) =>
  ({ SecretID: id, SecretName: name, File: { Name: target, UID: uid, GID: gid, Mode: mode } });
const cref = (id: string, name: string, target: string) =>
  ({ ConfigID: id, ConfigName: name, File: { Name: target, UID: '0', GID: '0', Mode: 0o444 } });

test('targets: secrets under /run/secrets unless absolute; configs at /<name> unless absolute', () => {
  assert.equal(secretTarget('db_pass'), '/run/secrets/db_pass');
  assert.equal(secretTarget('/etc/pass'), '/etc/pass');
  assert.equal(configTarget('app_cfg'), '/app_cfg');
  assert.equal(configTarget('/etc/app.conf'), '/etc/app.conf');
});

test('buildTaskFiles: one file per reference with its owner and mode; templates expand; a missing value rejects', () => {
  const files = buildTaskFiles(
    {
      Secrets: [sref('s1', 'db_pass', 'db_pass'), sref('s1', 'db_pass', 'other', '1000', '1000', 0o400)],
      Configs: [cref('c1', 'app_cfg', '/etc/app.conf'), cref('c2', 'tpl', 'tpl'), { ConfigID: 'c3', ConfigName: 'cred', Runtime: {} }],
    },
    [val('s1', 'db_pass', 's3cret')],
    [val('c1', 'app_cfg', 'port=80'), val('c2', 'tpl', 'svc={{.Service.Name}} slot={{.Task.Slot}} node={{.Node.Hostname}}', { Name: 'golang' })],
    CTX,
  );
  assert.deepEqual(files.map((f) => [f.kind, f.target, f.data.toString(), f.uid, f.gid, f.mode.toString(8)]), [
    ['secret', '/run/secrets/db_pass', 's3cret', 0, 0, '444'],
    ['secret', '/run/secrets/other', 's3cret', 1000, 1000, '400'],
    ['config', '/etc/app.conf', 'port=80', 0, 0, '444'],
    ['config', '/tpl', 'svc=web slot=1 node=host-a', 0, 0, '444'],
  ]);
  assert.throws(() => buildTaskFiles({ Secrets: [sref('gone', 'gone', 'gone')] }, [], [], CTX), /^ExecutorError: secret gone not found$/);
  assert.throws(() => buildTaskFiles({ Secrets: [sref('s1', 'db_pass', 'x', 'root')] }, [val('s1', 'db_pass', 'v')], [], CTX), /secret db_pass: invalid uid "root"/);
  assert.throws(() => buildTaskFiles({ Configs: [cref('c1', 'c', 'c')] }, [], [val('c1', 'c', 'x', { Name: 'jinja' })], CTX), /unrecognized template type jinja/);
  // A failed expansion says which secret, never what it holds.
  const err = (() => { try { buildTaskFiles({ Secrets: [sref('s1', 'tpl', 'tpl')] }, [val('s1', 'tpl', 'hunter2 {{ secret "x" }}', { Name: 'golang' })], [], CTX); } catch (e) { return e as Error; } return undefined; })();
  assert.ok(err);
  assert.match(err.message, /^secret tpl: template expansion failed/);
  assert.ok(!err.message.includes('hunter2'));
});

test('container config: the files\' bind mounts follow the spec\'s own mounts', () => {
  const task = makeTask('t1', { Spec: { ContainerSpec: { Image: 'img:1', Mounts: [{ Type: 'volume', Source: 'v', Target: '/data' }] } } });
  const fileMounts: EngineMount[] = [{ Type: 'bind', Source: '/run/shoal/n/secrets/t1/s0', Target: '/run/secrets/db', ReadOnly: true }];
  const c = buildContainerConfig({ task, serviceName: 'web', nodeId: NODE_ID, fileMounts });
  assert.deepEqual(c.body.HostConfig.Mounts, [{ Type: 'volume', Source: 'v', Target: '/data' }, fileMounts[0]]);
});

class FakeFiles implements TaskFiles {
  readonly calls: string[] = [];
  readonly written = new Map<string, TaskFile[]>();
  async prepare(taskId: string, files: TaskFile[]): Promise<EngineMount[]> {
    this.calls.push(`prepare ${taskId}`);
    this.written.set(taskId, files.map((f) => ({ ...f, data: Buffer.from(f.data) })));
    return files.map((f, i) => ({ Type: 'bind', Source: `/tmpfs/${taskId}/${i}`, Target: f.target, ReadOnly: true }));
  }
  async release(taskId: string): Promise<void> { this.calls.push(`release ${taskId}`); }
  async sweep(keep: Set<string>): Promise<void> { this.calls.push(`sweep ${[...keep].sort().join(',')}`); }
}

class PayloadControlPlane extends FakeControlPlane {
  secrets: PayloadValue[] = [];
  asked: string[] = [];
  async getSecrets(taskId: string): Promise<PayloadValue[]> { this.asked.push(taskId); return this.secrets.map((v) => ({ ...v, Data: Buffer.from(v.Data) })); }
  async getConfigs(_taskId: string): Promise<PayloadValue[]> { return []; }
}

test('agent: a task with a secret gets its files prepared before create, mounted, and released when it ends', async () => {
  const cp = new PayloadControlPlane();
  cp.secrets = [val('s1', 'db', 's3cret')];
  const ex = new FakeExecutor();
  const files = new FakeFiles();
  cp.put(makeTask('t1', { Spec: { ContainerSpec: { Image: 'img:1', Secrets: [sref('s1', 'db', 'db')] } } }));
  cp.put(makeTask('plain', { Slot: 2 }));
  const agent = startAgent({ nodeId: NODE_ID, controlPlane: cp, executor: ex, log: silentLogger, retry: RETRY, taskFiles: files });
  try {
    await agent.ready;
    await waitFor('t1 running', () => cp.state('t1') === 'running');
    await waitFor('plain running', () => cp.state('plain') === 'running');
    assert.deepEqual(cp.asked, ['t1'], 'only the task that references secrets asks for them');
    assert.equal(files.written.get('t1')![0]!.data.toString(), 's3cret');
    const [c] = ex.byTask('t1');
    assert.deepEqual(c!.config!.body.HostConfig.Mounts, [{ Type: 'bind', Source: '/tmpfs/t1/0', Target: '/run/secrets/db', ReadOnly: true }]);
    assert.equal(ex.byTask('plain')[0]!.config!.body.HostConfig.Mounts, undefined);
    assert.ok(files.calls.includes('sweep plain,t1'), 'leftovers of other tasks are swept at start');
    cp.setDesired('t1', 'shutdown');
    await waitFor('t1 shutdown', () => cp.state('t1') === 'shutdown');
    await waitFor('t1 released', () => files.calls.includes('release t1'));
    const id = c!.id;
    cp.remove('t1');
    await waitFor('container removed', () => !ex.containers.has(id));
    await waitFor('released again after removal', () => files.calls.filter((x) => x === 'release t1').length >= 2);
    assert.ok(!files.calls.includes('release plain'), 'tasks without secrets have no tmpfs');
  } finally { await agent.stop(); }
});

test('agent: a missing secret, or no way to get secrets, rejects the task', async () => {
  const cp = new PayloadControlPlane();
  const ex = new FakeExecutor();
  cp.put(makeTask('t1', { Spec: { ContainerSpec: { Image: 'img:1', Secrets: [sref('gone', 'gone', 'gone')] } } }));
  const agent = startAgent({ nodeId: NODE_ID, controlPlane: cp, executor: ex, log: silentLogger, retry: RETRY, taskFiles: new FakeFiles() });
  try {
    await waitFor('t1 rejected', () => cp.state('t1') === 'rejected');
    assert.equal(cp.status('t1')!.Err, 'secret gone not found');
    assert.equal(ex.containers.size, 0);
  } finally { await agent.stop(); }
  const plain = new FakeControlPlane(); // no getSecrets
  plain.put(makeTask('t2', { Spec: { ContainerSpec: { Image: 'img:1', Secrets: [sref('s1', 's', 's')] } } }));
  const agent2 = startAgent({ nodeId: NODE_ID, controlPlane: plain, executor: new FakeExecutor(), log: silentLogger, retry: RETRY });
  try {
    await waitFor('t2 rejected', () => plain.state('t2') === 'rejected');
    assert.match(plain.status('t2')!.Err!, /secrets and configs are not available/);
  } finally { await agent2.stop(); }
});
