import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NodeDescription, Task, TaskStatus } from '../../../src/model/types';
import { silentLogger, type Logger } from '../../../src/common/log';
import { nowIso } from '../../../src/common/time';
import { MemoryBackend } from '../../../src/store/memory-backend';
import type { Compare, Op } from '../../../src/store/backend';
import { commitInBatches, Store, type StoreTxn } from '../../../src/store/store';
import { MemoryNetwork } from '../../../src/rpc/memory';
import { RpcError, type ChannelKeepalive, type Peer, type RpcChannel } from '../../../src/rpc/transport';
import { Heartbeat, Heartbeats, RelayHeartbeats, RelaySession, Session, UpdateTaskStatus, UpdateTaskStatuses, relayedBeatMissed, type SessionMessage } from '../../../src/protocol/dispatcher';
import { startDispatcher, type Dispatcher } from '../../../src/manager/dispatcher/dispatcher';
import { startOrchestrator } from '../../../src/manager/orchestrator/loop';
import { startScheduler } from '../../../src/manager/scheduler/loop';
import { startAllocator } from '../../../src/manager/allocator/loop';
import { startNetworkKeys } from '../../../src/manager/netkeys/loop';
import { NetworkKeyReader } from '../../../src/manager/netkeys/reader';
import { SecretBox } from '../../../src/manager/controlapi/secret-box';
import type { ViewKey } from '../../../src/protocol/network-view';
import { FIRST_MESSAGE_CALLS, LEADER_WEIGHT, MISSED_BEATS_TO_END, RemoteControlPlane } from '../../../src/agent/remote-control-plane';
import { startAgent, type RunningAgent } from '../../../src/agent/agent';
import type { Assignments } from '../../../src/agent/control-plane';
import { untilStore } from '../../helpers/store-wait';
import { createRootCA } from '../../../src/manager/ca/ca';
import { FakeExecutor, makeTask, waitFor } from '../agent/fakes';
import { makeNode, makeService } from '../orchestrator/fixtures';
import { capturingLogger } from '../../helpers/capturing-logger';

// The dispatcher and the agents' remote control planes over the in-memory
// transport and a memory store: registration, liveness, assignments, secrets,
// status reports, redirects and reconnection. Heartbeat period 600 ms: the
// agents beat every 300 ms and a node is down after 900 ms of silence.

const CLUSTER = 'clus0000000000000000000001';
const M1 = 'm1:2377';
const M2 = 'm2:2377';
const M3 = 'm3:2377';
const PERIOD_MS = 600;
const RETRY = { minMs: 10, maxMs: 100 };

const peer = (nodeId: string, role: 'manager' | 'worker' = 'worker'): Peer => ({ nodeId, role, clusterId: CLUSTER, address: `${nodeId}:2377` });
const describe = (nodeId: string): NodeDescription => ({
  Hostname: `host-${nodeId}`, Platform: { Architecture: 'x86_64', OS: 'linux' }, Resources: { NanoCPUs: 2e9, MemoryBytes: 4e9 },
  Engine: { EngineVersion: '20.10.24', Labels: { disk: 'ssd' }, Plugins: [{ Type: 'Network', Name: 'bridge' }] }, TLSInfo: {},
});
const status = (state: TaskStatus['State'], ts = '1999-01-01T00:00:00.000000000Z'): TaskStatus => ({ Timestamp: ts, State: state, Message: state, PortStatus: {} });

class CountingBackend extends MemoryBackend {
  txns = 0;
  // While set, transactions wait for it (a slow etcd).
  gate?: Promise<void>;
  override async txn(compares: Compare[], ops: Op[]) { this.txns++; if (this.gate) await this.gate; return super.txn(compares, ops); }
}


interface WorldOptions { addrs?: string[]; asIo?: boolean; nodes?: string[]; now?: () => number; periodMs?: number; prepareTask?: (t: Task) => Task; networkKeys?: () => ViewKey[] | undefined; log?: Logger }

async function world(o: WorldOptions = {}) {
  const backend = new CountingBackend();
  const store = await Store.open(backend, silentLogger);
  const txn = store.txn().create('cluster', {
    ID: CLUSTER, Version: { Index: 0 }, CreatedAt: 't', UpdatedAt: 't',
    Spec: { Orchestration: { TaskHistoryRetentionLimit: 5 }, Dispatcher: { HeartbeatPeriod: (o.periodMs ?? PERIOD_MS) * 1e6 } },
    TLSInfo: {}, RootRotationInProgress: false, DefaultAddrPool: [], SubnetSize: 24, DataPathPort: 4789, JoinTokens: { Worker: 'w', Manager: 'm' },
  });
  for (const id of o.nodes ?? ['w1', 'w2']) txn.create('nodes', makeNode(id, { state: 'unknown', hostname: 'old' }));
  await txn.commit();
  const net = new MemoryNetwork({ asIo: o.asIo });
  const leader = { addr: M1 };
  const revealed: string[] = [];
  const cleanups: Array<() => unknown> = [];
  // relay: the manager relays its nodes' calls to the leader when it does not lead (its own certificate: a manager's).
  const dispatcher = (addr: string, relay = false): Dispatcher => {
    const self = peer(`mgr-${addr.split(':')[0]}`, 'manager');
    const d = startDispatcher({
      store, server: net.listen(addr, () => CLUSTER), log: o.log ?? silentLogger, now: o.now, prepareTask: o.prepareTask, networkKeys: o.networkKeys,
      ...(relay ? { connect: (to: string) => net.channel(self, to) } : {}),
      managers: () => ({ leaderAddr: leader.addr, addrs: o.addrs ?? [M1, M2] }),
      payloads: {
        revealSecret: (id) => { revealed.push(id); return Buffer.from(`secret-${id}`); },
        revealConfig: (id) => Buffer.from(`config-${id}`),
      },
    });
    cleanups.push(() => d.stop());
    return d;
  };
  // `wrap`: what the agent gets for each connection it dials.
  const plane = (nodeId: string, managers = [M1], callTimeoutMs = 1000, more: { wrap?: (ch: RpcChannel, addr: string) => RpcChannel; log?: Logger } = {}): RemoteControlPlane => {
    const cp = new RemoteControlPlane({
      connect: (addr) => (more.wrap ?? ((ch) => ch))(net.channel(peer(nodeId), addr), addr), managers, firstManager: 'first', describe: async () => describe(nodeId),
      log: more.log ?? silentLogger, backoff: RETRY, callTimeoutMs,
    });
    cleanups.push(() => cp.stop());
    return cp;
  };
  const agent = (nodeId: string, cp: RemoteControlPlane, executor = new FakeExecutor()): { agent: RunningAgent; executor: FakeExecutor } => {
    const a = startAgent({ nodeId, controlPlane: cp, executor, log: silentLogger, retry: { minMs: 20, maxMs: 200 } });
    cleanups.push(() => a.stop());
    return { agent: a, executor };
  };
  const close = async (): Promise<void> => {
    for (const c of cleanups.reverse()) await c();
    await store.close();
  };
  return { store, backend, net, leader, revealed, dispatcher, plane, agent, close };
}

async function addSecretsAndTasks(store: Store, tasks: Task[]): Promise<void> {
  const txn = store.txn();
  for (const id of ['s1', 's2']) txn.create('secrets', { ID: id, Version: { Index: 0 }, CreatedAt: 't', UpdatedAt: 't', Spec: { Name: `name-${id}` }, SealedData: 'sealed' });
  txn.create('configs', { ID: 'c1', Version: { Index: 0 }, CreatedAt: 't', UpdatedAt: 't', Spec: { Name: 'cfg', Data: Buffer.from('config-c1').toString('base64') } });
  txn.create('services', makeService('svc1'));
  for (const t of tasks) txn.create('tasks', t);
  await txn.commit();
}

const withRefs = (secrets: string[], configs: string[] = []): Task['Spec'] => ({
  ContainerSpec: {
    Image: 'img:1',
    Secrets: secrets.map((id) => ({ SecretID: id, SecretName: `name-${id}`, File: { Name: id, UID: '0', GID: '0', Mode: 0o444 } })),
    Configs: configs.map((id) => ({ ConfigID: id, ConfigName: 'cfg', File: { Name: id, UID: '0', GID: '0', Mode: 0o444 } })),
  },
});

