import { test } from 'node:test';
import assert from 'node:assert/strict';
import { taskStateRank } from '../../../src/model/types';
import { silentLogger } from '../../../src/common/log';
import { startAgent } from '../../../src/agent/agent';
import { ExecutorError } from '../../../src/agent/executor/executor';
import { FakeControlPlane, FakeExecutor, makeTask, NODE_ID, waitFor } from './fakes';

const RETRY = { minMs: 5, maxMs: 20 };

async function harness(setup?: (cp: FakeControlPlane, ex: FakeExecutor) => void, sweepMs?: number) {
  const cp = new FakeControlPlane();
  const ex = new FakeExecutor();
  setup?.(cp, ex);
  const agent = startAgent({ nodeId: NODE_ID, controlPlane: cp, executor: ex, log: silentLogger, retry: RETRY, ...(sweepMs !== undefined ? { sweepMs } : {}) });
  await agent.ready;
  const reach = (id: string, state: string, ms = 3000) => waitFor(`${id} ${state} (now ${cp.state(id)})`, () => cp.state(id) === state && cp.status(id), ms);
  return { cp, ex, agent, reach };
}

function assertForwardOnly(states: string[]): void {
  for (let i = 1; i < states.length; i++) {
    assert.ok(taskStateRank(states[i] as never) >= taskStateRank(states[i - 1] as never), `states go forward: ${states.join(' → ')}`);
  }
}

