import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Node, Task, TaskSpec } from '../../../src/model/types';
import { type NodeLoad, explain, failingKey, schedule } from '../../../src/manager/scheduler/scheduler';
import { NS, makeNode } from '../orchestrator/fixtures';

let seq = 0;
function tasks(n: number, serviceId: string, spec: TaskSpec = {}, extra: Partial<Task> = {}): Task[] {
  return Array.from({ length: n }, () => ({
    ID: `task${++seq}`, Version: { Index: 1 }, CreatedAt: 't', UpdatedAt: 't', Labels: {}, Spec: spec,
    ServiceID: serviceId, Slot: seq, Status: { Timestamp: 't', State: 'pending' as const, Message: 'pending task scheduling' }, DesiredState: 'running' as const, ...extra,
  }));
}

function load(entries: Record<string, { tasks?: number; byService?: Record<string, number>; cpu?: number; mem?: number }>): Map<string, NodeLoad> {
  return new Map(Object.entries(entries).map(([id, l]) => [id, {
    tasks: l.tasks ?? 0, byService: new Map(Object.entries(l.byService ?? {})), nanoCPUs: l.cpu ?? 0, memoryBytes: l.mem ?? 0,
  }]));
}

function perNode(assignments: Array<{ nodeId: string }>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const a of assignments) out[a.nodeId] = (out[a.nodeId] ?? 0) + 1;
  return out;
}

const three = (): Node[] => [makeNode('n1'), makeNode('n2'), makeNode('n3')];

test('tasks spread evenly over the nodes', () => {
  const r = schedule({ nodes: three(), tasks: tasks(7, 's') });
  assert.equal(r.failures.length, 0);
  assert.deepEqual(Object.values(perNode(r.assignments)).sort(), [2, 2, 3]);
});

test('fewest tasks of the service first, then fewest tasks overall', () => {
  const r = schedule({
    nodes: three(),
    load: load({ n1: { tasks: 1, byService: { s: 1 } }, n2: { tasks: 9 }, n3: { tasks: 0 } }),
    tasks: tasks(2, 's'),
  });
  assert.deepEqual(r.assignments.map((a) => a.nodeId), ['n3', 'n2']);
  const r2 = schedule({ nodes: three(), load: load({ n1: { tasks: 1, byService: { s: 1 } }, n2: { tasks: 9 } }), tasks: tasks(4, 's') });
  assert.deepEqual(perNode(r2.assignments), { n1: 1, n2: 1, n3: 2 });
});

test('nodes where the service keeps failing are tried last', () => {
  const r = schedule({ nodes: three(), tasks: tasks(1, 's'), failing: new Set([failingKey('n1', 's')]) });
  assert.equal(r.assignments[0]!.nodeId, 'n2');
});

test('constraints filter nodes; nothing fitting is explained', () => {
  const nodes = [makeNode('n1', { labels: { zone: 'a' } }), makeNode('n2', { labels: { zone: 'b' } })];
  const spec: TaskSpec = { Placement: { Constraints: ['node.labels.zone==a'] } };
  const r = schedule({ nodes, tasks: tasks(3, 's', spec) });
  assert.deepEqual(perNode(r.assignments), { n1: 3 });
  const none = schedule({ nodes, tasks: tasks(1, 's', { Placement: { Constraints: ['node.labels.zone==c'] } }) });
  assert.deepEqual(none.failures.map((f) => f.message), ['no suitable node (scheduling constraints not satisfied on 2 nodes)']);
});

test('drained, paused and down nodes are not available for new tasks', () => {
  const nodes = [makeNode('n1', { availability: 'drain' }), makeNode('n2', { availability: 'pause' }), makeNode('n3', { state: 'down' })];
  const r = schedule({ nodes, tasks: tasks(1, 's') });
  assert.deepEqual(r.failures[0]!.message, 'no suitable node (3 nodes not available for new tasks)');
  const one = schedule({ nodes: [makeNode('n1', { availability: 'drain' })], tasks: tasks(1, 's') });
  assert.equal(one.failures[0]!.message, 'no suitable node (1 node not available for new tasks)');
  assert.equal(schedule({ nodes: [], tasks: tasks(1, 's') }).failures[0]!.message, 'no suitable node');
});