test('a node registers: it is ready with its description and address, and gets its own tasks with their secrets only', async () => {
  const w = await world({ prepareTask: (t) => ({ ...t, Labels: { ...t.Labels, prepared: 'yes' } }) });
  try {
    w.dispatcher(M1).setLeading(w.store);
    await addSecretsAndTasks(w.store, [
      makeTask('t1', { NodeID: 'w1', Spec: withRefs(['s1'], ['c1']) }),
      makeTask('t2', { NodeID: 'w2', Spec: withRefs(['s2']) }),
      makeTask('t3', { NodeID: 'w1', Status: { Timestamp: 't', State: 'pending', Message: 'pending' } }),
    ]);
    const cp = w.plane('w1');
    const seen: Assignments[] = [];
    cp.watchAssignments('w1', (a) => seen.push(a));
    await waitFor('the first assignments', () => seen.length > 0);
    assert.deepEqual([...seen[0]!.tasks.keys()], ['t1'], 'only tasks of this node, and only once assigned');
    assert.equal(seen[0]!.tasks.get('t1')!.Labels.prepared, 'yes', 'every task sent goes through prepareTask');
    assert.equal(w.store.get('tasks', 't1')!.Labels.prepared, undefined, 'the stored task is untouched');
    const node = w.store.get('nodes', 'w1')!;
    assert.equal(node.Status.State, 'ready');
    assert.equal(node.Status.Addr, 'w1:2377', 'the address the dispatcher saw the node at');
    assert.equal(node.Description.Hostname, 'host-w1');
    assert.deepEqual(node.Description.Engine.Labels, { disk: 'ssd' });
    assert.equal(w.store.get('nodes', 'w2')!.Status.State, 'unknown', 'another node is untouched');

    const secrets = await cp.getSecrets('t1');
    assert.deepEqual(secrets.map((s) => [s.ID, s.Name, s.Data.toString()]), [['s1', 'name-s1', 'secret-s1']]);
    assert.deepEqual((await cp.getConfigs('t1')).map((c) => c.Data.toString()), ['config-c1']);
    assert.deepEqual(await cp.getSecrets('t2'), [], 'nothing for a task of another node');
    assert.deepEqual(w.revealed, ['s1'], 'the other node\'s secret was never even opened');
    assert.equal(cp.serviceAnnotations('svc1')?.Name, 'svc-svc1');

    // Changes follow: t3 is assigned, t1 goes away.
    await w.store.mutate('tasks', 't3', (t) => { t.Status = { Timestamp: 't', State: 'assigned', Message: 'assigned' }; return t; });
    await waitFor('t3 delivered', () => seen.some((a) => a.changed.has('t3')));
    assert.equal(seen[seen.length - 1]!.tasks.get('t3')!.Labels.prepared, 'yes');
    await w.store.txn().delete('tasks', w.store.get('tasks', 't1')!).commit();
    await waitFor('t1 removed', () => seen.some((a) => a.removed.has('t1')));
    assert.deepEqual(await cp.getSecrets('t1'), []);
    await cp.stop();

    // On the wire: the other node's secret never appears.
    const raw: SessionMessage[] = [];
    const stream = w.net.channel(peer('w1'), M1).stream(Session, { SessionID: 'raw', Description: describe('w1') }, (m) => raw.push(m));
    await waitFor('a raw session message', () => raw.length > 0);
    stream.cancel();
    assert.ok(!JSON.stringify(raw).includes(Buffer.from('secret-s2').toString('base64')));
    assert.equal(raw[0]!.Full, true);
    assert.equal(raw[0]!.HeartbeatMs, PERIOD_MS / 2);
    assert.deepEqual(raw[0]!.Managers, { LeaderAddr: M1, Addrs: [M1, M2] });
    // The node object's version with the role: the node orders role notices by it (node/role.ts).
    const { Version, ...roleAndAvailability } = raw[0]!.Node;
    assert.deepEqual(roleAndAvailability, { Role: 'worker', Availability: 'active' });
    assert.ok(Version !== undefined && Version > 0 && Version <= w.store.get('nodes', 'w1')!.Version.Index);
  } finally { await w.close(); }
});

test('status reports: stamped with the manager\'s clock, written in one batch; regressions and other nodes\' tasks ignored', async () => {
  const MANAGER_NOW = Date.parse('2030-06-01T12:00:00Z');
  const w = await world({ now: () => MANAGER_NOW });
  try {
    w.dispatcher(M1).setLeading(w.store);
    const tasks = Array.from({ length: 60 }, (_, i) => makeTask(`t${i}`, { NodeID: 'w1', Slot: i + 1 }));
    await addSecretsAndTasks(w.store, [...tasks, makeTask('other', { NodeID: 'w2' })]);
    const cp = w.plane('w1');
    cp.watchAssignments('w1', () => undefined);
    w.backend.txns = 0;
    await Promise.all(tasks.map((t) => cp.updateTaskStatus(t.ID, status('running'))));
    assert.ok(tasks.every((t) => w.store.get('tasks', t.ID)!.Status.State === 'running'));
    assert.ok(w.backend.txns <= 2, `60 reports in ${w.backend.txns} transactions`);
    const t0 = w.store.get('tasks', 't0')!;
    assert.equal(t0.Status.Timestamp, nowIso(MANAGER_NOW), 'the agent\'s clock (1999) is not used');
    assert.equal(t0.UpdatedAt, nowIso(MANAGER_NOW));

    await cp.updateTaskStatus('t0', status('preparing'));
    assert.equal(w.store.get('tasks', 't0')!.Status.State, 'running', 'a regression is ignored');
    await cp.updateTaskStatus('other', status('failed'));
    assert.equal(w.store.get('tasks', 'other')!.Status.State, 'assigned', 'a report for another node\'s task is ignored');
    await cp.updateTaskStatus('t1', status('orphaned'));
    assert.equal(w.store.get('tasks', 't1')!.Status.State, 'running', 'a state only managers set is ignored');

    // Every message is checked where it enters.
    const ch = w.net.channel(peer('w1'), M1);
    await assert.rejects(ch.unary(UpdateTaskStatus, { SessionID: 'x', Updates: [{ TaskID: 't0', Status: { ...status('running'), State: 'sideways' as never } }] }, { timeoutMs: 1000 }),
      (e: RpcError) => e.kind === 'invalid' && /State/.test(e.message));
    await assert.rejects(ch.unary(Heartbeat, { SessionID: 'not-mine' }, { timeoutMs: 1000 }), (e: RpcError) => /session invalid/.test(e.message));
    const bad = w.net.channel(peer('w1'), M1).stream(Session, { SessionID: 's', Description: { Hostname: 5 } as never }, () => undefined);
    await assert.rejects(bad.done, (e: RpcError) => e.kind === 'invalid');
  } finally { await w.close(); }
});

test('a node that misses heartbeats goes down and its tasks run elsewhere; back, it is ready and stops what was moved', async () => {
  const w = await world();
  const orchestrator = startOrchestrator({ store: w.store, log: silentLogger });
  const scheduler = startScheduler({ store: w.store, log: silentLogger });
  const allocator = startAllocator({ store: w.store, log: silentLogger });
  try {
    w.dispatcher(M1).setLeading(w.store);
    const a1 = w.agent('w1', w.plane('w1'));
    const a2 = w.agent('w2', w.plane('w2'));
    await untilStore(w.store, () => ['w1', 'w2'].every((id) => w.store.get('nodes', id)!.Status.State === 'ready'), 'both nodes ready');
    await w.store.txn().create('services', makeService('web', { replicas: 2, image: 'img:1' })).commit();
    const runningOn = (node: string): Task[] => w.store.tasksOfService('web').filter((t) => t.NodeID === node && t.Status.State === 'running' && t.DesiredState === 'running');
    await untilStore(w.store, () => runningOn('w1').length === 1 && runningOn('w2').length === 1, 'one task running on each node');
    const moved = runningOn('w1')[0]!;

    w.net.partition('w1:2377');
    const lostAt = Date.now();
    await untilStore(w.store, () => w.store.get('nodes', 'w1')!.Status.State === 'down', 'w1 down', 5000);
    const downAfter = Date.now() - lostAt;
    assert.equal(w.store.get('nodes', 'w1')!.Status.Message, 'heartbeat failure');
    assert.ok(downAfter >= PERIOD_MS, `not before the allowance (${downAfter} ms)`);
    await untilStore(w.store, () => runningOn('w2').length === 2, 'both tasks running on w2');
    assert.equal(w.store.get('tasks', moved.ID)!.DesiredState, 'shutdown');
    assert.ok(a1.executor.byTask(moved.ID)[0]!.running, 'the cut-off node keeps running its task meanwhile');
    assert.ok(!a1.executor.calls.some((c) => c.startsWith('stop')));

    w.net.heal('w1:2377');
    await untilStore(w.store, () => w.store.get('nodes', 'w1')!.Status.State === 'ready', 'w1 ready again', 5000);
    await untilStore(w.store, () => w.store.get('tasks', moved.ID)!.Status.State === 'shutdown', 'the moved task shut down on w1', 5000);
    assert.equal(a1.executor.byTask(moved.ID)[0]!.running, false);
    assert.equal(runningOn('w2').length, 2);
    assert.equal(runningOn('w1').length, 0, 'the node that came back is not given the tasks back');
    void a2;
  } finally {
    orchestrator.stop();
    allocator.stop();
    scheduler.stop();
    await w.close();
  }
});

test('a node whose allowance runs out while its registration is being written ends up ready, not down', async () => {
  const { log, lines } = capturingLogger();
  const w = await world({ nodes: ['w1'], log });
  try {
    // etcd slow: the registration's write waits past the allowance the node had at the leader's start.
    let open!: () => void;
    w.backend.gate = new Promise<void>((r) => { open = r; });
    w.dispatcher(M1).setLeading(w.store);
    w.agent('w1', w.plane('w1', [M1], 10_000)); // its session waits for the slow write
    const verdict = () => lines.find((l) => l.node === 'w1' && /marked down/.test(String(l.msg)));
    await waitFor('the allowance ran out', () => lines.some((l) => l.node === 'w1' && l.msg === 'heartbeat allowance ran out'), 10_000);
    assert.equal(verdict(), undefined, 'the expiry waits for the registration\'s write');
    open();
    w.backend.gate = undefined;
    await waitFor('the expiry decided', () => !!verdict(), 10_000);
    assert.match(String(verdict()!.msg), /not marked down/, `the expiry gave way to the registration: ${JSON.stringify(lines.map((l) => [l.msg, l.node, l.time]))}`);
    await untilStore(w.store, () => w.store.get('nodes', 'w1')!.Status.State === 'ready', 'w1 ready', 5000);
  } finally {
    await w.close();
  }
});

test('a stall of the leader\'s own event loop (longer than the allowance) marks no node down; a node silent afterwards still goes down', async () => {
  const { log, lines } = capturingLogger();
  const w = await world({ log, asIo: true }); // heartbeats are read after the due timers, as from sockets
  try {
    w.dispatcher(M1).setLeading(w.store);
    w.agent('w1', w.plane('w1'));
    w.agent('w2', w.plane('w2'));
    await untilStore(w.store, () => ['w1', 'w2'].every((id) => w.store.get('nodes', id)!.Status.State === 'ready'), 'both nodes ready');
    // The loop held for 2 s (a huge batch, a long GC): no heartbeat is read
    // meanwhile, and when it ends the due timers (expiry check, stall ticker)
    // run before the heartbeats sent meanwhile are read. Which timer runs
    // first varies: the ticker's forgive or its re-arm must keep every node up.
    const until = Date.now() + 2_000;
    while (Date.now() < until) { /* the stall */ }
    await waitFor('the stall noticed', () => lines.some((l) => /held up/.test(String(l.msg))), 5_000);
    // The allowance itself is intact: a node that goes silent now is marked
    // down, a full allowance (900 ms) later; by then any expiry the stall
    // caused would have been acted on, and only w2's ran out.
    w.net.partition('w2:2377');
    await untilStore(w.store, () => w.store.get('nodes', 'w2')!.Status.State === 'down', 'w2 down', 5000);
    assert.deepEqual(lines.filter((l) => l.msg === 'heartbeat allowance ran out').map((l) => l.node), ['w2']);
    assert.equal(w.store.get('nodes', 'w1')!.Status.State, 'ready');
  } finally {
    await w.close();
  }
});

