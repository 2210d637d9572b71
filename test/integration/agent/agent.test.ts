import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { EngineClient } from '../../../src/engine/client';
import { inject } from 'light-my-request';
import type { Service, Task, TaskSpec } from '../../../src/model/types';
import { newId } from '../../../src/common/ids';
import { silentLogger } from '../../../src/common/log';
import { nowIso } from '../../../src/common/time';
import { MemoryBackend } from '../../../src/store/memory-backend';
import { Store } from '../../../src/store/store';
import { Router } from '../../../src/api/router';
import { createApiHandler } from '../../../src/api/server';
import { registerLogRoutes } from '../../../src/api/routes/logs';
import { LocalLogSource } from '../../../src/agent/log-source';
import { LogCluster } from '../../helpers/log-broker';
import { startAgent, type RunningAgent } from '../../../src/agent/agent';
import { localDispatch } from '../../helpers/dispatcher-fixture';
import { DockerExecutor } from '../../../src/agent/executor/docker-executor';
import { ensureBusyboxImage } from '../../helpers/images';
import { waitFor } from '../../unit/agent/fakes';

// The agent against the host's real dockerd, with a dispatcher on a store in
// memory as its control plane (what a one-node swarm gives it). Every
// container made here carries this run's node ID, and is removed at the end.

const SOCKET = '/var/run/docker.sock';
const IMG = 'shoal-test/busybox:1';
const NODE = newId();
const RUN = NODE.slice(0, 6);
const engine = new EngineClient(`unix://${SOCKET}`);
// What the test itself asks the engine (through the same client as the executor).
type Json = any;
const docker = {
  info: (): Promise<Json> => engine.getJson('/info'),
  listContainers: (o: { all: boolean; filters: Record<string, string[]> }): Promise<Json[]> => engine.getJson('/containers/json', { query: { all: '1', filters: JSON.stringify(o.filters) } }),
  createContainer: ({ name, ...body }: { name: string } & Record<string, unknown>): Promise<Json> => engine.postJson('/containers/create', body, { query: { name } }),
  getContainer: (id: string) => ({
    inspect: (): Promise<Json> => engine.getJson(`/containers/${id}/json`),
    remove: (_o: { force: boolean }): Promise<Json> => engine.call('DELETE', `/containers/${id}`, { query: { force: '1' } }),
  }),
};
const RETRY = { minMs: 50, maxMs: 500 };

let store: Store;
let dispatch: Awaited<ReturnType<typeof localDispatch>>;
let executor: DockerExecutor;
let agent: RunningAgent;
let slot = 0;
const clusters: LogCluster[] = [];

const startNewAgent = async (): Promise<RunningAgent> =>
  startAgent({ nodeId: NODE, controlPlane: await dispatch.plane(NODE), executor, log: silentLogger, retry: RETRY });

async function addService(name: string, spec: TaskSpec): Promise<Service> {
  const now = nowIso();
  const svc: Service = {
    ID: newId(), Version: { Index: 0 }, CreatedAt: now, UpdatedAt: now,
    Spec: { Name: `${name}-${RUN}`, Labels: { suite: 'agent' }, TaskTemplate: spec, Mode: { Replicated: { Replicas: 1 } } },
    Endpoint: { Spec: {} },
  };
  await store.txn().create('services', svc).commit();
  return svc;
}

// A task as the scheduler leaves it: assigned to this node.
async function addTask(svc: Service, over: Partial<Task> = {}): Promise<Task> {
  const now = nowIso();
  const t: Task = {
    ID: newId(), Version: { Index: 0 }, CreatedAt: now, UpdatedAt: now, Labels: {},
    Spec: structuredClone(svc.Spec.TaskTemplate!), ServiceID: svc.ID, Slot: ++slot, NodeID: NODE,
    Status: { Timestamp: now, State: 'assigned', Message: 'scheduler assigned task to node' },
    DesiredState: 'running',
    ...over,
  };
  await store.txn().create('tasks', t).commit();
  return t;
}

const taskOf = (id: string): Task | undefined => store.get('tasks', id);
const reach = (id: string, state: string, ms = 30_000): Promise<Task> =>
  waitFor(`task ${id} ${state} (now ${taskOf(id)?.Status.State} ${taskOf(id)?.Status.Err ?? ''})`, () => taskOf(id)?.Status.State === state && taskOf(id), ms);

const sleeper = (grace = 1e9): TaskSpec => ({
  // Exits 0 on SIGTERM, within a second (the trap runs between sleeps).
  ContainerSpec: { Image: IMG, Args: ['sh', '-c', "trap 'exit 0' TERM; while true; do sleep 1; done"], StopGracePeriod: grace, Env: ['SLOT={{.Task.Slot}}'] },
});

