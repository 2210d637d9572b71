import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Service, Task, TaskState } from '../../../src/model/types';
import { silentLogger } from '../../../src/common/log';
import { nowIso } from '../../../src/common/time';
import { MemoryBackend } from '../../../src/store/memory-backend';
import { Store } from '../../../src/store/store';
import { startOrchestrator } from '../../../src/manager/orchestrator/loop';
import { startScheduler } from '../../../src/manager/scheduler/loop';
import { startAllocator } from '../../../src/manager/allocator/loop';
import { makeNode, makeService } from './fixtures';
import { untilStore as until } from '../../helpers/store-wait';

// The rolling updater through the orchestrator loop: the loop remembers when
// it saw each task run (a failed task's status no longer says), and wakes the
// service up for Delay and for the end of the Monitor period.

const MS = 1_000_000;


const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function cluster() {
  const store = await Store.open(new MemoryBackend(), silentLogger);
  await store.txn().create('nodes', makeNode('node1')).commit();
  const orchestrator = startOrchestrator({ store, log: silentLogger });
  const scheduler = startScheduler({ store, log: silentLogger });
  const allocator = startAllocator({ store, log: silentLogger });
  // Plays the agent: whatever is assigned and wanted runs, whatever is asked to stop stops.
  const agent = store.subscribe(() => {
    for (const t of store.list('tasks')) {
      if (t.DesiredState === 'running' && t.Status.State === 'assigned') void report(store, t.ID, 'running');
      if ((t.DesiredState === 'shutdown' || t.DesiredState === 'remove') && (t.Status.State === 'running' || t.Status.State === 'assigned')) void report(store, t.ID, 'shutdown');
    }
  });
  const stop = async (): Promise<void> => {
    agent();
    orchestrator.stop();
    allocator.stop();
    scheduler.stop();
    await Promise.all([orchestrator.settled(), allocator.settled(), scheduler.settled()]);
    await store.close();
  };
  return { store, stop };
}

async function report(store: Store, id: string, state: TaskState): Promise<void> {
  await store.mutate('tasks', id, (t) => {
    if (t.Status.State === state) return undefined;
    t.Status = { Timestamp: nowIso(), State: state, Message: state };
    return t;
  }).catch(() => undefined);
}

const tasksOf = (store: Store, id: string): Task[] => store.tasksOfService(id);
const running = (store: Store, id: string, image: string): Task[] =>
  tasksOf(store, id).filter((t) => t.Status.State === 'running' && t.DesiredState === 'running' && t.Spec.ContainerSpec?.Image === image);

async function updateImage(store: Store, id: string, image: string): Promise<void> {
  const cur = store.get('services', id)!;
  const next: Service = { ...cur, PreviousSpec: cur.Spec, Spec: { ...cur.Spec, TaskTemplate: { ...cur.Spec.TaskTemplate, ContainerSpec: { Image: image } } } };
  delete next.UpdateStatus;
  await store.txn().update('services', next, cur).commit();
}

test('loop: a new task failing within Monitor pauses; one failing after Monitor does not', async () => {
  const { store, stop } = await cluster();
  try {
    const update = { Parallelism: 1, Delay: 1000 * MS, Monitor: 300 * MS, FailureAction: 'pause' as const };
    await store.txn()
      .create('services', makeService('late', { replicas: 2, update, template: { ContainerSpec: { Image: 'x:1' }, RestartPolicy: { Delay: 0 } } }))
      .create('services', makeService('early', { replicas: 2, update, template: { ContainerSpec: { Image: 'x:1' }, RestartPolicy: { Delay: 0 } } }))
      .commit();
    await until(store, () => running(store, 'late', 'x:1').length === 2 && running(store, 'early', 'x:1').length === 2, 'both services running');
    await updateImage(store, 'late', 'x:2');
    await updateImage(store, 'early', 'x:2');
    await until(store, () => running(store, 'late', 'x:2').length === 1 && running(store, 'early', 'x:2').length === 1, 'first slots replaced');

    // Within Monitor: paused, with the task's ID.
    const e = running(store, 'early', 'x:2')[0]!;
    await sleep(50);
    await report(store, e.ID, 'failed');
    await until(store, () => store.get('services', 'early')?.UpdateStatus?.State === 'paused', 'early paused');
    assert.equal(store.get('services', 'early')!.UpdateStatus!.Message, `update paused due to failure or early termination of task ${e.ID}`);

    // After Monitor (it ran 500 ms): still updating, and the second slot follows after Delay.
    const l = running(store, 'late', 'x:2')[0]!;
    await sleep(500);
    await report(store, l.ID, 'failed');
    await sleep(100);
    assert.equal(store.get('services', 'late')!.UpdateStatus!.State, 'updating');
    await until(store, () => running(store, 'late', 'x:2').length === 2, 'late updated', 5000);
    // Completed once the last worker's Delay and the final watch (Delay + 1 s) are over.
    await until(store, () => store.get('services', 'late')?.UpdateStatus?.State === 'completed', 'late completed', 8000);
    assert.equal(running(store, 'early', 'x:1').length, 1, 'the paused update replaced nothing more');
  } finally {
    await stop();
  }
});
