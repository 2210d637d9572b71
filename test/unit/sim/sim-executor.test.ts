import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SimExecutor } from '../../../src/sim/sim-executor';
import { TASK_ID_LABEL, type ContainerCreate } from '../../../src/agent/executor/container-config';
import type { ContainerEvent } from '../../../src/agent/executor/executor';

const create = (name: string, taskId: string): ContainerCreate => ({ name, body: { Image: 'x:1', Labels: { [TASK_ID_LABEL]: taskId } } } as unknown as ContainerCreate);

test('simulated containers: create is idempotent per name and task, start runs, stop and remove are heard as events', async () => {
  const ex = new SimExecutor({ hostname: 'sim-1', nanoCPUs: 4e9, memoryBytes: 8 * 1024 ** 3 });
  const events: ContainerEvent[] = [];
  const w = ex.watchEvents((e) => events.push(e));
  await w.ready;
  const id = await ex.create(create('web.1.t1', 't1'));
  assert.equal(await ex.create(create('web.1.t1', 't1')), id, 'the same container for the same task');
  await ex.start(id);
  assert.equal(ex.running, 1);
  assert.deepEqual((await ex.listTaskContainers()).map((c) => [c.taskId, c.running]), [['t1', true]]);
  await ex.stop(id);
  await ex.remove(id);
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(events.map((e) => e.type), ['die', 'destroy']);
  assert.equal(await ex.inspect(id), undefined);
  await assert.rejects(ex.start('nope'), /No such container: nope/);
  await assert.rejects(ex.create({ name: 'x', body: { Labels: {} } } as unknown as ContainerCreate), /needs its task label/);
  assert.equal((await ex.describeNode()).Resources.NanoCPUs, 4e9);
  w.close();
});

test('simulated engines answer a bounded number of calls per event-loop turn, across all the nodes of a process', async () => {
  const nodes = [1, 2, 3, 4].map((i) => new SimExecutor({ hostname: `sim-${i}`, nanoCPUs: 1e9, memoryBytes: 1024 ** 3 }));
  let answered = 0;
  const calls = Array.from({ length: 300 }, (_, i) => nodes[i % 4]!.inspect(`c${i}`).then(() => { answered++; }));
  // What was answered at each turn of the loop (another callback's turn comes between the batches).
  const seen: number[] = [0];
  while (answered < 300 && seen.length < 50) {
    await new Promise((resolve) => setImmediate(resolve));
    seen.push(answered);
  }
  await Promise.all(calls);
  assert.equal(answered, 300);
  assert.ok(seen.length >= 5, `300 answers took ${seen.length} turns`);
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i]! - seen[i - 1]! <= 64, `at most 64 per turn: ${seen.join(',')}`);
});