before(async () => {
  await ensureBusyboxImage(SOCKET, IMG);
  store = await Store.open(new MemoryBackend(), silentLogger);
  executor = new DockerExecutor(engine, silentLogger);
  dispatch = await localDispatch(store);
  agent = await startNewAgent();
  await agent.ready;
});

after(async () => {
  await Promise.all(clusters.map((c) => c.stop()));
  await agent?.stop();
  await dispatch?.stop();
  await executor?.removeNodeContainers(NODE);
  const left = await docker.listContainers({ all: true, filters: { label: [`com.docker.swarm.node.id=${NODE}`] } });
  assert.equal(left.length, 0, 'no containers left behind');
  await store?.close();
});

test('describeNode reports the engine as Swarm does', { timeout: 30_000 }, async () => {
  const d = await executor.describeNode();
  const info = await docker.info();
  assert.equal(d.Hostname, info.Name);
  assert.deepEqual(d.Platform, { Architecture: info.Architecture, OS: info.OSType });
  assert.equal(d.Resources.NanoCPUs, info.NCPU * 1e9);
  assert.equal(d.Resources.MemoryBytes, info.MemTotal);
  assert.equal(d.Engine.EngineVersion, info.ServerVersion);
  assert.ok(d.Engine.Plugins.some((p) => p.Type === 'Network' && p.Name === 'overlay'));
  assert.ok(d.Engine.Plugins.some((p) => p.Type === 'Log' && p.Name === 'json-file'));
  const keys = d.Engine.Plugins.map((p) => `${p.Type}/${p.Name}`);
  assert.deepEqual(keys, [...keys].sort(), 'sorted by type, then name');
});

test('the executor: create is idempotent per task, stop and remove tolerate what is already done', { timeout: 60_000 }, async () => {
  const name = `exec-${RUN}.1.${newId()}`;
  const config = { name, body: { Image: IMG, Cmd: ['sleep', '300'], Labels: { 'com.docker.swarm.task.id': name, 'com.docker.swarm.node.id': NODE }, HostConfig: { RestartPolicy: { Name: 'no' as const } } } };
  const id = await executor.create(config);
  assert.equal(await executor.create(config), id, 'a name conflict for the same task returns the existing container');
  await executor.start(id);
  await executor.start(id);
  const info = await executor.inspect(id);
  assert.equal(info?.running, true);
  assert.ok(info!.pid > 0);
  assert.deepEqual((await executor.listTaskContainers(NODE)).filter((c) => c.id === id).map((c) => c.taskId), [name]);
  await executor.stop(id, 0);
  await executor.stop(id, 0);
  assert.equal((await executor.inspect(id))?.running, false);
  await executor.remove(id);
  await executor.remove(id);
  assert.equal(await executor.inspect(id), undefined);
});

test('a task runs: container named and labelled like Docker, running reported', { timeout: 60_000 }, async () => {
  const svc = await addService('run', sleeper());
  const t = await addTask(svc);
  const running = await reach(t.ID, 'running');
  assert.equal(running.Status.Message, 'started');
  const cid = running.Status.ContainerStatus!.ContainerID!;
  const c = await docker.getContainer(cid).inspect();
  assert.equal(c.Name, `/${svc.Spec.Name}.${t.Slot}.${t.ID}`);
  assert.equal(c.State.Running, true);
  assert.equal(running.Status.ContainerStatus!.PID, c.State.Pid);
  assert.deepEqual(
    Object.fromEntries(Object.entries(c.Config.Labels).filter(([k]) => k.startsWith('com.docker.swarm'))),
    {
      'com.docker.swarm.node.id': NODE,
      'com.docker.swarm.service.id': svc.ID,
      'com.docker.swarm.service.name': svc.Spec.Name,
      'com.docker.swarm.task': '',
      'com.docker.swarm.task.id': t.ID,
      'com.docker.swarm.task.name': `${svc.Spec.Name}.${t.Slot}.${t.ID}`,
    },
  );
  assert.equal(c.HostConfig.RestartPolicy?.Name, 'no');
  assert.ok(c.Config.Env.includes(`SLOT=${t.Slot}`), 'templates expanded');
});