test('a global service: a down node has no task; back, it gets a new one', async () => {
  const w = await world();
  const orchestrator = startOrchestrator({ store: w.store, log: silentLogger });
  const scheduler = startScheduler({ store: w.store, log: silentLogger });
  const allocator = startAllocator({ store: w.store, log: silentLogger });
  try {
    w.dispatcher(M1).setLeading(w.store);
    w.agent('w1', w.plane('w1'));
    w.agent('w2', w.plane('w2'));
    await untilStore(w.store, () => ['w1', 'w2'].every((id) => w.store.get('nodes', id)!.Status.State === 'ready'), 'both nodes ready');
    await w.store.txn().create('services', makeService('g', { global: true, image: 'img:1' })).commit();
    const live = (node: string): Task[] => w.store.tasksOfService('g').filter((t) => t.NodeID === node && t.DesiredState === 'running');
    await untilStore(w.store, () => live('w1').length === 1 && live('w2').length === 1, 'a task per node');
    const first = live('w1')[0]!;
    w.net.partition('w1:2377');
    await untilStore(w.store, () => w.store.get('nodes', 'w1')!.Status.State === 'down' && live('w1').length === 0, 'no task wanted on the down node', 5000);
    assert.equal(live('w2').length, 1, 'nothing moves to the other node');
    w.net.heal('w1:2377');
    await untilStore(w.store, () => w.store.get('tasks', first.ID)!.Status.State === 'shutdown' && live('w1').some((t) => t.Status.State === 'running'), 'the old task stopped, a new one running', 5000);
  } finally {
    orchestrator.stop();
    allocator.stop();
    scheduler.stop();
    await w.close();
  }
});

test('an agent whose manager is lost keeps its tasks and moves to another manager; the node never goes down', async () => {
  const w = await world();
  try {
    const d1 = w.dispatcher(M1);
    const d2 = w.dispatcher(M2);
    d1.setLeading(w.store);
    await addSecretsAndTasks(w.store, [makeTask('t1', { NodeID: 'w1' })]);
    const cp = w.plane('w1', [M1, M2]);
    const a = w.agent('w1', cp);
    await untilStore(w.store, () => w.store.get('tasks', 't1')!.Status.State === 'running', 't1 running');
    assert.equal(cp.connectedTo, M1);

    // The leader's host is cut off; the other manager takes over.
    w.net.partition(M1);
    d1.setLeading(undefined);
    w.leader.addr = M2;
    d2.setLeading(w.store);
    await waitFor('the agent on the new leader', () => cp.connectedTo === M2, 5000);
    // Reports go through the new leader.
    a.executor.exit(a.executor.byTask('t1')[0]!.id, 3);
    await untilStore(w.store, () => w.store.get('tasks', 't1')!.Status.State === 'failed', 'the failure reported through M2');
    assert.equal(w.store.get('nodes', 'w1')!.Status.State, 'ready');
    assert.ok(!a.executor.calls.some((c) => c.startsWith('stop') || c.startsWith('remove')), 'nothing was stopped because the manager went away');
    // Beyond a leader change's grace the node is still alive: it beats on M2.
    await new Promise((r) => setTimeout(r, PERIOD_MS * 3)); // a span of time is what is under test here
    assert.equal(w.store.get('nodes', 'w1')!.Status.State, 'ready');
  } finally { await w.close(); }
});

test('an agent counts the session messages it received and the tasks in them (the scale bench reads these)', async () => {
  const w = await world();
  try {
    w.dispatcher(M1).setLeading(w.store);
    await addSecretsAndTasks(w.store, [makeTask('t1', { NodeID: 'w1' }), makeTask('t2', { NodeID: 'w1' })]);
    const cp = w.plane('w1');
    assert.deepEqual(cp.received, { messages: 0, tasks: 0 });
    w.agent('w1', cp);
    await untilStore(w.store, () => ['t1', 't2'].every((id) => w.store.get('tasks', id)!.Status.State === 'running'), 'both running');
    const before = cp.received;
    assert.ok(before.messages >= 1 && before.tasks >= 2, JSON.stringify(before));
    // One change of one task: one message carrying it (the agent's reports send nothing back).
    await w.store.mutate('tasks', 't1', (t) => { t.DesiredState = 'shutdown'; return t; });
    await waitFor('the shutdown delivered', () => cp.received.tasks > before.tasks);
    await untilStore(w.store, () => w.store.get('tasks', 't1')!.Status.State === 'shutdown', 't1 shut down');
    assert.deepEqual(cp.received, { messages: before.messages + 1, tasks: before.tasks + 1 });
  } finally { await w.close(); }
});

test('a manager that is not the leader names the leader, and the agent goes there', async () => {
  const w = await world();
  try {
    w.dispatcher(M1).setLeading(w.store);
    w.dispatcher(M2); // not leading
    await assert.rejects(w.net.channel(peer('w1'), M2).unary(Heartbeat, { SessionID: 'x' }, { timeoutMs: 1000 }),
      (e: RpcError) => e.kind === 'unavailable' && e.message.includes('not the leader') && e.message.includes(M1));
    const cp = w.plane('w1', [M2]);
    const seen: Assignments[] = [];
    cp.watchAssignments('w1', (a) => seen.push(a));
    await waitFor('a session with the leader', () => cp.connectedTo === M1 && seen.length > 0);
    assert.equal(w.store.get('nodes', 'w1')!.Status.State, 'ready');
  } finally { await w.close(); }
});

test('a manager that does not lead relays its nodes\' sessions, beats and reports to the leader; when it becomes the leader, its nodes stay with it', async () => {
  const w = await world();
  try {
    const d1 = w.dispatcher(M1, true);
    const d2 = w.dispatcher(M2, true);
    d1.setLeading(w.store);
    // Only the leader's dispatcher takes relayed calls from a manager: a worker's certificate is refused.
    await assert.rejects(w.net.channel(peer('w1'), M1).unary(RelayHeartbeats, { Beats: [{ For: { NodeID: 'w2', Role: 'worker', Addr: 'x' }, SessionID: 's' }] }, { timeoutMs: 1000 }),
      (e: RpcError) => e.rpcKind === 'permission');
    await addSecretsAndTasks(w.store, [makeTask('t1', { NodeID: 'w1' })]);
    const dialled: string[] = [];
    const cp = new RemoteControlPlane({
      connect: (addr) => { dialled.push(addr); return w.net.channel(peer('w1'), addr); },
      managers: [M2, M1], firstManager: 'first', describe: async () => describe('w1'), log: silentLogger, backoff: RETRY, callTimeoutMs: 1000,
    });
    const a = w.agent('w1', cp);
    try {
      // Registered and served by the leader, through M2: ready at the node's own address, its task delivered, its report written.
      await untilStore(w.store, () => w.store.get('tasks', 't1')!.Status.State === 'running', 't1 running, reported through M2');
      assert.equal(cp.connectedTo, M2);
      assert.deepEqual(dialled, [M2], 'the node never dialled the leader');
      const node = w.store.get('nodes', 'w1')!;
      assert.equal(node.Status.State, 'ready');
      assert.equal(node.Status.Addr, 'w1:2377', 'the address is the node\'s, not the relaying manager\'s');
      // Relayed heartbeats are answered each on its own: a stale session fails alone.
      const live = (await w.net.channel(peer('mgr-m2', 'manager'), M1).unary(RelayHeartbeats, {
        Beats: [{ For: { NodeID: 'w1', Role: 'worker', Addr: 'w1:2377' }, SessionID: 'stale' }, { For: { NodeID: 'w2', Role: 'worker', Addr: 'w2:2377' }, SessionID: 'none' }],
      }, { timeoutMs: 1000 })).Results;
      assert.deepEqual(live.map((r) => r.Error?.Kind), ['not_found', 'not_found']);
      assert.match(live[0]!.Error!.Message, /session invalid/);
      // Alive on its relayed heartbeats, past three allowances.
      await new Promise((r) => setTimeout(r, PERIOD_MS * 3)); // a span of time is what is under test here
      assert.equal(w.store.get('nodes', 'w1')!.Status.State, 'ready');

      // Leadership moves to M2: the node opens its session again with M2, which now serves it itself.
      d1.setLeading(undefined);
      w.leader.addr = M2;
      d2.setLeading(w.store);
      const txn = w.store.txn();
      txn.create('tasks', makeTask('t2', { NodeID: 'w1' }));
      await txn.commit();
      await untilStore(w.store, () => w.store.get('tasks', 't2')!.Status.State === 'running', 't2 running, served by M2');
      assert.equal(cp.connectedTo, M2);
      assert.deepEqual(dialled, [M2], 'still one connection, to M2: no redirect to either leader');
      assert.equal(w.store.get('nodes', 'w1')!.Status.State, 'ready');
      assert.ok(!a.executor.calls.some((c) => c.startsWith('stop') || c.startsWith('remove')), 'nothing was stopped on the way');
    } finally { await cp.stop(); }
  } finally { await w.close(); }
});

