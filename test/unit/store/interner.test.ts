import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StringInterner } from '../../../src/store/interner';
import { compactTask } from '../../../src/store/codec';
import { MemoryBackend } from '../../../src/store/memory-backend';
import { Store } from '../../../src/store/store';
import { silentLogger } from '../../../src/common/log';
import type { Task } from '../../../src/model/types';

test('the interner gives back equal values and starts again empty when full', () => {
  const strings = new StringInterner(3);
  assert.equal(strings.intern('a'), 'a');
  strings.intern('b'); strings.intern('a'); strings.intern('c');
  assert.equal(strings.size, 3);
  assert.equal(strings.intern('d'), 'd');
  assert.equal(strings.size, 1, 'a full table is cleared, not grown');
});

test('compactTask keeps every value and shares a frozen object for empty Labels, another for empty PortStatus', () => {
  const strings = new StringInterner();
  const parse = (): Record<string, unknown> => JSON.parse(JSON.stringify({
    ID: 't1', Labels: {}, ServiceID: 's1', NodeID: 'n1', DesiredState: 'running', CreatedAt: 'c', UpdatedAt: 'u',
    Status: { Timestamp: 'ts', State: 'running', Message: 'started', PortStatus: {}, ContainerStatus: { ContainerID: 'x' } },
  })) as Record<string, unknown>;
  const a = parse(); const b = parse();
  const before = structuredClone(a);
  compactTask(a, strings); compactTask(b, strings);
  assert.deepEqual(a, before);
  assert.equal(a.Labels, b.Labels);
  assert.ok(Object.isFrozen(a.Labels));
  const sa = a.Status as Record<string, unknown>; const sb = b.Status as Record<string, unknown>;
  assert.equal(sa.PortStatus, sb.PortStatus);
  assert.notEqual(a.Labels, sa.PortStatus, 'two objects: a clone must not make Labels and PortStatus one');
  assert.notEqual(sa.ContainerStatus, sb.ContainerStatus, 'objects with content stay the task\'s own');
  const labelled = parse(); labelled.Labels = { k: 'v' };
  compactTask(labelled, strings);
  assert.deepEqual(labelled.Labels, { k: 'v' });
  assert.ok(!Object.isFrozen(labelled.Labels));
});

test('tasks read from the store share their empty Labels, and mutate still changes a copy', async () => {
  const store = await Store.open(new MemoryBackend(), silentLogger);
  const task = (id: string): Task => ({ ID: id, Version: { Index: 0 }, CreatedAt: 't', UpdatedAt: 't', Labels: {}, Spec: {}, ServiceID: 's1', NodeID: 'n1', Status: { Timestamp: 't', State: 'new', Message: '', PortStatus: {} }, DesiredState: 'running' });
  await store.txn().create('tasks', task('t1')).create('tasks', task('t2')).commit();
  const t1 = store.get('tasks', 't1')!; const t2 = store.get('tasks', 't2')!;
  assert.equal(t1.Labels, t2.Labels);
  assert.ok(Object.isFrozen(t1.Labels));
  await store.mutate('tasks', 't1', (t) => { t.Labels.role = 'db'; t.Status.PortStatus!.Ports = []; return t; });
  assert.deepEqual(store.get('tasks', 't1')!.Labels, { role: 'db' });
  assert.deepEqual(store.get('tasks', 't2')!.Labels, {});
  assert.deepEqual(store.tasksOfNode('n1').map((t) => t.ID).sort(), ['t1', 't2']);
});