test('docker rm -f of the container fails the task with exit 137', { timeout: 60_000 }, async () => {
  const svc = await addService('rmf', sleeper());
  const t = await addTask(svc);
  const running = await reach(t.ID, 'running');
  await docker.getContainer(running.Status.ContainerStatus!.ContainerID!).remove({ force: true });
  const failed = await reach(t.ID, 'failed');
  assert.equal(failed.Status.Err, 'task: non-zero exit (137)');
  assert.equal(failed.Status.ContainerStatus?.ExitCode, 137);
});

test('a shutdown desire stops the container within its grace period', { timeout: 60_000 }, async () => {
  const svc = await addService('stop', sleeper());
  const t = await addTask(svc);
  const running = await reach(t.ID, 'running');
  const cid = running.Status.ContainerStatus!.ContainerID!;
  await store.mutate('tasks', t.ID, (x) => { x.DesiredState = 'shutdown'; return x; });
  const down = await reach(t.ID, 'shutdown');
  assert.equal(down.Status.Message, 'shutdown');
  assert.equal(down.Status.ContainerStatus?.ExitCode, 0, 'stopped by SIGTERM, not killed');
  assert.equal((await docker.getContainer(cid).inspect()).State.Running, false);
  // Deleting the task (history trimmed) removes its container.
  await store.txn().delete('tasks', taskOf(t.ID)!).commit();
  await waitFor('container removed', async () => (await executor.inspect(cid)) === undefined, 30_000);
});

test('a container turning unhealthy is stopped and its task fails', { timeout: 60_000 }, async () => {
  const spec = sleeper();
  spec.ContainerSpec!.Healthcheck = { Test: ['CMD', 'false'], Interval: 200_000_000, Timeout: 1_000_000_000, Retries: 1 };
  const svc = await addService('unhealthy', spec);
  const t = await addTask(svc);
  const cid = (await reach(t.ID, 'running')).Status.ContainerStatus!.ContainerID!;
  const failed = await reach(t.ID, 'failed');
  assert.match(failed.Status.Err!, /dockerexec: unhealthy container$/);
  assert.equal((await docker.getContainer(cid).inspect()).State.Running, false);
});

test("an image that cannot be pulled rejects the task with Docker's No such image", { timeout: 60_000 }, async () => {
  const svc = await addService('nopull', { ContainerSpec: { Image: 'localhost:1/shoal-test/nope:1' } });
  const t = await addTask(svc);
  const rejected = await reach(t.ID, 'rejected');
  assert.equal(rejected.Status.Err, 'No such image: localhost:1/shoal-test/nope:1');
  assert.equal(rejected.Status.Message, 'preparing');
});

test('a task that exits: 0 completes, non-zero fails with its exit code', { timeout: 60_000 }, async () => {
  const svc = await addService('exit', { ContainerSpec: { Image: IMG, Args: ['sh', '-c', 'exit 0'] } });
  const ok = await addTask(svc);
  const bad = await addTask(svc, { Spec: { ContainerSpec: { Image: IMG, Args: ['sh', '-c', 'exit 3'] } } });
  assert.equal((await reach(ok.ID, 'complete')).Status.Message, 'finished');
  const failed = await reach(bad.ID, 'failed');
  assert.equal(failed.Status.Err, 'task: non-zero exit (3)');
  assert.equal(failed.Status.ContainerStatus?.ExitCode, 3);
});

test('adoption after an agent restart: running containers are not restarted, leftovers go, lost ones fail', { timeout: 90_000 }, async () => {
  const svc = await addService('adopt', sleeper());
  const kept = await addTask(svc);
  const lost = await addTask(svc);
  const keptId = (await reach(kept.ID, 'running')).Status.ContainerStatus!.ContainerID!;
  const lostId = (await reach(lost.ID, 'running')).Status.ContainerStatus!.ContainerID!;
  const startedAt = (await docker.getContainer(keptId).inspect()).State.StartedAt;

  await agent.stop();
  // While no agent runs: one task's container disappears, and a container of
  // a task the store does not know appears.
  await docker.getContainer(lostId).remove({ force: true });
  const orphan = await docker.createContainer({
    Image: IMG, Cmd: ['sleep', '300'], name: `adopt-orphan-${RUN}`,
    Labels: { 'com.docker.swarm.task.id': 'nosuchtask', 'com.docker.swarm.node.id': NODE },
  });

  agent = await startNewAgent();
  await agent.ready;
  assert.equal((await reach(lost.ID, 'failed')).Status.Err, 'dockerexec: container destroyed');
  await waitFor('orphan removed', async () => (await executor.inspect(orphan.Id)) === undefined, 30_000);
  // A new task running proves the new agent is fully at work.
  const fresh = await addTask(svc);
  await reach(fresh.ID, 'running');

  const after = await docker.getContainer(keptId).inspect();
  assert.equal(after.State.Running, true);
  assert.equal(after.State.StartedAt, startedAt, 'not restarted');
  assert.equal(taskOf(kept.ID)!.Status.State, 'running');
  assert.equal(taskOf(kept.ID)!.Status.ContainerStatus?.ContainerID, keptId);
  const forTask = await docker.listContainers({ all: true, filters: { label: [`com.docker.swarm.task.id=${kept.ID}`] } });
  assert.deepEqual(forTask.map((c) => c.Id), [keptId], 'no second container');
});