test('spread sessions go to a manager that does not lead more often: told of the leader at the start, fewer nodes open theirs there (LEADER_WEIGHT), half when not told', async () => {
  const told = Array.from({ length: 10 }, (_, i) => `t${i}`);
  const untold = Array.from({ length: 10 }, (_, i) => `u${i}`);
  const w = await world({ nodes: [...told, ...untold] });
  try {
    const d1 = w.dispatcher(M1, true);
    w.dispatcher(M2, true);
    d1.setLeading(w.store);
    await addSecretsAndTasks(w.store, [...told, ...untold].map((n) => makeTask(`task-${n}`, { NodeID: n })));
    // The same ten draws for both groups, spread evenly over [0, 1).
    const plane = (nodeId: string, i: number, leaderAddr?: string): RemoteControlPlane => {
      const cp = new RemoteControlPlane({
        connect: (addr) => w.net.channel(peer(nodeId), addr), managers: [M1, M2], firstManager: 'spread', ...(leaderAddr ? { leaderAddr } : {}),
        random: () => (i + 0.5) / 10, describe: async () => describe(nodeId), log: silentLogger, backoff: RETRY, callTimeoutMs: 1000,
      });
      w.agent(nodeId, cp);
      return cp;
    };
    const toldPlanes = told.map((n, i) => plane(n, i, M1));
    const untoldPlanes = untold.map((n, i) => plane(n, i));
    try {
      await untilStore(w.store, () => [...told, ...untold].every((n) => w.store.get('tasks', `task-${n}`)!.Status.State === 'running'), 'every task running');
      const onLeader = (planes: RemoteControlPlane[]): number => planes.filter((cp) => cp.connectedTo === M1).length;
      // Draw d picks the leader when d * (1 + LEADER_WEIGHT) < LEADER_WEIGHT once told (0.1: d < 0.09), when d < 0.5 otherwise.
      const expected = told.filter((_, i) => ((i + 0.5) / 10) * (1 + LEADER_WEIGHT) < LEADER_WEIGHT).length;
      assert.ok(expected >= 1 && expected < 5, `${expected} of 10 expected on the leader`);
      assert.equal(onLeader(toldPlanes), expected, toldPlanes.map((cp) => cp.connectedTo).join(' '));
      assert.equal(onLeader(untoldPlanes), 5, untoldPlanes.map((cp) => cp.connectedTo).join(' '));
      assert.ok([...toldPlanes, ...untoldPlanes].every((cp) => cp.connectedTo === M1 || cp.connectedTo === M2));
    } finally { for (const cp of [...toldPlanes, ...untoldPlanes]) await cp.stop(); }
  } finally { await w.close(); }
});

test('managers that do not answer cost one attempt each a round: whatever the draws, the node reaches the leader after trying each of them once', async () => {
  const w = await world();
  try {
    w.dispatcher(M1).setLeading(w.store);
    const dead = ['d1:2377', 'd2:2377']; // nothing listens there (the old managers after a restore)
    const dialled: string[] = [];
    // The draw 0.99 takes the last of the managers left: with only the last failed one skipped, d2 and d1 in turn for ever.
    const cp = new RemoteControlPlane({
      connect: (addr) => { dialled.push(addr); return w.net.channel(peer('w1'), addr); }, managers: [M1, ...dead], firstManager: 'spread', leaderAddr: M1,
      random: () => 0.99, describe: async () => describe('w1'), log: silentLogger, backoff: RETRY, callTimeoutMs: 1000,
    });
    cp.watchAssignments('w1', () => undefined);
    try {
      await waitFor('a session with the leader', () => cp.connectedTo === M1, 5000);
      assert.deepEqual(dialled, ['d2:2377', 'd1:2377', M1]);
    } finally { await cp.stop(); }
  } finally { await w.close(); }
});

test('the leader a session message names is avoided next time: a node that loses its follower moves to the other follower, not the leader', async () => {
  const w = await world({ addrs: [M1, M2, M3] });
  try {
    const d1 = w.dispatcher(M1, true);
    w.dispatcher(M2, true);
    w.dispatcher(M3, true);
    d1.setLeading(w.store);
    await addSecretsAndTasks(w.store, [makeTask('t1', { NodeID: 'w1' })]);
    // It knows only M2 at first, and nothing of the leader; its session messages list all three and name M1.
    // The draw 0.3 picks M1 of [M1, M3] with equal weights, M3 once M1 is known to lead (for a LEADER_WEIGHT up to 0.42).
    const cp = new RemoteControlPlane({
      connect: (addr) => w.net.channel(peer('w1'), addr), managers: [M2], firstManager: 'spread', random: () => 0.3,
      describe: async () => describe('w1'), log: silentLogger, backoff: RETRY, callTimeoutMs: 1000,
    });
    const a = w.agent('w1', cp);
    try {
      await untilStore(w.store, () => w.store.get('tasks', 't1')!.Status.State === 'running', 't1 running through M2');
      assert.equal(cp.connectedTo, M2);
      w.net.partition(M2);
      await waitFor('the node on another manager', () => cp.connectedTo !== undefined && cp.connectedTo !== M2, 5000);
      assert.equal(cp.connectedTo, M3);
      a.executor.exit(a.executor.byTask('t1')[0]!.id, 3);
      await untilStore(w.store, () => w.store.get('tasks', 't1')!.Status.State === 'failed', 'the failure reported through M3');
    } finally { await cp.stop(); }
  } finally { await w.close(); }
});

test('a follower cut off from the leader sends its nodes elsewhere: the node moves to a manager it can use and stays ready', async () => {
  const w = await world();
  try {
    const d1 = w.dispatcher(M1, true);
    w.dispatcher(M2, true);
    d1.setLeading(w.store);
    await addSecretsAndTasks(w.store, [makeTask('t1', { NodeID: 'w1' })]);
    const cp = w.plane('w1', [M2, M1]);
    const a = w.agent('w1', cp);
    await untilStore(w.store, () => w.store.get('tasks', 't1')!.Status.State === 'running', 't1 running through M2');
    assert.equal(cp.connectedTo, M2);
    // M2 loses its way to the leader (its own address is cut; the node still reaches both).
    w.net.partition('mgr-m2:2377');
    await waitFor('the node on M1', () => cp.connectedTo === M1, 5000);
    a.executor.exit(a.executor.byTask('t1')[0]!.id, 3);
    await untilStore(w.store, () => w.store.get('tasks', 't1')!.Status.State === 'failed', 'the failure reported through M1');
    assert.equal(w.store.get('nodes', 'w1')!.Status.State, 'ready');
  } finally { await w.close(); }
});

test('a session the leader\'s dispatcher ends is opened again with it over the same connection; a lost connection is dialled anew', async () => {
  const w = await world();
  try {
    w.dispatcher(M1).setLeading(w.store);
    w.dispatcher(M2); // not leading: a redirect to M1 would need a connection to it first
    const dialled: string[] = [];
    const cp = new RemoteControlPlane({
      connect: (addr) => { dialled.push(addr); return w.net.channel(peer('w1'), addr); },
      managers: [M1, M2], firstManager: 'first', describe: async () => describe('w1'), log: silentLogger, backoff: RETRY, callTimeoutMs: 1000,
    });
    const sessions: string[] = [];
    cp.watchAssignments('w1', () => undefined);
    await waitFor('a session with M1', () => cp.connectedTo === M1);
    try {
      // Another session of the same node replaces the agent's: the dispatcher ends it (an answer, not a lost connection).
      const rival = w.net.channel(peer('w1'), M1).stream(Session, { SessionID: 'rival', Description: describe('w1') }, (m) => { sessions.push(m.SessionID); });
      await waitFor('the rival session served', () => sessions.includes('rival'));
      await waitFor('the agent back on M1, replacing the rival', () => cp.connectedTo === M1 && w.store.get('nodes', 'w1')!.Status.State === 'ready' && sessions.length > 0);
      await assert.rejects(rival.done, /replaced/);
      assert.deepEqual(dialled, [M1], 'no new connection, and no detour through M2');

      // A connection that is lost is not trusted again: the next session dials anew.
      w.net.partition(M1);
      await waitFor('the session lost', () => cp.connectedTo === undefined);
      w.net.heal(M1);
      await waitFor('a session with M1 again', () => cp.connectedTo === M1, 5000);
      assert.ok(dialled.filter((a) => a === M1).length >= 2, `M1 dialled again: ${dialled.join(' ')}`);
    } finally { await cp.stop(); }
  } finally { await w.close(); }
});

// A channel that counts what the agent does with it, and can make its
// heartbeats time out (answered meanwhile by the dispatcher, as a late answer
// would be) or its sessions give up on a connection still being set up.
// `silent`: sessions that get no message at all (a leader too busy to register the node).
// `relayedMiss`: a failed beat is a relaying manager's "the leader did not answer" (answered by that manager).
type Probe = { failBeats: number; beatsFailed: number; beatsOk: number; sessions: string[]; connecting: number; closed: number; silent?: number; relayedMiss?: boolean };
function probedChannel(inner: RpcChannel, probe: Probe): RpcChannel {
  return {
    address: inner.address,
    close: () => { probe.closed++; inner.close(); },
    stream: (m, req, onMessage) => {
      if (m.name === Session.name && (probe.silent ?? 0) > 0) {
        probe.silent!--;
        probe.sessions.push((req as { SessionID: string }).SessionID);
        let cancel = (): void => undefined;
        const done = new Promise<void>((_, reject) => { cancel = () => reject(new RpcError('unavailable', 'stream cancelled')); });
        done.catch(() => undefined);
        return { done, cancel };
      }
      if (m.name === Session.name && probe.connecting > 0) {
        probe.connecting--;
        const done = Promise.reject(new RpcError('unavailable', `connection error: cannot reach ${inner.address} within 5000 ms (still connecting)`, { stillConnecting: true }));
        done.catch(() => undefined);
        return { done, cancel: () => undefined };
      }
      if (m.name === Session.name) probe.sessions.push((req as { SessionID: string }).SessionID);
      return inner.stream(m, req, onMessage);
    },
    unary: (m, req, o) => inner.unary(m, req, o),
    pipe: (m) => {
      const pipe = inner.pipe(m);
      if (m.name !== Heartbeats.name) return pipe;
      return {
        close: () => pipe.close(),
        call: async (req, o) => {
          if (probe.failBeats > 0) {
            probe.failBeats--;
            probe.beatsFailed++;
            void pipe.call(req, o).catch(() => undefined);
            if (probe.relayedMiss) throw new RpcError('unavailable', relayedBeatMissed(`deadline exceeded calling ${m.name}`).message, { answered: true });
            throw new RpcError('unavailable', `deadline exceeded calling ${m.name}`);
          }
          const res = await pipe.call(req, o);
          probe.beatsOk++;
          return res;
        },
      };
    },
  };
}

