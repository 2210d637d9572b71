import type { Node, Service, Task, TaskSpec } from '../../api/types';
import { matchesConstraints, parseConstraintsLenient } from '../scheduler/constraints';

// Structural equality of JSON values. A key whose value is undefined counts as
// absent: specs go through JSON in etcd, which drops such keys, so an
// in-memory spec and its stored copy must compare equal.
export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    if (a.length !== bb.length) return false;
    for (let i = 0; i < a.length; i++) if (!deepEqual(a[i], bb[i])) return false;
    return true;
  }
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  let na = 0;
  for (const k in ao) {
    if (ao[k] === undefined) continue;
    na++;
    if (!deepEqual(ao[k], bo[k])) return false;
  }
  let nb = 0;
  for (const k in bo) if (bo[k] !== undefined) nb++;
  return na === nb;
}

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
