import { createHash } from 'node:crypto';
import type { StringInterner } from './interner';
import type { Kind } from './objects';

// What goes into etcd and what comes out of it. Values come from outside the
// process (another version, another cluster, a hand edit): each is checked
// before it reaches the mirror.

export const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

// Tasks keep their spec in a blob shared by every task with the same spec.
export const specHash = (specJson: string): string => createHash('sha256').update(specJson).digest('hex').slice(0, 40);

// The object as stored: Version.Index is the key's mod revision, never stored.
export function encodeObject(obj: unknown): string {
  const { Version: _v, ...rest } = obj as { Version?: unknown };
  return JSON.stringify(rest);
}

// A task as stored: Spec replaced by the hash of its blob.
export function encodeTask(task: unknown, hash: string): string {
  const { Version: _v, Spec: _s, ...rest } = task as { Version?: unknown; Spec?: unknown };
  return JSON.stringify({ ...rest, SpecRef: hash });
}

export function parseJson(value: string): { ok: true; value: unknown } | { ok: false; problem: string } {
  try { return { ok: true, value: JSON.parse(value) as unknown }; } catch (e) { return { ok: false, problem: `not JSON: ${(e as Error).message}` }; }
}

// A stored value's JSON; a value the backend could not read has its problem.
export function parseValue(kv: { value: string; problem?: string }): ReturnType<typeof parseJson> {
  return kv.problem !== undefined ? { ok: false, problem: kv.problem } : parseJson(kv.value);
}

// The least every component relies on; returns what is wrong, if anything.
export function shapeProblem(kind: Kind, id: string, obj: unknown): string | undefined {
  if (!isRecord(obj)) return 'not an object';
  if (obj.ID !== id) return `ID ${JSON.stringify(obj.ID)} does not match the key`;
  if (!isRecord(obj.Spec)) return 'no Spec object';
  if (kind === 'tasks') {
    if (typeof obj.ServiceID !== 'string') return 'task without a ServiceID';
    if (obj.NodeID !== undefined && typeof obj.NodeID !== 'string') return 'task NodeID not a string';
    if (!isRecord(obj.Status)) return 'task without a Status object';
    if (typeof obj.DesiredState !== 'string') return 'task without a DesiredState';
  }
  if (kind === 'nodes' && obj.Status !== undefined && !isRecord(obj.Status)) return 'node Status not an object';
  return undefined;
}

// What a task repeats, shared as the mirror takes it in (the task has passed
// shapeProblem): the strings through the interner, and one frozen object for
// every empty Labels, another for every empty PortStatus (mirror objects are
// never changed in place: Store.mutate clones). Two, not one: structuredClone
// keeps aliases, so a clone's Labels and PortStatus would be one object. At
// 150,000 tasks the copies were a fifth of a leader's live heap.
const EMPTY_LABELS: Record<string, never> = Object.freeze({});
const EMPTY_PORT_STATUS: Record<string, never> = Object.freeze({});
const TASK_STRINGS = ['ServiceID', 'NodeID', 'DesiredState', 'CreatedAt', 'UpdatedAt'] as const;
const STATUS_STRINGS = ['State', 'Message', 'Timestamp', 'Err'] as const;

export function compactTask(task: Record<string, unknown>, strings: StringInterner): void {
  for (const f of TASK_STRINGS) { const v = task[f]; if (typeof v === 'string') task[f] = strings.intern(v); }
  if (isEmptyObject(task.Labels)) task.Labels = EMPTY_LABELS;
  const status = task.Status as Record<string, unknown>;
  for (const f of STATUS_STRINGS) { const v = status[f]; if (typeof v === 'string') status[f] = strings.intern(v); }
  if (isEmptyObject(status.PortStatus)) status.PortStatus = EMPTY_PORT_STATUS;
}

const isEmptyObject = (v: unknown): boolean => {
  if (!isRecord(v)) return false;
  for (const _ in v) return false;
  return true;
};
