import type { Node, Service, Task, TaskSpec } from '../../model/types';
import { matchesConstraints, parseConstraintsLenient } from '../../model/constraints';
import { deepEqual } from '../../common/deep-equal';

export type SpecDiff = 'equal' | 'placement' | 'different';

// The comparison is the hot part of a reconcile (every task of a service
// against its template). Store objects are replaced, never mutated, so the
// answer for a (task spec, template) pair of objects never changes: cache it.
const diffCache = new WeakMap<object, { template: object; diff: SpecDiff }>();

export function diffSpec(taskSpec: TaskSpec | undefined, template: TaskSpec | undefined): SpecDiff {
  const ts = taskSpec ?? {};
  const tt = template ?? {};
  if (taskSpec && template) {
    const hit = diffCache.get(taskSpec);
    if (hit && hit.template === template) return hit.diff;
  }
  let diff: SpecDiff;
  if (deepEqual(ts, tt)) diff = 'equal';
  else if (!deepEqual(ts.Placement, tt.Placement) && deepEqual({ ...ts, Placement: undefined }, { ...tt, Placement: undefined })) diff = 'placement';
  else diff = 'different';
  if (taskSpec && template) diffCache.set(taskSpec, { template, diff });
  return diff;
}

// SwarmKit's orchestrator.IsTaskDirty: the task was made from a spec other than
// the service's current task template. A change of placement alone does not
// make a task dirty while its node still satisfies the service's constraints
// (so `--constraint-add` that the node meets restarts nothing). Without the
// node (unassigned task, or a caller that does not know it) such a task is dirty.
export function isTaskDirty(task: Task, service: Service, node?: Node): boolean {
  const diff = diffSpec(task.Spec, service.Spec.TaskTemplate);
  if (diff === 'equal') return false;
  if (diff === 'placement' && node) {
    return !matchesConstraints(node, parseConstraintsLenient(service.Spec.TaskTemplate?.Placement?.Constraints));
  }
  return true;
}