test('explanations combine, most frequent first, like SwarmKit', () => {
  const nodes = [makeNode('n1', { labels: { zone: 'b' } }), makeNode('n2', { labels: { zone: 'b' } }), makeNode('n3', { availability: 'drain' })];
  const r = schedule({ nodes, tasks: tasks(1, 's', { Placement: { Constraints: ['node.labels.zone==a'] } }) });
  assert.equal(r.failures[0]!.message, 'no suitable node (scheduling constraints not satisfied on 2 nodes; 1 node not available for new tasks)');
  assert.equal(explain({ resources: 1, constraints: 1 }), 'no suitable node (insufficient resources on 1 node; scheduling constraints not satisfied on 1 node)');
});

test('reservations: tasks fill nodes until resources run out, the rest are explained', () => {
  const nodes = [makeNode('n1', { cpus: 2 }), makeNode('n2', { cpus: 1 })];
  const spec: TaskSpec = { Resources: { Reservations: { NanoCPUs: 1 * NS } } };
  const r = schedule({ nodes, tasks: tasks(4, 's', spec) });
  assert.deepEqual(perNode(r.assignments), { n1: 2, n2: 1 });
  assert.deepEqual(r.failures.map((f) => f.message), ['no suitable node (insufficient resources on 2 nodes)']);
  const busy = schedule({ nodes, load: load({ n1: { cpu: 2 * NS } }), tasks: tasks(2, 's', spec) });
  assert.deepEqual(perNode(busy.assignments), { n2: 1 });
  const mem = schedule({ nodes: [makeNode('n1', { memory: 1024 ** 3 })], tasks: tasks(1, 's', { Resources: { Reservations: { MemoryBytes: 2 * 1024 ** 3 } } }) });
  assert.equal(mem.failures[0]!.message, 'no suitable node (insufficient resources on 1 node)');
});

test('MaxReplicas caps the tasks of a service per node', () => {
  const spec: TaskSpec = { Placement: { MaxReplicas: 1 } };
  const r = schedule({ nodes: three(), load: load({ n1: { tasks: 1, byService: { s: 1 } } }), tasks: tasks(3, 's', spec) });
  assert.deepEqual(perNode(r.assignments), { n2: 1, n3: 1 });
  assert.equal(r.failures[0]!.message, 'no suitable node (max replicas per node limit exceed)');
});

test('platforms: x86_64 is amd64, aarch64 is arm64', () => {
  const nodes = [makeNode('n1', { arch: 'x86_64' }), makeNode('n2', { arch: 'aarch64' })];
  const r = schedule({ nodes, tasks: tasks(2, 's', { Placement: { Platforms: [{ Architecture: 'arm64', OS: 'linux' }] } }) });
  assert.deepEqual(perNode(r.assignments), { n2: 2 });
  const none = schedule({ nodes, tasks: tasks(1, 's', { Placement: { Platforms: [{ Architecture: 's390x', OS: 'linux' }] } }) });
  assert.equal(none.failures[0]!.message, 'no suitable node (unsupported platform on 2 nodes)');
});

test('spread preference: tasks divide evenly among label values first, then among nodes', () => {
  // zone a has 3 nodes, zone b 1 node: spreading puts half the tasks in each zone.
  const nodes = [
    makeNode('a1', { labels: { zone: 'a' } }), makeNode('a2', { labels: { zone: 'a' } }), makeNode('a3', { labels: { zone: 'a' } }),
    makeNode('b1', { labels: { zone: 'b' } }),
  ];
  const spec: TaskSpec = { Placement: { Preferences: [{ Spread: { SpreadDescriptor: 'node.labels.zone' } }] } };
  const r = schedule({ nodes, tasks: tasks(6, 's', spec) });
  assert.deepEqual(perNode(r.assignments), { a1: 1, a2: 1, a3: 1, b1: 3 });
  // Existing tasks count: zone b already has 3.
  const more = schedule({ nodes, load: load({ b1: { tasks: 3, byService: { s: 3 } } }), tasks: tasks(3, 's', spec) });
  assert.deepEqual(perNode(more.assignments), { a1: 1, a2: 1, a3: 1 });
});