test('an assigned task goes to running with Swarm messages; the container is named, labelled and started once', async () => {
  const { cp, ex, agent, reach } = await harness((cp) => cp.put(makeTask('t1')));
  try {
    const st = await reach('t1', 'running');
    assert.equal(st.Message, 'started');
    const [c] = ex.byTask('t1');
    assert.ok(c);
    assert.equal(c.name, 'web.1.t1');
    assert.equal(c.config!.body.Labels['com.docker.swarm.service.name'], 'web');
    assert.deepEqual(st.ContainerStatus, { ContainerID: c.id, PID: c.pid, ExitCode: 0 });
    assert.deepEqual(st.PortStatus, {});
    assert.match(st.Timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
    assert.deepEqual(ex.calls, [`create web.1.t1`, `start ${c.id}`]);
    const messages = Object.fromEntries((cp.history.get('t1') ?? []).map((s) => [s.State, s.Message]));
    const expected: Record<string, string> = { accepted: 'accepted', preparing: 'preparing', ready: 'prepared', starting: 'starting', running: 'started' };
    for (const [state, msg] of Object.entries(messages)) assert.equal(msg, expected[state], `message of ${state}`);
    assertForwardOnly(cp.states('t1'));
  } finally { await agent.stop(); }
});

test('container exit: 0 completes ("finished"), non-zero fails with Docker\'s error and exit code', async () => {
  const { ex, agent, reach } = await harness((cp) => { cp.put(makeTask('ok')); cp.put(makeTask('bad', { Slot: 2 })); });
  try {
    await reach('ok', 'running');
    await reach('bad', 'running');
    ex.exit(ex.byTask('ok')[0]!.id, 0);
    ex.exit(ex.byTask('bad')[0]!.id, 3);
    const ok = await reach('ok', 'complete');
    assert.equal(ok.Message, 'finished');
    assert.equal(ok.Err, undefined);
    assert.equal(ok.ContainerStatus?.ExitCode, 0);
    const bad = await reach('bad', 'failed');
    assert.equal(bad.Err, 'task: non-zero exit (3)');
    assert.equal(bad.Message, 'started');
    assert.deepEqual(bad.ContainerStatus, { ContainerID: ex.byTask('bad')[0]!.id, PID: 0, ExitCode: 3 });
  } finally { await agent.stop(); }
});

test("a missing image that cannot be pulled rejects the task with Docker's No such image", async () => {
  const { ex, agent, reach } = await harness((cp) => cp.put(makeTask('t1', { Spec: { ContainerSpec: { Image: 'nowhere/img:1' } } })));
  try {
    const st = await reach('t1', 'rejected');
    assert.equal(st.Err, 'No such image: nowhere/img:1');
    assert.equal(st.Message, 'preparing');
    assert.equal(ex.containers.size, 0);
    assert.deepEqual(ex.pulls, [{ image: 'nowhere/img:1' }], 'pulled once, without credentials');
  } finally { await agent.stop(); }
});

test('the pull carries the registry credentials the task was handed', async () => {
  const { ex, agent, reach } = await harness((cp) => cp.put(makeTask('t1', { Spec: { ContainerSpec: { Image: 'reg:5000/img:1', PullOptions: { RegistryAuth: 'eyJ1c2VybmFtZSI6InUifQ' } } } })));
  try {
    await reach('t1', 'rejected');
    assert.deepEqual(ex.pulls, [{ image: 'reg:5000/img:1', registryAuth: 'eyJ1c2VybmFtZSI6InUifQ' }]);
  } finally { await agent.stop(); }
});

test('a task without an image, or with a bad template, is rejected', async () => {
  const { agent, reach } = await harness((cp) => {
    cp.put(makeTask('noimg', { Spec: { ContainerSpec: {} } }));
    cp.put(makeTask('tpl', { Slot: 2, Spec: { ContainerSpec: { Image: 'img:1', Hostname: '{{.Nope}}' } } }));
  });
  try {
    assert.equal((await reach('noimg', 'rejected')).Err, 'dockerexec: image required');
    assert.match((await reach('tpl', 'rejected')).Err!, /template: expansion/);
  } finally { await agent.stop(); }
});

test('an engine refusal at start fails the task with "starting container failed"', async () => {
  const { agent, reach } = await harness((cp, ex) => {
    ex.failNext('start', new ExecutorError('OCI runtime create failed: exec: "nope": executable file not found in $PATH', false, 400));
    cp.put(makeTask('t1'));
  });
  try {
    const st = await reach('t1', 'failed');
    assert.equal(st.Err, 'starting container failed: OCI runtime create failed: exec: "nope": executable file not found in $PATH');
  } finally { await agent.stop(); }
});

test('desired ready holds the task at ready (container made, not started); running releases it', async () => {
  const { cp, ex, agent, reach } = await harness((cp) => cp.put(makeTask('t1', { DesiredState: 'ready' })));
  try {
    await reach('t1', 'ready');
    assert.equal(ex.byTask('t1').length, 1);
    assert.equal(ex.byTask('t1')[0]!.running, false);
    cp.setDesired('t1', 'running');
    await reach('t1', 'running');
    assert.equal(ex.byTask('t1')[0]!.running, true);
  } finally { await agent.stop(); }
});

test('shutdown desired: the container is stopped with the grace period and the task is shut down', async () => {
  const { cp, ex, agent, reach } = await harness((cp) => cp.put(makeTask('t1', { Spec: { ContainerSpec: { Image: 'img:1', StopGracePeriod: 7e9 } } })));
  try {
    await reach('t1', 'running');
    const id = ex.byTask('t1')[0]!.id;
    cp.setDesired('t1', 'shutdown');
    const st = await reach('t1', 'shutdown');
    assert.equal(st.Message, 'shutdown');
    assert.equal(st.Err, undefined);
    assert.deepEqual(st.ContainerStatus, { ContainerID: id, PID: 0, ExitCode: 143 });
    assert.ok(ex.calls.includes(`stop ${id} 7`));
    assert.ok(ex.containers.has(id), 'the container stays until the task is deleted');
    // The die event of our own stop does not turn the shutdown into a failure.
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(cp.state('t1'), 'shutdown');
  } finally { await agent.stop(); }
});

test('desired remove (scale down) also shuts down; deleting the task removes its container', async () => {
  const { cp, ex, agent, reach } = await harness((cp) => cp.put(makeTask('t1')));
  try {
    await reach('t1', 'running');
    const id = ex.byTask('t1')[0]!.id;
    cp.setDesired('t1', 'remove');
    await reach('t1', 'shutdown');
    cp.remove('t1');
    await waitFor('container removed', () => !ex.containers.has(id));
    assert.ok(ex.calls.includes(`remove ${id}`));
  } finally { await agent.stop(); }
});

test('docker rm -f of a running task container fails the task with exit 137', async () => {
  const { ex, agent, reach } = await harness((cp) => cp.put(makeTask('t1')));
  try {
    await reach('t1', 'running');
    ex.forceRemove(ex.byTask('t1')[0]!.id);
    const st = await reach('t1', 'failed');
    assert.equal(st.Err, 'task: non-zero exit (137)');
    assert.equal(st.ContainerStatus?.ExitCode, 137);
  } finally { await agent.stop(); }
});

test('a container destroyed without an exit we saw fails with "container destroyed"', async () => {
  const { ex, agent, reach } = await harness((cp) => cp.put(makeTask('t1')));
  try {
    await reach('t1', 'running');
    const c = ex.byTask('t1')[0]!;
    ex.containers.delete(c.id);
    ex.emit({ type: 'destroy', containerId: c.id, taskId: 't1' });
    assert.equal((await reach('t1', 'failed')).Err, 'dockerexec: container destroyed');
  } finally { await agent.stop(); }
});

test('unhealthy: the container is stopped and the task fails like Docker says', async () => {
  const { cp, ex, agent, reach } = await harness((cp) => cp.put(makeTask('t1')));
  try {
    await reach('t1', 'running');
    const c = ex.byTask('t1')[0]!;
    ex.emit({ type: 'health_status', containerId: c.id, taskId: 't1', status: 'healthy' });
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(cp.state('t1'), 'running', 'healthy changes nothing');
    ex.emit({ type: 'health_status', containerId: c.id, taskId: 't1', status: 'unhealthy' });
    const st = await reach('t1', 'failed');
    assert.equal(st.Err, 'task: non-zero exit (143): dockerexec: unhealthy container');
    assert.ok(ex.calls.includes(`stop ${c.id} 1`));
  } finally { await agent.stop(); }
});

test('an exit missed while the event stream was down is found on resync', async () => {
  const { cp, ex, agent, reach } = await harness((cp) => cp.put(makeTask('t1')));
  try {
    await reach('t1', 'running');
    ex.exit(ex.byTask('t1')[0]!.id, 2, true);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(cp.state('t1'), 'running', 'no polling: nothing noticed yet');
    ex.emit({ type: 'resync' });
    assert.equal((await reach('t1', 'failed')).Err, 'task: non-zero exit (2)');
  } finally { await agent.stop(); }
});

test('a container that dies right after start is reported finished, not left running', async () => {
  const { agent, reach } = await harness((cp, ex) => {
    ex.startHook = (c) => { setImmediate(() => ex.exit(c.id, 0)); };
    cp.put(makeTask('t1'));
  });
  try {
    await reach('t1', 'complete');
  } finally { await agent.stop(); }
});

test('starting a task it just created, the agent looks at the container once (the engine is the bottleneck)', async () => {
  const { ex, agent, reach } = await harness((cp) => cp.put(makeTask('t1')));
  try {
    await reach('t1', 'running');
    await new Promise((r) => setTimeout(r, 50)); // nothing more should follow
    assert.equal(ex.inspects, 1, 'one inspect (for the PID), none before the start, none after');
  } finally { await agent.stop(); }
});

test('a container removed between create and start is made again and started', async () => {
  const { ex, agent, reach } = await harness((cp, ex) => {
    ex.failNext('start', new ExecutorError('No such container: c1', false, 404));
    cp.put(makeTask('t1'));
  });
  try {
    const st = await reach('t1', 'running');
    assert.deepEqual(ex.calls, ['create web.1.t1', 'create web.1.t1', `start ${st.ContainerStatus!.ContainerID}`]);
  } finally { await agent.stop(); }
});

test('jobs (desired complete) run to completion', async () => {
  const { ex, agent, reach } = await harness((cp) => cp.put(makeTask('j1', { DesiredState: 'complete' })));
  try {
    await reach('j1', 'running');
    ex.exit(ex.byTask('j1')[0]!.id, 0);
    await reach('j1', 'complete');
  } finally { await agent.stop(); }
});

test('adoption: running containers are kept as they are, leftovers removed, lost ones failed', async () => {
  const cp = new FakeControlPlane();
  const ex = new FakeExecutor();
  const running = makeTask('kept', { Status: { Timestamp: 't', State: 'running', Message: 'started', ContainerStatus: { ContainerID: 'old1', PID: 42, ExitCode: 0 } } });
  const lost = makeTask('lost', { Slot: 2, Status: { Timestamp: 't', State: 'running', Message: 'started', ContainerStatus: { ContainerID: 'gone', PID: 43, ExitCode: 0 } } });
  const ready = makeTask('ready', { Slot: 3, Status: { Timestamp: 't', State: 'ready', Message: 'prepared' } });
  const exited = makeTask('exited', { Slot: 4, Status: { Timestamp: 't', State: 'running', Message: 'started', ContainerStatus: { ContainerID: 'old3', PID: 44, ExitCode: 0 } } });
  for (const t of [running, lost, ready, exited]) cp.put(t);
  ex.addContainer({ id: 'old1', taskId: 'kept', name: 'web.1.kept', running: true, pid: 42, exitCode: 0 });
  ex.addContainer({ id: 'old2', taskId: 'ready', name: 'web.3.ready', running: false, pid: 0, exitCode: 0 });
  ex.addContainer({ id: 'old3', taskId: 'exited', name: 'web.4.exited', running: false, pid: 0, exitCode: 1 });
  ex.addContainer({ id: 'orphan', taskId: 'deleted-task', name: 'web.9.deleted-task', running: true, pid: 50, exitCode: 0 });
  const agent = startAgent({ nodeId: NODE_ID, controlPlane: cp, executor: ex, log: silentLogger, retry: RETRY });
  try {
    await agent.ready;
    await waitFor('lost failed', () => cp.state('lost') === 'failed');
    assert.equal(cp.status('lost')!.Err, 'dockerexec: container destroyed');
    await waitFor('ready task started in its existing container', () => cp.state('ready') === 'running');
    assert.equal(cp.status('ready')!.ContainerStatus?.ContainerID, 'old2');
    await waitFor('exited failed', () => cp.state('exited') === 'failed');
    assert.equal(cp.status('exited')!.Err, 'task: non-zero exit (1)');
    await waitFor('orphan removed', () => !ex.containers.has('orphan'));
    assert.equal(cp.state('kept'), 'running');
    assert.equal(cp.states('kept').length, 0, 'nothing reported for an adopted running task');
    assert.ok(!ex.calls.some((c) => c.startsWith('create')), `no container created: ${ex.calls.join(', ')}`);
    assert.ok(!ex.calls.includes('start old1'), 'the running container is not restarted');
    assert.ok(!ex.calls.some((c) => c.startsWith('stop')), 'nothing stopped');
  } finally { await agent.stop(); }
});

test('the sweep removes what a failed removal left, and a container made after its task was gone', async () => {
  const { cp, ex, agent, reach } = await harness((cp) => { cp.put(makeTask('t1')); cp.put(makeTask('t2', { Slot: 2 })); }, 20);
  try {
    await reach('t1', 'running');
    await reach('t2', 'running');
    const id = ex.byTask('t1')[0]!.id;
    cp.setDesired('t1', 'remove');
    await reach('t1', 'shutdown');
    // The engine fails the removal of the deleted task's container.
    ex.failNext('remove', new ExecutorError('context deadline exceeded', true));
    cp.remove('t1');
    await waitFor('the failed removal', () => ex.failures.get('remove')?.length === 0);
    // A create that finished after its task was deleted (no runner, no assignment).
    const late = ex.addContainer({ taskId: 'deleted-task', name: 'web.9.deleted-task', running: false, pid: 0, exitCode: 0 });
    await waitFor('both leftovers removed', () => !ex.containers.has(id) && !ex.containers.has(late));
    assert.equal(ex.byTask('t2').length, 1, 'the assigned task keeps its container');
    assert.equal(cp.state('t2'), 'running');
  } finally { await agent.stop(); }
});

test('the sweep leaves alone the container of a task whose runner is still stopping it (its grace period)', async () => {
  let release!: () => void;
  const { cp, ex, agent, reach } = await harness((cp) => cp.put(makeTask('t1')), 20);
  try {
    await reach('t1', 'running');
    const id = ex.byTask('t1')[0]!.id;
    ex.stopHook = () => new Promise<void>((r) => { release = r; });
    cp.setDesired('t1', 'shutdown');
    await waitFor('the stop under way', () => ex.calls.some((c) => c.startsWith(`stop ${id}`)));
    cp.remove('t1');
    const lists = ex.lists;
    await waitFor('three sweeps meanwhile', () => ex.lists >= lists + 3);
    assert.ok(ex.containers.has(id) && !ex.calls.includes(`remove ${id}`), 'not removed while its stop waits');
    release();
    await waitFor('removed once stopped', () => !ex.containers.has(id));
  } finally { release?.(); await agent.stop(); }
});

test('a slow status write for one task does not hold up another', async () => {
  let release!: () => void;
  const { cp, agent, reach } = await harness((cp) => {
    cp.blockUpdates.set('slow', new Promise<void>((r) => { release = r; }));
    cp.put(makeTask('slow'));
    cp.put(makeTask('fast', { Slot: 2 }));
  });
  try {
    await reach('fast', 'running');
    assert.equal(cp.state('slow'), 'assigned');
    release();
    await reach('slow', 'running');
  } finally { release(); await agent.stop(); }
});

test('failed status writes are retried until they land', async () => {
  const { agent, reach } = await harness((cp) => {
    cp.failUpdates.set('t1', 4);
    cp.put(makeTask('t1'));
  });
  try {
    await reach('t1', 'running');
  } finally { await agent.stop(); }
});

test('an unreachable engine is retried, not turned into a rejection', async () => {
  const { cp, ex, agent, reach } = await harness((cp, ex) => {
    ex.failNext('create', new ExecutorError('connect ENOENT /var/run/docker.sock', true));
    ex.failNext('create', new ExecutorError('connect ENOENT /var/run/docker.sock', true));
    cp.put(makeTask('t1'));
  });
  try {
    await reach('t1', 'running');
    assert.equal(ex.byTask('t1').length, 1);
    assert.ok(!cp.states('t1').includes('rejected'));
  } finally { await agent.stop(); }
});

test('stopping the agent leaves containers running', async () => {
  const { ex, agent, reach } = await harness((cp) => cp.put(makeTask('t1')));
  await reach('t1', 'running');
  await agent.stop();
  assert.equal(ex.byTask('t1')[0]!.running, true);
  assert.ok(!ex.calls.some((c) => c.startsWith('stop') || c.startsWith('remove')));
});