test('an agent whose manager serves no heartbeats pipe (an earlier release) beats with unary calls on the same session', async () => {
  const w = await world();
  try {
    w.dispatcher(M1).setLeading(w.store);
    let pipeCalls = 0;
    let unaryBeats = 0;
    let unaryReports = 0;
    const oldManager = (inner: RpcChannel): RpcChannel => ({
      address: inner.address,
      close: () => inner.close(),
      stream: (m, req, onMessage) => inner.stream(m, req, onMessage),
      unary: (m, req, o) => { if (m.name === Heartbeat.name) unaryBeats++; if (m.name === UpdateTaskStatus.name) unaryReports++; return inner.unary(m, req, o); },
      pipe: (m) => ({
        close: () => undefined,
        call: async () => { pipeCalls++; throw new RpcError('internal', `${m.name} on ${inner.address}: The server does not implement the method /shoal.${m.name.replace('.', '/')}`); },
      }),
    });
    const cp = w.plane('w1', [M1], 1000, { wrap: oldManager });
    cp.watchAssignments('w1', () => undefined);
    await waitFor('three unary beats', () => unaryBeats >= 3);
    assert.equal(pipeCalls, 1, 'the pipe is tried once per session');
    assert.equal(cp.connectedTo, M1);
    assert.equal(w.store.get('nodes', 'w1')!.Status.State, 'ready');
    // Status reports the same way: the pipe tried once, then unary calls.
    const tasks = [makeTask('t1', { NodeID: 'w1', Slot: 1 }), makeTask('t2', { NodeID: 'w1', Slot: 2 })];
    await addSecretsAndTasks(w.store, tasks);
    await cp.updateTaskStatus('t1', status('running'));
    await cp.updateTaskStatus('t2', status('running'));
    assert.ok(tasks.every((t) => w.store.get('tasks', t.ID)!.Status.State === 'running'));
    assert.equal(unaryReports, 2);
    assert.equal(pipeCalls, 2, 'the status pipe too is tried once per session');
  } finally { await w.close(); }
});

test('status reports go on the session\'s pipe; a report the pipe fails is failed to its caller, and the session stays', async () => {
  const w = await world();
  try {
    w.dispatcher(M1).setLeading(w.store);
    const calls = { unary: 0, piped: 0, pipes: 0, failNext: false };
    const counting = (inner: RpcChannel): RpcChannel => ({
      address: inner.address,
      close: () => inner.close(),
      stream: (m, req, onMessage) => inner.stream(m, req, onMessage),
      unary: (m, req, o) => { if (m.name === UpdateTaskStatus.name) calls.unary++; return inner.unary(m, req, o); },
      pipe: (m) => {
        const pipe = inner.pipe(m);
        if (m.name !== UpdateTaskStatuses.name) return pipe;
        calls.pipes++;
        return {
          close: () => pipe.close(),
          call: async (req, o) => {
            calls.piped++;
            if (calls.failNext) { calls.failNext = false; throw new RpcError('unavailable', `deadline exceeded calling ${m.name}`); }
            return pipe.call(req, o);
          },
        };
      },
    });
    const tasks = Array.from({ length: 3 }, (_, i) => makeTask(`t${i}`, { NodeID: 'w1', Slot: i + 1 }));
    await addSecretsAndTasks(w.store, tasks);
    const cp = w.plane('w1', [M1], 1000, { wrap: counting });
    cp.watchAssignments('w1', () => undefined);
    await cp.updateTaskStatus('t0', status('running'));
    await cp.updateTaskStatus('t1', status('running'));
    assert.equal(w.store.get('tasks', 't0')!.Status.State, 'running');
    assert.equal(w.store.get('tasks', 't1')!.Status.State, 'running');
    assert.deepEqual({ unary: calls.unary, piped: calls.piped, pipes: calls.pipes }, { unary: 0, piped: 2, pipes: 1 });
    calls.failNext = true;
    await assert.rejects(cp.updateTaskStatus('t2', status('running')), /deadline exceeded/);
    assert.equal(cp.connectedTo, M1, 'a failed report does not end the session');
    await cp.updateTaskStatus('t2', status('running'));
    assert.equal(w.store.get('tasks', 't2')!.Status.State, 'running', 'sent again, it lands');
    assert.deepEqual({ unary: calls.unary, piped: calls.piped }, { unary: 0, piped: 4 });
  } finally { await w.close(); }
});

test('a heartbeat that times out (or that a relaying manager says its leader left unanswered) is sent again on the same session; only MISSED_BEATS_TO_END in a row end it', async () => {
  const w = await world();
  try {
    w.dispatcher(M1).setLeading(w.store);
    const probe: Probe = { failBeats: 0, beatsFailed: 0, beatsOk: 0, sessions: [], connecting: 0, closed: 0 };
    const agentLog = capturingLogger();
    const cp = w.plane('w1', [M1], 1000, { wrap: (ch) => probedChannel(ch, probe), log: agentLog.log });
    cp.watchAssignments('w1', () => undefined);
    {
      await waitFor('a session and a beat', () => cp.connectedTo === M1 && probe.beatsOk > 0);
      // One fewer than the limit, in a row: the session stays.
      probe.failBeats = MISSED_BEATS_TO_END - 1;
      const okBefore = probe.beatsOk;
      await waitFor('the beats failed, then one answered', () => probe.beatsFailed === MISSED_BEATS_TO_END - 1 && probe.beatsOk > okBefore);
      assert.equal(probe.sessions.length, 1, 'the same session');
      assert.equal(agentLog.lines.filter((l) => l.msg === 'heartbeat not answered; beating again on the same session').length, MISSED_BEATS_TO_END - 1);
      assert.equal(cp.connectedTo, M1);
      assert.equal(w.store.get('nodes', 'w1')!.Status.State, 'ready');
      // The same from a relaying manager whose leader did not answer (an answer, but not the leader's).
      probe.relayedMiss = true;
      probe.failBeats = MISSED_BEATS_TO_END - 1;
      const okAfter = probe.beatsOk;
      await waitFor('the relayed beats failed, then one answered', () => probe.beatsFailed === 2 * (MISSED_BEATS_TO_END - 1) && probe.beatsOk > okAfter);
      assert.equal(probe.sessions.length, 1, 'still the same session');
      probe.relayedMiss = false;
      // The limit in a row: the agent opens a new session.
      probe.failBeats = MISSED_BEATS_TO_END;
      // (The dispatcher's managers' list names M2 as well, which the agent may try on the way: nothing listens there.)
      await waitFor('a new session', () => agentLog.lines.filter((l) => l.msg === 'session with the dispatcher established').length === 2 && cp.connectedTo === M1);
      assert.equal(probe.beatsFailed, 3 * MISSED_BEATS_TO_END - 2);
    }
  } finally { await w.close(); }
});

test('a connection still being set up when the session gave up is kept, not dialled again', async () => {
  const w = await world();
  try {
    w.dispatcher(M1).setLeading(w.store);
    w.dispatcher(M2); // not leading: names M1
    const dialled: string[] = [];
    const probes = new Map<string, Probe>();
    const cp = w.plane('w1', [M1, M2], 1000, {
      wrap: (ch, addr) => {
        dialled.push(addr);
        const probe: Probe = { failBeats: 0, beatsFailed: 0, beatsOk: 0, sessions: [], connecting: addr === M1 ? 1 : 0, closed: 0 };
        probes.set(addr, probe);
        return probedChannel(ch, probe);
      },
    });
    cp.watchAssignments('w1', () => undefined);
    {
      // M1 is still connecting: the agent tries M2, which names M1, and the session is then opened over the kept connection.
      await waitFor('a session with M1', () => cp.connectedTo === M1);
      assert.deepEqual(dialled, [M1, M2], 'M1 dialled once');
      assert.equal(probes.get(M1)!.closed, 0, 'the connection being set up was kept');
      assert.equal(probes.get(M1)!.sessions.length, 1);
    }
  } finally { await w.close(); }
});

test('a session with no first message is given up after FIRST_MESSAGE_CALLS call bounds; its connection is kept', async () => {
  const w = await world();
  try {
    w.dispatcher(M1).setLeading(w.store);
    const probe: Probe = { failBeats: 0, beatsFailed: 0, beatsOk: 0, sessions: [], connecting: 0, closed: 0, silent: 1 };
    const dialled: string[] = [];
    const callTimeoutMs = 200;
    const cp = w.plane('w1', [M1], callTimeoutMs, { wrap: (ch, addr) => { dialled.push(addr); return probedChannel(ch, probe); } });
    const t0 = Date.now();
    cp.watchAssignments('w1', () => undefined);
    {
      await waitFor('a second session, established', () => probe.sessions.length === 2 && cp.connectedTo === M1);
      assert.ok(Date.now() - t0 >= FIRST_MESSAGE_CALLS * callTimeoutMs, 'the first was waited for as long as the bound');
      assert.deepEqual(dialled, [M1], 'over the same connection');
      assert.equal(probe.closed, 0);
    }
  } finally { await w.close(); }
});

// M1 leading, and w1's session opened by hand: every message it gets, from the first on.
async function rawSession(w: Awaited<ReturnType<typeof world>>): Promise<{ raw: SessionMessage[]; stream: { cancel(): void } }> {
  w.dispatcher(M1).setLeading(w.store);
  const raw: SessionMessage[] = [];
  const stream = w.net.channel(peer('w1'), M1).stream(Session, { SessionID: 'raw', Description: describe('w1') }, (m) => raw.push(m));
  await waitFor('the first message', () => raw.length > 0);
  return { raw, stream };
}