test('spread: nodes without the label form their own "" branch; a branch that is full leaves its share to the others', () => {
  const nodes = [makeNode('a1', { labels: { zone: 'a' } }), makeNode('x1'), makeNode('c1', { labels: { zone: 'c' }, cpus: 1 })];
  const spec: TaskSpec = {
    Placement: { Preferences: [{ Spread: { SpreadDescriptor: 'node.labels.zone' } }] },
    Resources: { Reservations: { NanoCPUs: 1 * NS } },
  };
  const r = schedule({ nodes, tasks: tasks(6, 's', spec) });
  // Two each per branch would be even; c1 has room for one, its second task goes to another branch.
  assert.deepEqual(perNode(r.assignments), { x1: 3, a1: 2, c1: 1 });
});

test('nested spread preferences', () => {
  const nodes: Node[] = [];
  for (const dc of ['east', 'west']) for (const rack of ['r1', 'r2']) for (const k of [1, 2]) nodes.push(makeNode(`${dc}-${rack}-${k}`, { labels: { dc, rack } }));
  nodes.push(makeNode('west-r3-1', { labels: { dc: 'west', rack: 'r3' } }));
  const spec: TaskSpec = { Placement: { Preferences: [{ Spread: { SpreadDescriptor: 'node.labels.dc' } }, { Spread: { SpreadDescriptor: 'node.labels.rack' } }] } };
  const r = schedule({ nodes, tasks: tasks(12, 's', spec) });
  const by = (pred: (id: string) => boolean) => r.assignments.filter((a) => pred(a.nodeId)).length;
  assert.equal(by((id) => id.startsWith('east')), 6);
  assert.equal(by((id) => id.startsWith('west')), 6);
  assert.equal(by((id) => id.startsWith('west-r1')), 2);
  assert.equal(by((id) => id.startsWith('west-r3')), 2);
  assert.equal(by((id) => id.startsWith('east-r1')), 3);
});

test('global tasks arrive with their node: it is checked, not chosen', () => {
  const nodes = [makeNode('n1'), makeNode('n2', { labels: { x: '1' } }), makeNode('n3', { availability: 'drain' })];
  const spec: TaskSpec = { Placement: { Constraints: ['node.labels.x==1'] } };
  const ok = tasks(1, 'g', spec, { NodeID: 'n2', Slot: undefined });
  const nope = tasks(1, 'g', spec, { NodeID: 'n1', Slot: undefined });
  const drained = tasks(1, 'g', {}, { NodeID: 'n3', Slot: undefined });
  const gone = tasks(1, 'g', {}, { NodeID: 'n9', Slot: undefined });
  const r = schedule({ nodes, tasks: [...ok, ...nope, ...drained, ...gone] });
  assert.deepEqual(r.assignments, [{ taskId: ok[0]!.ID, nodeId: 'n2' }]);
  assert.deepEqual(r.failures, [
    { taskId: nope[0]!.ID, message: 'no suitable node (scheduling constraints not satisfied on 1 node)' },
    { taskId: drained[0]!.ID, message: 'no suitable node (1 node not available for new tasks)' },
  ]);
});

test('only tasks that wait for a node are taken', () => {
  const ts = [
    ...tasks(1, 's', {}, { Status: { Timestamp: 't', State: 'pending', Message: '' } }),
    ...tasks(1, 's', {}, { DesiredState: 'ready' }),
    ...tasks(1, 's', {}, { DesiredState: 'complete' }),
    ...tasks(1, 's', {}, { DesiredState: 'shutdown' }),
    ...tasks(1, 's', {}, { Status: { Timestamp: 't', State: 'assigned', Message: '' }, NodeID: 'n1' }),
  ];
  const r = schedule({ nodes: three(), tasks: ts });
  assert.equal(r.assignments.length, 3);
});