function frames(body: Buffer): Array<[number, string]> {
  const out: Array<[number, string]> = [];
  for (let i = 0; i + 8 <= body.length;) {
    const size = body.readUInt32BE(i + 4);
    out.push([body[i]!, body.subarray(i + 8, i + 8 + size).toString()]);
    i += 8 + size;
  }
  return out;
}

// Logs go through the broker, read on this node by its publisher as on a one-node swarm.
function logsHandler() {
  const router = new Router();
  const logs = new LogCluster(store);
  logs.addAgent(NODE, new LocalLogSource(engine, NODE));
  clusters.push(logs);
  registerLogRoutes(router, { store, broker: () => logs.broker });
  return createApiHandler({
    router,
    engine: { forward: (_q: IncomingMessage, s: ServerResponse) => { s.writeHead(404); s.end(); }, forwardUpgrade: () => undefined },
    engineVersion: () => '20.10.24',
    log: silentLogger,
  });
}

test('service and task logs: stdcopy frames, one per line, with details and timestamps', { timeout: 60_000 }, async () => {
  const svc = await addService('logs', { ContainerSpec: { Image: IMG, Args: ['sh', '-c', 'echo one; sleep 0.1; echo two >&2; sleep 0.1; echo three'] } });
  const t = await addTask(svc);
  await reach(t.ID, 'complete');
  const handler = logsHandler();
  const res = await inject(handler, { method: 'GET', url: `/v1.41/services/${svc.Spec.Name}/logs?stdout=1&stderr=1&details=1&timestamps=1&tail=all` });
  assert.equal(res.statusCode, 200);
  assert.equal(res.headers['content-type'], 'application/vnd.docker.raw-stream');
  const f = frames(res.rawPayload);
  assert.deepEqual(f.map(([s]) => s), [1, 2, 1]);
  const details = `com.docker.swarm.node.id=${NODE},com.docker.swarm.service.id=${svc.ID},com.docker.swarm.task.id=${t.ID}`;
  const re = (text: string) => new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{9}Z ${details} ${text}\\n$`);
  assert.match(f[0]![1], re('one'));
  assert.match(f[1]![1], re('two'));
  assert.match(f[2]![1], re('three'));

  const tail = await inject(handler, { method: 'GET', url: `/v1.41/tasks/${t.ID}/logs?stdout=1&stderr=1&tail=1` });
  assert.deepEqual(frames(tail.rawPayload), [[1, 'three\n']]);
  const onlyErr = await inject(handler, { method: 'GET', url: `/v1.41/services/${svc.ID}/logs?stderr=1` });
  assert.deepEqual(frames(onlyErr.rawPayload), [[2, 'two\n']]);
});

test('service logs follow a running task until the client leaves', { timeout: 60_000 }, async () => {
  const svc = await addService('follow', { ContainerSpec: { Image: IMG, Args: ['sh', '-c', "trap 'exit 0' TERM; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done"], StopGracePeriod: 1e9 } });
  const t = await addTask(svc);
  await reach(t.ID, 'running');
  const server = createServer(logsHandler());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as AddressInfo;
  const req = request({ host: '127.0.0.1', port, path: `/v1.41/services/${svc.Spec.Name}/logs?stdout=1&stderr=1&follow=1&tail=1` });
  try {
    let body = Buffer.alloc(0);
    const res = await new Promise<IncomingMessage>((resolve, reject) => { req.on('response', resolve); req.on('error', reject); req.end(); });
    res.on('data', (c: Buffer) => { body = Buffer.concat([body, c]); });
    const f = await waitFor('three followed lines', () => { const x = frames(body); return x.length >= 3 && x; }, 20_000);
    const numbers = f.map(([s, text]) => { assert.equal(s, 1); return Number(/^tick (\d+)\n$/.exec(text)![1]); });
    for (let i = 1; i < numbers.length; i++) assert.equal(numbers[i], numbers[i - 1]! + 1, 'consecutive lines, nothing lost');
  } finally {
    req.destroy();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }
});