test('swarm update --dispatcher-heartbeat reaches live sessions', async () => {
  const w = await world();
  try {
    const { raw, stream } = await rawSession(w);
    await w.store.mutate('cluster', CLUSTER, (c) => { c.Spec.Dispatcher = { HeartbeatPeriod: 2e9 }; return c; });
    await waitFor('the new interval', () => raw.some((m) => m.HeartbeatMs === 1000));
    const res = await w.net.channel(peer('w1'), M1).unary(Heartbeat, { SessionID: 'raw' }, { timeoutMs: 1000 });
    assert.equal(res.PeriodMs, 1000);
    stream.cancel();
  } finally { await w.close(); }
});

test('a cluster past 1,250 nodes gets a longer heartbeat period, in the session\'s settings and in each beat\'s answer', async () => {
  const { log, lines } = capturingLogger();
  const w = await world({ log });
  const changes = (): unknown[] => lines.filter((l) => String(l.msg).startsWith('heartbeat period in force changed')).map((l) => l.periodMs);
  try {
    const { raw, stream } = await rawSession(w);
    assert.equal(raw[0]!.HeartbeatMs, PERIOD_MS / 2);
    const ch = w.net.channel(peer('w1'), M1);
    assert.equal((await ch.unary(Heartbeat, { SessionID: 'raw' }, { timeoutMs: 1000 })).PeriodMs, PERIOD_MS / 2);
    // Docker's default period, then nodes joining past 1,250.
    await w.store.mutate('cluster', CLUSTER, (c) => { c.Spec.Dispatcher = { HeartbeatPeriod: 5e9 }; return c; });
    const more = 1251 - w.store.count('nodes');
    await commitInBatches(w.store, Array.from({ length: more }, (_, j) => (t: StoreTxn) => { t.create('nodes', makeNode(`n${j}`, { state: 'down' })); }));
    assert.equal(w.store.count('nodes'), 1251);
    assert.equal((await ch.unary(Heartbeat, { SessionID: 'raw' }, { timeoutMs: 1000 })).PeriodMs, 5000, 'every 5 s, in a 10 s period');
    await waitFor('the change logged', () => changes().length > 1);
    await ch.unary(Heartbeat, { SessionID: 'raw' }, { timeoutMs: 1000 });
    assert.deepEqual(changes(), [5000, 10000], 'the leader says each change (the spec\'s, then the count\'s) once, not per beat');
    await w.store.mutate('nodes', 'w1', (n) => { n.Spec.Availability = 'pause'; return n; });
    await waitFor('the pause', () => raw.some((m) => m.Node?.Availability === 'pause'));
    assert.equal(raw[raw.length - 1]!.HeartbeatMs, 5000);
    // Nodes removed: back to the configured period.
    await w.store.txn().delete('nodes', w.store.get('nodes', 'n0')!).commit();
    assert.equal((await ch.unary(Heartbeat, { SessionID: 'raw' }, { timeoutMs: 1000 })).PeriodMs, 2500);
    await waitFor('the change back logged', () => changes().length === 3);
    assert.deepEqual(changes(), [5000, 10000, 5000]);
    stream.cancel();
  } finally { await w.close(); }
});

test('an agent moves its session to a connection whose pings suit the new heartbeat interval, on the same manager', async () => {
  const { log, lines } = capturingLogger();
  const w = await world();
  try {
    w.dispatcher(M1).setLeading(w.store);
    const dialled: Array<{ addr: string; keepalive: ChannelKeepalive; closed: boolean }> = [];
    const cp = new RemoteControlPlane({
      connect: (addr, keepalive) => {
        const d = { addr, keepalive, closed: false };
        dialled.push(d);
        const ch = w.net.channel(peer('w1'), addr);
        const close = ch.close.bind(ch);
        ch.close = () => { d.closed = true; close(); };
        return ch;
      },
      managers: [M1], firstManager: 'first', describe: async () => describe('w1'), log, backoff: RETRY, random: () => 0,
    });
    w.agent('w1', cp);
    await waitFor('the session', () => cp.connectedTo === M1);
    assert.deepEqual(dialled.map((d) => d.keepalive), [{ timeMs: 1000, timeoutMs: 2000 }], 'before any session: Docker\'s default period\'s pings');
    // A 6 s period: every 1.2 s is not worth a new connection.
    const before = cp.received.messages;
    await w.store.mutate('cluster', CLUSTER, (c) => { c.Spec.Dispatcher = { HeartbeatPeriod: 6e9 }; return c; });
    await waitFor('the 6 s period told', () => cp.received.messages > before);
    await new Promise((r) => setImmediate(r));
    assert.equal(dialled.length, 1); // a move here would also show as dialled[1] at 1.2 s below
    // A 20 s period: every 4 s, with 8 s to answer.
    await w.store.mutate('cluster', CLUSTER, (c) => { c.Spec.Dispatcher = { HeartbeatPeriod: 20e9 }; return c; });
    await waitFor('a new connection', () => dialled.length === 2);
    assert.deepEqual(dialled[1], { addr: M1, keepalive: { timeMs: 4000, timeoutMs: 8000 }, closed: false });
    assert.equal(dialled[0]!.closed, true, 'the old connection is closed');
    await waitFor('the session again', () => cp.connectedTo === M1);
    assert.equal(w.store.get('nodes', 'w1')!.Status.State, 'ready');
    assert.ok(lines.some((l) => String(l.msg).startsWith('moving the session to a new connection') && l.pingMs === 4000 && l.wasMs === 1000));
    assert.ok(!lines.some((l) => String(l.msg).startsWith('session with the managers lost')), 'a move is not a loss');
    // And back: the old pings are too slow for a 600 ms period's allowance.
    await w.store.mutate('cluster', CLUSTER, (c) => { c.Spec.Dispatcher = { HeartbeatPeriod: PERIOD_MS * 1e6 }; return c; });
    await waitFor('a third connection', () => dialled.length === 3);
    assert.deepEqual(dialled[2]!.keepalive, { timeMs: 1000, timeoutMs: 2000 });
    await waitFor('the session again', () => cp.connectedTo === M1);
    assert.equal(dialled.length, 3);
  } finally { await w.close(); }
});

test('a node that joined learns the interval from the join\'s answer: its first connection pings at that rate', async () => {
  const w = await world({ periodMs: 20_000 });
  try {
    w.dispatcher(M1).setLeading(w.store);
    const dialled: ChannelKeepalive[] = [];
    const cp = new RemoteControlPlane({
      connect: (addr, keepalive) => { dialled.push(keepalive); return w.net.channel(peer('w1'), addr); },
      managers: [M1], firstManager: 'first', describe: async () => describe('w1'), log: silentLogger, backoff: RETRY, random: () => 0, heartbeatMs: 10_000,
    });
    w.agent('w1', cp);
    await waitFor('the session', () => cp.connectedTo === M1);
    const seen = cp.received.messages;
    await w.store.mutate('nodes', 'w1', (n) => { n.Spec.Availability = 'pause'; return n; });
    await waitFor('a later message (the pause)', () => cp.received.messages > seen);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(dialled, [{ timeMs: 4000, timeoutMs: 8000 }], 'one connection, at the 10 s interval\'s rate');
  } finally { await w.close(); }
});

test('a session hears only news: status reports of its tasks send nothing; settings send the roots again only when they change', async () => {
  const w = await world();
  try {
    w.dispatcher(M1).setLeading(w.store);
    const root = (await createRootCA()).certPem;
    await w.store.mutate('cluster', CLUSTER, (c) => { c.TLSInfo = { TrustRoot: root, CertIssuerPublicKey: 'S0VZ' }; return c; });
    await addSecretsAndTasks(w.store, [makeTask('t1', { NodeID: 'w1' }), makeTask('t2', { NodeID: 'w1' })]);
    const raw: SessionMessage[] = [];
    const stream = w.net.channel(peer('w1'), M1).stream(Session, { SessionID: 'raw', Description: describe('w1') }, (m) => raw.push(m));
    await waitFor('the first message', () => raw.some((m) => m.Full && !m.More));
    assert.equal(raw[0]!.RootCA?.Bundle, root, 'the first message carries the roots');
    const seen = raw.length;
    // The agent's own reports, then a drain: only the drain is news.
    const ch = w.net.channel(peer('w1'), M1);
    await ch.unary(UpdateTaskStatus, { SessionID: 'raw', Updates: [{ TaskID: 't1', Status: status('running') }] }, { timeoutMs: 1000 });
    await ch.unary(UpdateTaskStatus, { SessionID: 'raw', Updates: [{ TaskID: 't2', Status: status('starting') }] }, { timeoutMs: 1000 });
    await untilStore(w.store, () => w.store.get('tasks', 't2')!.Status.State === 'starting', 't2 starting');
    await w.store.mutate('nodes', 'w1', (n) => { n.Spec.Availability = 'drain'; return n; });
    await waitFor('the drain', () => raw.some((m) => m.Node?.Availability === 'drain'));
    const after = raw.slice(seen);
    assert.equal(after.length, 1, `messages after the first: ${JSON.stringify(after.map((m) => ({ tasks: m.Tasks.length, node: m.Node })))}`);
    assert.equal(after[0]!.Tasks.length, 0);
    assert.equal(after[0]!.RootCA?.Bundle, root, 'changed settings carry the roots again');
    // A task change with the same settings: the task, without the roots.
    await w.store.mutate('tasks', 't1', (t) => { t.DesiredState = 'shutdown'; return t; });
    await waitFor('the shutdown', () => raw.some((m) => m.Tasks.some((t) => t.ID === 't1' && t.DesiredState === 'shutdown')));
    const last = raw[raw.length - 1]!;
    assert.equal(last.RootCA, undefined, 'unchanged settings: no roots');
    assert.equal(last.Node?.Availability, 'drain', 'the node\'s settings are in every message');
    stream.cancel();
  } finally { await w.close(); }
});

