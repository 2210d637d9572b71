import type { Task } from '../../model/types';
import { matchAny, matchLabels, type Filters } from '../../common/filters';
import type { ControlContext } from './context';
import { resolveObject } from './resolve';
import type { NodesApi } from './nodes';
import type { ServicesApi } from './services';
import { hideInTask } from './registry-auth';

export const TASK_FILTERS = ['_up-to-date', 'desired-state', 'id', 'label', 'name', 'node', 'runtime', 'service'] as const;

export class TasksApi {
  constructor(private readonly ctx: ControlContext, private readonly services: ServicesApi, private readonly nodes: NodesApi) {}

  inspect(ref: string): Task {
    const { store } = this.ctx;
    // Tasks resolve by ID or unique ID prefix only, like dockerd.
    return hideInTask(structuredClone(resolveObject('task', ref, store.list('tasks'), () => undefined, (id) => store.get('tasks', id))));
  }

  // Docker's task name: <service>.<slot> or <service>.<node ID>.
  taskName(t: Task): string {
    const svc = this.ctx.store.get('services', t.ServiceID)?.Spec.Name ?? t.ServiceID;
    return t.Slot ? `${svc}.${t.Slot}` : `${svc}.${t.NodeID ?? ''}`;
  }

  list(filters: Filters): Task[] {
    const { store } = this.ctx;
    // service and node filters name objects the server resolves; an unknown one matches nothing.
    const serviceIds = resolveAll(filters.get('service'), (v) => this.services.resolve(v).ID);
    const nodeIds = resolveAll(filters.get('node'), (v) => this.nodes.resolve(v).ID);
    let candidates: Task[];
    if (serviceIds) candidates = [...serviceIds].flatMap((id) => store.tasksOfService(id));
    else if (nodeIds) candidates = [...nodeIds].flatMap((id) => store.tasksOfNode(id));
    else candidates = store.list('tasks');
    const upToDate = filters.get('_up-to-date');
    return candidates.filter((t) => {
      if (serviceIds && !serviceIds.has(t.ServiceID)) return false;
      if (nodeIds && !nodeIds.has(t.NodeID ?? '')) return false;
      if (!matchAny(filters.get('id'), (v) => t.ID.startsWith(v))) return false;
      if (!matchAny(filters.get('name'), (v) => this.taskName(t).startsWith(v))) return false;
      if (!matchAny(filters.get('desired-state'), (v) => desiredMatches(t, v))) return false;
      if (!matchAny(filters.get('runtime'), (v) => v === (t.Spec.Runtime ?? 'container'))) return false;
      // `label` matches the service's labels (swarmkit controlapi/task.go): stack ps relies on it.
      if (filters.get('label')?.length) {
        const svc = store.get('services', t.ServiceID);
        if (!matchLabels(svc?.Spec.Labels, filters.get('label'))) return false;
      }
      if (upToDate?.length && !this.services.upToDate(t)) return false;
      return true;
    }).map((t) => hideInTask(structuredClone(t))).sort((a, b) => a.CreatedAt.localeCompare(b.CreatedAt));
  }
}

function desiredMatches(t: Task, v: string): boolean {
  if (v === 'running') return t.DesiredState === 'running' || t.DesiredState === 'ready';
  if (v === 'accepted') return t.DesiredState === 'accepted';
  if (v === 'shutdown') return t.DesiredState === 'shutdown' || t.DesiredState === 'remove' || t.DesiredState === 'complete';
  return t.DesiredState === v;
}

function resolveAll(values: string[] | undefined, resolve: (v: string) => string): Set<string> | undefined {
  if (!values?.length) return undefined;
  const out = new Set<string>();
  for (const v of values) {
    try { out.add(resolve(v)); } catch (e) { if (!(e instanceof Error && (e as { kind?: string }).kind === 'not_found')) throw e; }
  }
  return out;
}

