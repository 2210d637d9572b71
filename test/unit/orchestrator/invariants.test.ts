import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RestartCondition, Task, TaskState } from '../../../src/model/types';
import { SEC, World } from './fixtures';
import { UpdateWorld } from './update-fixtures';

// Seeded random walks through scaling, failures, node changes and updates,
// with random restart policies, update orders and retention limits. After
// every step the orchestrator must reach a fixpoint (World.settle throws
// otherwise) and keep its promises; once the cluster heals and the agent
// catches up, the service must converge.

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => { s = (s * 1664525 + 1013904223) >>> 0; return s / 2 ** 32; };
}

const NODES = ['a', 'b', 'c'];

function heal(w: World): void {
  for (const [id, n] of w.nodes) w.nodes.set(id, { ...n, Spec: { ...n.Spec, Availability: 'active' }, Status: { ...n.Status, State: 'ready' } });
}

for (let seed = 1; seed <= 25; seed++) {
  test(`services, random walk ${seed}: fixpoints, one wanted task per slot, convergence`, () => {
    const rand = rng(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const w = new UpdateWorld();
    w.retention = pick([0, 1, 2, 5, -1]);
    for (const id of NODES) w.addNode(id);
    const condition = pick<RestartCondition>(['any', 'any', 'on-failure', 'none']);
    const maxAttempts = pick([0, 0, 2]);
    const startFirst = rand() < 0.5;
    const global = rand() < 0.3;
    w.addService('s', {
      replicas: 3, global,
      update: { Order: startFirst ? 'start-first' : 'stop-first', Parallelism: pick([0, 1, 2]), Delay: pick([0, 0, 5e9]), FailureAction: pick(['continue', 'continue', 'pause', 'rollback'] as const) },
      template: { ContainerSpec: { Image: 'img:0' }, RestartPolicy: { Condition: condition, Delay: pick([0, 1e9, 5e9]), MaxAttempts: maxAttempts, Window: pick([0, 10e9]) } },
    });
    let version = 0;
    const key = (t: Task): string => (global ? t.NodeID ?? '' : String(t.Slot));
    for (let step = 0; step < 150; step++) {
      const s = w.services.get('s')!;
      const live = w.live('s');
      switch (Math.floor(rand() * 7)) {
        case 0: if (!global) s.Spec.Mode = { Replicated: { Replicas: Math.floor(rand() * 6) } }; break;
        case 1: if (live.length) w.setState(pick(live).ID, pick<TaskState>(['failed', 'complete', 'rejected'])); break;
        case 2: { const id = pick(NODES); const n = w.nodes.get(id)!; w.nodes.set(id, { ...n, Spec: { ...n.Spec, Availability: pick(['active', 'active', 'drain', 'pause'] as const) } }); break; }
        case 3: { const id = pick(NODES); const n = w.nodes.get(id)!; w.nodes.set(id, { ...n, Status: { ...n.Status, State: pick(['ready', 'ready', 'down'] as const) } }); break; }
        case 4: // as the control API does: the old spec kept, the update status cleared
          w.services.set('s', { ...s, PreviousSpec: structuredClone(s.Spec), Spec: { ...s.Spec, TaskTemplate: { ...s.Spec.TaskTemplate, ContainerSpec: { Image: `img:${++version}` } } }, UpdateStatus: undefined });
          break;
        case 5: {
          const usable = [...w.nodes.values()].filter((n) => n.Status.State === 'ready' && n.Spec.Availability === 'active').map((n) => n.ID);
          if (usable.length) w.runAll('s', usable);
          break;
        }
        default: w.tick(Math.floor(rand() * 70) * SEC);
      }
      w.settle('s');
      const wanted = new Map<string, number>();
      for (const t of w.live('s')) wanted.set(key(t), (wanted.get(key(t)) ?? 0) + 1);
      // start-first runs the new task next to the old one for a while.
      for (const [k, n] of wanted) assert.ok(n <= (startFirst ? 2 : 1), `step ${step}: ${k} has ${n} wanted tasks`);
      // Slot numbers may have gaps (scale-down keeps nodes balanced), never more slots than replicas.
      if (!global) assert.ok(wanted.size <= w.services.get('s')!.Spec.Mode!.Replicated!.Replicas!, `step ${step}: too many slots`);
    }

    heal(w);
    for (let i = 0; i < 30; i++) { w.tick(61 * SEC); w.settle('s'); w.runAll('s', NODES); w.settle('s'); }
    if (condition !== 'any' || maxAttempts) return; // slots given up on legitimately stay down
    const want = global ? NODES.length : w.services.get('s')!.Spec.Mode!.Replicated!.Replicas!;
    const running = w.live('s').filter((t) => t.Status.State === 'running' && t.DesiredState === 'running');
    assert.equal(running.length, want, 'converged to the desired count');
    const st = w.services.get('s')!.UpdateStatus?.State;
    // A failure within Monitor may have paused the update (FailureAction pause, or a failing rollback).
    if (st === 'paused' || st === 'rollback_paused') return;
    const image = w.services.get('s')!.Spec.TaskTemplate!.ContainerSpec!.Image;
    assert.ok(running.every((t) => t.Spec.ContainerSpec?.Image === image), 'all up to date');
    assert.ok(st === undefined || st === 'completed' || st === 'rollback_completed', `update status ${st}`);
  });
}

for (let seed = 1; seed <= 25; seed++) {
  test(`replicated job, random walk ${seed}: never above MaxConcurrent, completes exactly TotalCompletions`, () => {
    const rand = rng(1000 + seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const w = new World();
    w.retention = pick([0, 2, 5]);
    for (const id of NODES) w.addNode(id);
    const max = pick([1, 2, 3]);
    const total = pick([1, 3, 7]);
    w.addService('j', { replicatedJob: { MaxConcurrent: max, TotalCompletions: total }, template: { ContainerSpec: { Image: 'x' }, RestartPolicy: { Delay: pick([0, 1e9]) } } });
    const unfinished = (): Task[] => w.of('j').filter((t) => (t.DesiredState === 'complete' || t.DesiredState === 'ready') && t.Status.State !== 'complete');
    for (let step = 0; step < 200; step++) {
      switch (Math.floor(rand() * 5)) {
        case 0: { const u = unfinished(); if (u.length) w.setState(pick(u).ID, pick<TaskState>(['failed', 'complete', 'complete'])); break; }
        case 1: w.runAll('j', NODES); break;
        case 2: { const id = pick(NODES); const n = w.nodes.get(id)!; w.nodes.set(id, { ...n, Spec: { ...n.Spec, Availability: pick(['active', 'active', 'drain'] as const) } }); break; }
        default: w.tick(Math.floor(rand() * 5) * SEC);
      }
      w.settle('j');
      assert.ok(unfinished().length <= max, `step ${step}: more than ${max} running`);
    }
    heal(w);
    for (let i = 0; i < 40; i++) {
      w.tick(2 * SEC); w.settle('j'); w.runAll('j', NODES);
      for (const t of w.of('j')) if (t.Status.State === 'running') w.setState(t.ID, 'complete');
      w.settle('j');
    }
    const done = w.of('j').filter((t) => t.Status.State === 'complete');
    assert.equal(new Set(done.map((t) => t.Slot ?? 0)).size, total);
    assert.equal(done.length, total, 'no slot completed twice');
  });
}