test('a batch that cannot be sent to one session ends that session only; the other nodes still get it', async () => {
  const w = await world({ prepareTask: (t) => { if (t.Labels.unsendable) throw new Error('cannot prepare'); return t; } });
  try {
    w.dispatcher(M1).setLeading(w.store);
    const raw = new Map<string, SessionMessage[]>([['w1', []], ['w2', []]]);
    const streams = ['w1', 'w2'].map((n) => w.net.channel(peer(n), M1).stream(Session, { SessionID: `raw-${n}`, Description: describe(n) }, (m) => raw.get(n)!.push(m)));
    await waitFor('both first messages', () => raw.get('w1')!.length > 0 && raw.get('w2')!.length > 0);
    // One batch: w1's task fails to go out (first in the batch), w2's must still go.
    await addSecretsAndTasks(w.store, [makeTask('bad', { NodeID: 'w1', Labels: { unsendable: 'yes' } }), makeTask('t2', { NodeID: 'w2' })]);
    await waitFor('t2 sent to w2', () => raw.get('w2')!.some((m) => m.Tasks.some((t) => t.ID === 't2')));
    await assert.rejects(streams[0]!.done, (e: RpcError) => e.kind === 'unavailable' && /open the session again/.test(e.message));
    streams[1]!.cancel();
  } finally { await w.close(); }
});

test('a node removed from the swarm loses its session and cannot register', async () => {
  const w = await world();
  try {
    w.dispatcher(M1).setLeading(w.store);
    const stream = w.net.channel(peer('w1'), M1).stream(Session, { SessionID: 'raw', Description: describe('w1') }, () => undefined);
    await untilStore(w.store, () => w.store.get('nodes', 'w1')!.Status.State === 'ready', 'registered');
    await w.store.txn().delete('nodes', w.store.get('nodes', 'w1')!).commit();
    await assert.rejects(stream.done, (e: RpcError) => e.kind === 'not_found');
    const again = w.net.channel(peer('w1'), M1).stream(Session, { SessionID: 'raw2', Description: describe('w1') }, () => undefined);
    await assert.rejects(again.done, (e: RpcError) => e.kind === 'not_found');
  } finally { await w.close(); }
});

test('with the default heartbeat period (5 s) a lost worker\'s task runs elsewhere within 10 s', { timeout: 30_000 }, async () => {
  const w = await world({ periodMs: 5000 });
  const orchestrator = startOrchestrator({ store: w.store, log: silentLogger });
  const scheduler = startScheduler({ store: w.store, log: silentLogger });
  const allocator = startAllocator({ store: w.store, log: silentLogger });
  try {
    w.dispatcher(M1).setLeading(w.store);
    w.agent('w1', w.plane('w1'));
    w.agent('w2', w.plane('w2'));
    await untilStore(w.store, () => ['w1', 'w2'].every((id) => w.store.get('nodes', id)!.Status.State === 'ready'), 'both nodes ready');
    await w.store.txn().create('services', makeService('web', { replicas: 2, image: 'img:1' })).commit();
    const runningOn = (node: string): Task[] => w.store.tasksOfService('web').filter((t) => t.NodeID === node && t.Status.State === 'running' && t.DesiredState === 'running');
    await untilStore(w.store, () => runningOn('w1').length === 1 && runningOn('w2').length === 1, 'one task running on each node');
    w.net.partition('w1:2377');
    const lostAt = Date.now();
    await untilStore(w.store, () => w.store.get('nodes', 'w1')!.Status.State === 'down', 'w1 down', 15_000);
    const downMs = Date.now() - lostAt;
    await untilStore(w.store, () => runningOn('w2').length === 2, 'the task running on w2', 15_000);
    const replacedMs = Date.now() - lostAt;
    assert.ok(downMs > 5000 && downMs <= 7600, `down after ${downMs} ms (allowance 7.5 s from the last beat)`);
    assert.ok(replacedMs < 10_000, `replaced after ${replacedMs} ms`);
    process.stderr.write(`# worker loss: down after ${downMs} ms, its task running elsewhere after ${replacedMs} ms\n`);
  } finally {
    orchestrator.stop();
    allocator.stop();
    scheduler.stop();
    await w.close();
  }
});

test('a whole set too big for one message arrives in several and is applied once; a new session\'s set drops what went away meanwhile', async () => {
  const w = await world();
  try {
    w.dispatcher(M1).setLeading(w.store);
    const big = 'x'.repeat(8 * 1024);
    // Distinct specs (8 KB each): 200 of them are over 1.5 MB of JSON.
    await addSecretsAndTasks(w.store, []);
    const tasks = Array.from({ length: 200 }, (_, i) => makeTask(`t${i}`, { NodeID: 'w1', Slot: i + 1, Spec: { ContainerSpec: { Image: 'img:1', Env: [`I=${i}`, `PAD=${big}`] } } }));
    await commitInBatches(w.store, tasks.map((t) => (txn) => { txn.create('tasks', t); }));
    const raw: SessionMessage[] = [];
    const stream = w.net.channel(peer('w1'), M1).stream(Session, { SessionID: 'raw', Description: describe('w1') }, (m) => raw.push(m));
    await waitFor('the whole set', () => raw.some((m) => m.Full && !m.More));
    stream.cancel();
    assert.ok(raw.length >= 2, `${raw.length} messages`);
    assert.ok(raw.every((m) => JSON.stringify(m).length < 2 * 1024 * 1024), 'each well under the transport\'s 4 MiB');
    assert.equal(raw.reduce((n, m) => n + m.Tasks.length, 0), 200);

    const cp = w.plane('w1');
    const seen: Assignments[] = [];
    cp.watchAssignments('w1', (a) => seen.push(a));
    await waitFor('the first assignments', () => seen.length > 0);
    assert.equal(seen.length, 1, 'one change for the whole set');
    assert.equal(seen[0]!.tasks.size, 200);

    // Cut off; t0 is deleted meanwhile; back, the new session's set says so.
    w.net.partition('w1:2377');
    await waitFor('the session lost', () => cp.connectedTo === undefined, 5000);
    await w.store.txn().delete('tasks', w.store.get('tasks', 't0')!).commit();
    w.net.heal('w1:2377');
    await waitFor('t0 removed on the new session', () => seen.some((a) => a.removed.has('t0')), 5000);
    assert.equal(seen[seen.length - 1]!.tasks.size, 199);
  } finally { await w.close(); }
});

test('a container\'s attachment, named once the engine made it: its name and short ID reach the views; only its own node may name it', async () => {
  const w = await world({ nodes: ['w1', 'w2'] });
  const allocator = startAllocator({ store: w.store, log: silentLogger });
  try {
    w.dispatcher(M1).setLeading(w.store);
    const now = nowIso();
    await w.store.txn().create('networks', { ID: 'app', Version: { Index: 0 }, CreatedAt: now, UpdatedAt: now, Spec: { Name: 'app', Attachable: true, DriverConfiguration: { Name: 'overlay' } } }).commit();
    await untilStore(w.store, () => !!w.store.get('networks', 'app')?.IPAM, 'the network allocated');
    const cp1 = w.plane('w1');
    w.agent('w1', cp1);
    const cp2 = w.plane('w2');
    w.agent('w2', cp2);
    await untilStore(w.store, () => ['w1', 'w2'].every((id) => w.store.get('nodes', id)!.Status.State === 'ready'), 'both nodes ready');
    // `docker run --network app` without --name: no name when the address is asked for.
    const a = await cp1.attachNetwork({ Target: 'app', Aliases: ['db'] });
    assert.equal((w.store.get('tasks', a.AttachmentID)!.Spec.NetworkAttachmentSpec as { ContainerID?: string }).ContainerID, '');
    await assert.rejects(cp2.nameAttachment({ AttachmentID: a.AttachmentID, Container: 'stolen', Aliases: [] }), /not found/);
    await cp1.nameAttachment({ AttachmentID: a.AttachmentID, Container: 'eager_turing', Aliases: ['0123456789ab', 'db'] });
    const t = w.store.get('tasks', a.AttachmentID)!;
    assert.equal((t.Spec.NetworkAttachmentSpec as { ContainerID?: string }).ContainerID, 'eager_turing');
    assert.deepEqual(t.Spec.Networks?.[0]?.Aliases, ['db', '0123456789ab']);
    assert.deepEqual(t.NetworksAttachments?.[0]?.Aliases, ['db', '0123456789ab'], 'where the views read them');
  } finally {
    allocator.stop();
    await w.close();
  }
});

