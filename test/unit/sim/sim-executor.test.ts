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
