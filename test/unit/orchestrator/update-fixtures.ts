import type { ServiceSpec, Task, TaskState, UpdateConfig } from '../../../src/model/types';
import { nowIso } from '../../../src/common/time';
import { reconcileDeletedService, reconcileService } from '../../../src/manager/orchestrator/reconcile';
import type { Plan } from '../../../src/manager/orchestrator/task';
import { NS, SEC, World } from './fixtures';

// The orchestrator World plus what the loop observes for the rolling updater:
// when each task was first seen running (set when the test plays the agent).
export class UpdateWorld extends World {
  readonly runningSince = new Map<string, number>();
  since?: number;

  override setState(id: string, state: TaskState, extra: { exitCode?: number; node?: string } = {}): Task {
    const t = super.setState(id, state, extra);
    if (state === 'running' && !this.runningSince.has(id)) this.runningSince.set(id, this.now);
    return t;
  }

  override plan(serviceId: string): Plan {
    const service = this.services.get(serviceId);
    const tasks = [...this.tasks.values()].filter((t) => t.ServiceID === serviceId);
    return service
      ? reconcileService({
        service, tasks, nodes: this.nodes, now: this.now, newId: this.newId, retention: this.retention,
        observed: { runningSince: (id) => this.runningSince.get(id), since: this.since },
      })
      : reconcileDeletedService(tasks, this.nodes, this.now);
  }

  svc(id = 's') { return this.services.get(id)!; }
  status(id = 's') { return this.svc(id).UpdateStatus; }

  // One round of the agent and the orchestrator: everything assigned runs,
  // everything asked to stop stops, and the orchestrator reacts.
  step(id = 's'): void { this.runAll(id); this.settle(id); }

  // Rounds until nothing more happens at this instant.
  steps(id = 's', n = 6): void { for (let i = 0; i < n; i++) this.step(id); }

  // Tasks the orchestrator wants running (or about to), with what they run.
  wanted(id = 's'): string[] {
    return this.live(id).map((t) => `${t.Slot ?? t.NodeID}:${t.Spec.ContainerSpec?.Image}:${t.Status.State}`).sort();
  }

  runningCount(id = 's'): number {
    return this.of(id).filter((t) => t.Status.State === 'running').length;
  }

  runningImages(id = 's'): string[] {
    return this.of(id).filter((t) => t.Status.State === 'running').map((t) => t.Spec.ContainerSpec?.Image ?? '').sort();
  }

  // Tasks of the current spec that were created after `since`, newest last.
  newTasks(id = 's', image?: string): Task[] {
    const img = image ?? this.svc(id).Spec.TaskTemplate?.ContainerSpec?.Image;
    return this.of(id).filter((t) => t.Spec.ContainerSpec?.Image === img);
  }
}

export interface RunningOpts {
  update?: UpdateConfig;
  rollback?: UpdateConfig;
  restartDelayNs?: number;
  global?: boolean;
}

// A service of `replicas` tasks of img:1, all running, at T0.
export function runningService(replicas: number, o: RunningOpts = {}): UpdateWorld {
  const w = new UpdateWorld();
  w.addNode('a'); w.addNode('b');
  const s = w.addService('s', {
    replicas, global: o.global, update: o.update,
    template: { ContainerSpec: { Image: 'img:1' }, RestartPolicy: { Delay: o.restartDelayNs ?? 0 } },
  });
  if (o.rollback) s.Spec.RollbackConfig = o.rollback;
  w.settle('s');
  w.runAll('s');
  w.settle('s');
  return w;
}

// What the control API does on `docker service update`: the new spec, the
// old one kept as PreviousSpec, UpdateStatus cleared.
export function updateService(w: UpdateWorld, change: (spec: ServiceSpec) => void, id = 's'): void {
  const s = w.svc(id);
  const previous = structuredClone(s.Spec);
  const next = structuredClone(s.Spec);
  change(next);
  w.services.set(id, { ...s, Spec: next, PreviousSpec: previous, UpdateStatus: undefined });
}

export const setImage = (w: UpdateWorld, image: string, id = 's'): void =>
  updateService(w, (spec) => { spec.TaskTemplate = { ...spec.TaskTemplate, ContainerSpec: { ...spec.TaskTemplate?.ContainerSpec, Image: image } }; }, id);

// `docker service rollback`: the control API swaps the specs and sets rollback_started.
export function manualRollback(w: UpdateWorld, id = 's'): void {
  const s = w.svc(id);
  w.services.set(id, {
    ...s, Spec: structuredClone(s.PreviousSpec!), PreviousSpec: structuredClone(s.Spec),
    UpdateStatus: { State: 'rollback_started', StartedAt: nowIso(w.now), Message: 'manually requested rollback' },
  });
}

export { NS, SEC };