test('network views: in the first message, then on change for the nodes on the network only; unchanged views are not sent', async () => {
  const w = await world({ nodes: ['w1', 'w2', 'w3'] });
  const allocator = startAllocator({ store: w.store, log: silentLogger });
  try {
    w.dispatcher(M1).setLeading(w.store);
    const now = nowIso();
    await w.store.txn().create('networks', { ID: 'back', Version: { Index: 0 }, CreatedAt: now, UpdatedAt: now, Spec: { Name: 'back', DriverConfiguration: { Name: 'overlay' } } }).commit();
    await untilStore(w.store, () => !!w.store.get('networks', 'back')?.IPAM, 'the network allocated');
    const views = new Map<string, SessionMessage[]>();
    const streams = ['w1', 'w2', 'w3'].map((id) => {
      views.set(id, []);
      return w.net.channel(peer(id), M1).stream(Session, { SessionID: `s-${id}`, Description: describe(id) }, (m) => { if (m.NetworkView) views.get(id)!.push(m); });
    });
    const last = (id: string) => views.get(id)!.at(-1)?.NetworkView;
    await waitFor('first views', () => ['w1', 'w2', 'w3'].every((id) => views.get(id)!.length === 1));
    assert.deepEqual(last('w1'), { Networks: [], Services: [], Endpoints: [], LoadBalancers: [] });
    assert.equal(views.get('w1')![0]!.Full, true, 'in the session\'s first message');

    const svc = makeService('web', { template: { ContainerSpec: { Image: 'img:1' }, Networks: [{ Target: 'back', Aliases: ['www'] }] } });
    await w.store.txn().create('services', svc)
      .create('tasks', makeTask('t1', { ServiceID: 'web', NodeID: 'w1', Spec: svc.Spec.TaskTemplate!, Status: { Timestamp: now, State: 'new', Message: 'created' } }))
      .create('tasks', makeTask('t2', { ServiceID: 'web', NodeID: 'w2', Spec: svc.Spec.TaskTemplate!, Status: { Timestamp: now, State: 'new', Message: 'created' } }))
      .commit();
    await untilStore(w.store, () => ['t1', 't2'].every((id) => w.store.get('tasks', id)!.Status.State === 'pending'), 'tasks allocated');
    const assign = (id: string, state: TaskStatus['State']) => w.store.mutate('tasks', id, (t) => { t.Status = { Timestamp: now, State: state, Message: state }; return t; });
    await assign('t1', 'assigned');
    await assign('t2', 'assigned');
    await waitFor('w1 sees both endpoints and both LB addresses', () => last('w1')?.Endpoints.length === 2 && last('w1')?.LoadBalancers.length === 2);
    const v1 = last('w1')!;
    assert.deepEqual(v1.Networks.map((n) => [n.ID, n.Subnet]), [['back', '10.0.0.0/24']]);
    assert.ok(v1.Networks[0]!.LBAddr);
    assert.deepEqual(v1.Services.map((s) => [s.ID, s.Aliases]), [['web', [{ NetworkID: 'back', Aliases: ['www'] }]]]);
    assert.deepEqual(v1.Endpoints.map((e) => [e.TaskID, e.NodeAddr, e.Running]), [['t1', 'w1:2377', false], ['t2', 'w2:2377', false]]);
    assert.equal(last('w3')?.Networks.length, 0, 'w3 has nothing on back');
    const w3Count = views.get('w3')!.length;

    // t2 runs: w1 learns it; a step that changes nothing a view shows sends nothing.
    await assign('t2', 'preparing');
    await assign('t2', 'running');
    await waitFor('w1 sees t2 running', () => last('w1')?.Endpoints.find((e) => e.TaskID === 't2')?.Running === true);
    const w1Count = views.get('w1')!.length;
    await assign('t1', 'preparing');
    await assign('t1', 'starting');
    await assign('t1', 'running');
    await waitFor('w2 sees t1 running', () => last('w2')?.Endpoints.find((e) => e.TaskID === 't1')?.Running === true);
    await waitFor('w1 sees t1 running', () => last('w1')?.Endpoints.find((e) => e.TaskID === 't1')?.Running === true);
    assert.equal(views.get('w1')!.length, w1Count + 1, 'preparing and starting sent no view');
    assert.equal(views.get('w3')!.length, w3Count, 'a node off the network is not disturbed');
    for (const s of streams) s.cancel();
  } finally {
    allocator.stop();
    await w.close();
  }
});

test('network views: the encrypted overlays\' keys go to the nodes on an encrypted network only, again at each step of a rotation', async () => {
  const box = new SecretBox(SecretBox.generateKey());
  const reader = new NetworkKeyReader(box);
  let storeRef: Store | undefined;
  const w = await world({ nodes: ['w1', 'w2'], networkKeys: () => reader.keys(storeRef?.list('cluster')[0]) });
  storeRef = w.store;
  let clock = 5_000;
  const allocator = startAllocator({ store: w.store, log: silentLogger });
  const keys = startNetworkKeys({ store: w.store, log: silentLogger, sealer: box, now: () => clock, timing: { periodMs: 60_000, stepMs: 10 } });
  try {
    w.dispatcher(M1).setLeading(w.store);
    const now = nowIso();
    await w.store.txn().create('networks', { ID: 'sec', Version: { Index: 0 }, CreatedAt: now, UpdatedAt: now, Spec: { Name: 'sec', DriverConfiguration: { Name: 'overlay', Options: { encrypted: '' } } } }).commit();
    await untilStore(w.store, () => !!w.store.get('networks', 'sec')?.IPAM && !!w.store.list('cluster')[0]!.NetworkKeys, 'the network allocated, a key made');
    const svc = makeService('web', { template: { ContainerSpec: { Image: 'img:1' }, Networks: [{ Target: 'sec' }] } });
    await w.store.txn().create('services', svc)
      .create('tasks', makeTask('t1', { ServiceID: 'web', NodeID: 'w1', Spec: svc.Spec.TaskTemplate!, Status: { Timestamp: now, State: 'new', Message: 'created' } })).commit();
    await untilStore(w.store, () => w.store.get('tasks', 't1')!.Status.State === 'pending', 'task allocated');
    await w.store.mutate('tasks', 't1', (t) => { t.Status = { Timestamp: now, State: 'assigned', Message: 'assigned' }; return t; });
    const views = new Map<string, SessionMessage[]>();
    const streams = ['w1', 'w2'].map((id) => {
      views.set(id, []);
      return w.net.channel(peer(id), M1).stream(Session, { SessionID: `s-${id}`, Description: describe(id) }, (m) => { if (m.NetworkView) views.get(id)!.push(m); });
    });
    const last = (id: string) => views.get(id)!.at(-1)?.NetworkView;
    await waitFor('w1 gets the network and the key', () => last('w1')?.Networks[0]?.Encrypted === true && last('w1')?.Keys?.length === 1);
    assert.deepEqual(last('w1')!.Keys!.map((k) => [k.Tag, k.Primary]), [[1, true]]);
    await waitFor('w2 has its first view', () => views.get('w2')!.length >= 1);
    assert.equal(last('w2')!.Keys, undefined, 'w2 has no task on the encrypted network: no key');

    // A rotation: each step reaches w1 in a view of its own; w2 hears nothing of it.
    const w2Count = views.get('w2')!.length;
    clock += 60_000;
    await w.store.txn().create('networks', { ID: 'other', Version: { Index: 0 }, CreatedAt: now, UpdatedAt: now, Spec: { Name: 'other', DriverConfiguration: { Name: 'overlay' } } }).commit();
    await waitFor('w1 receives with the new key', () => last('w1')?.Keys?.length === 2);
    assert.deepEqual(last('w1')!.Keys!.map((k) => [k.Tag, k.Primary]), [[1, true], [2, false]]);
    clock += 10;
    await waitFor('w1 sends with the new key', () => last('w1')?.Keys?.find((k) => k.Primary)?.Tag === 2);
    clock += 10;
    await waitFor('the old key gone from w1', () => last('w1')?.Keys?.length === 1);
    assert.equal(views.get('w2')!.length, w2Count, 'w2 gets no view for a key change');
    for (const s of streams) s.cancel();
  } finally {
    keys.stop();
    allocator.stop();
    await w.close();
  }
});

test('a follower\'s relay held up: the nodes it relays are not marked down for its silence; a direct node and a relayed node silent while the relay speaks are', async () => {
  // Period 2 s: beats every 1 s, down after 3 s. 22 nodes behind the relay
  // (RELAY_MIN_NODES is 20), one direct.
  const relayed = Array.from({ length: 22 }, (_, i) => `r${i + 1}`);
  const w = await world({ periodMs: 2000, nodes: [...relayed, 'd1'] });
  try {
    w.dispatcher(M1).setLeading(w.store);
    const relay = w.net.channel(peer('mgr-m2', 'manager'), M1);
    const direct = w.net.channel(peer('d1'), M1);
    const For = (id: string) => ({ NodeID: id, Role: 'worker' as const, Addr: `${id}:2377` });
    const streams = relayed.map((id) => relay.stream(RelaySession, { For: For(id), Req: { SessionID: `s-${id}`, Description: describe(id) } }, () => undefined));
    streams.push(direct.stream(Session, { SessionID: 's-d1', Description: describe('d1') }, () => undefined));
    await untilStore(w.store, () => [...relayed, 'd1'].every((id) => w.store.get('nodes', id)!.Status.State === 'ready'), 'every node registered');
    const t0 = Date.now();
    const at = (): number => Date.now() - t0;
    // r21 never beats (down at ~3 s, its relay speaking); r1 and d1 beat until 2 s;
    // the relay falls silent from 3.5 s to 6 s, then sends what it held.
    const beating = (id: string): boolean => id !== 'r21' && ((id !== 'r1' && id !== 'd1') || at() < 2000);
    const relaySilent = (): boolean => at() >= 3500 && at() < 6000;
    const ticker = setInterval(() => {
      if (beating('d1')) void direct.unary(Heartbeat, { SessionID: 's-d1' }, { timeoutMs: 1000 }).catch(() => undefined);
      if (relaySilent()) return;
      const Beats = relayed.filter((id) => beating(id) || (id === 'r1' && at() >= 6000)).map((id) => ({ For: For(id), SessionID: `s-${id}` }));
      void relay.unary(RelayHeartbeats, { Beats }, { timeoutMs: 1000 }).catch(() => undefined);
    }, 100);
    try {
      await untilStore(w.store, () => w.store.get('nodes', 'r21')!.Status.State === 'down', 'r21 down: silent while its relay spoke', 10_000);
      assert.ok(at() < 3500, `r21 down at ${at()} ms, before the relay's silence`);
      await untilStore(w.store, () => w.store.get('nodes', 'd1')!.Status.State === 'down', 'd1 down: a direct node has no relay to wait for', 10_000);
      await waitFor('the relay speaking again', () => at() >= 6500, 10_000);
      assert.equal(w.store.get('nodes', 'r1')!.Status.State, 'ready', 'r1 was due at ~5 s, in its relay\'s silence, and waited for it');
      assert.deepEqual(relayed.filter((id) => w.store.get('nodes', id)!.Status.State === 'down'), ['r21']);
    } finally {
      clearInterval(ticker);
      for (const s of streams) s.cancel();
    }
  } finally { await w.close(); }
});