test('several services in one call keep their own spreading', () => {
  const a = tasks(3, 'a');
  const r = schedule({ nodes: three(), tasks: [...a, ...tasks(3, 'b')] });
  const ofA = new Set(a.map((t) => t.ID));
  assert.equal(Object.keys(perNode(r.assignments.filter((x) => ofA.has(x.taskId)))).length, 3, 'a on every node');
  assert.deepEqual(Object.values(perNode(r.assignments)), [2, 2, 2]);
});

test('100,000 tasks on 1,000 nodes with a constraint and a spread preference in well under 2 s', () => {
  const nodes = Array.from({ length: 1000 }, (_, i) => makeNode(`node${i}`, { labels: { zone: `z${i % 10}`, disk: i % 3 ? 'ssd' : 'hdd' } }));
  const spec: TaskSpec = { Placement: { Constraints: ['node.labels.disk==ssd'], Preferences: [{ Spread: { SpreadDescriptor: 'node.labels.zone' } }] } };
  const ts = tasks(100_000, 'big', spec);
  const t0 = performance.now();
  const r = schedule({ nodes, tasks: ts });
  const ms = performance.now() - t0;
  assert.equal(r.assignments.length, 100_000);
  const counts = perNode(r.assignments);
  assert.equal(Object.keys(counts).length, 666, 'every ssd node, no hdd node');
  for (let z = 0; z < 10; z++) {
    const inZone = Object.entries(counts).filter(([id]) => Number(id.slice(4)) % 10 === z).map(([, n]) => n);
    assert.equal(inZone.reduce((a, b) => a + b, 0), 10_000, 'each zone gets a tenth');
    assert.ok(Math.max(...inZone) - Math.min(...inZone) <= 1, 'even within the zone');
  }
  assert.ok(ms < 2000, `took ${ms.toFixed(0)} ms`);
});

test('a task the scheduler cannot read fails alone; every other task is placed', () => {
  const good = tasks(3, 'good');
  const badPlatforms = tasks(1, 'bad1', { Placement: { Platforms: 'linux/amd64' as never } });
  const badConstraints = tasks(1, 'bad2', { Placement: { Constraints: 'node.role==manager' as never } });
  const throwing = tasks(1, 'bad3')[0]!;
  Object.defineProperty(throwing, 'Spec', { get() { throw new Error('corrupt task'); } });
  const late = tasks(2, 'late');
  const r = schedule({ nodes: three(), tasks: [...badPlatforms, ...good, throwing, ...badConstraints, ...late] });
  assert.deepEqual(r.assignments.map((a) => a.taskId).sort(), [...good, ...late].map((t) => t.ID).sort());
  const why = new Map(r.failures.map((f) => [f.taskId, f.message]));
  assert.equal(why.size, 3);
  assert.equal(why.get(badPlatforms[0]!.ID), 'invalid task spec, cannot schedule: Placement.Platforms is not a list of platforms');
  assert.equal(why.get(badConstraints[0]!.ID), 'invalid task spec, cannot schedule: Placement.Constraints is not a list of strings');
  assert.equal(why.get(throwing.ID), 'invalid task spec, cannot schedule: corrupt task');
});

test('a preassigned (global) task with a bad spec fails alone too', () => {
  const bad = tasks(1, 'g', { Placement: { Platforms: [null] as never } }, { NodeID: 'n1' });
  const ok = tasks(1, 'g', {}, { NodeID: 'n2' });
  const r = schedule({ nodes: three(), tasks: [...bad, ...ok] });
  assert.deepEqual(r.assignments, [{ taskId: ok[0]!.ID, nodeId: 'n2' }]);
  assert.deepEqual(r.failures.map((f) => f.taskId), [bad[0]!.ID]);
});
