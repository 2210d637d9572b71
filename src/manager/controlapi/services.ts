import type { Service, ServiceSpec, Task } from '../../model/types';
import { invalid, precondition, ShoalError } from '../../common/errors';
import { matchAny, matchLabels, type Filters } from '../../common/filters';
import { newId } from '../../common/ids';
import { nowIso } from '../../common/time';
import { isTaskDirty } from '../orchestrator/dirty';
import type { ControlContext } from './context';
import { withDefaults } from './defaults';
import { randomName } from './names';
import { NetworksApi } from './networks';
import { commitWithReferences } from './references';
import { resolveObject } from './resolve';
import { validateServiceSpec } from './validate-service';
import { ServiceStatusCounts } from './service-status';
import { portConflict } from '../allocator/ports';
import { parseObjectVersion } from '../../common/go/query';
import { hideInService, revealTaskForNode, sealForCreate, sealForUpdate, type RegistryAuthRequest } from './registry-auth';
import type { SecretBox } from './secret-box';

export const SERVICE_FILTERS = ['id', 'label', 'mode', 'name', 'runtime'] as const;

function modeName(spec: ServiceSpec): 'replicated' | 'global' | 'replicated-job' | 'global-job' {
  const m = spec.Mode ?? {};
  if (m.Global) return 'global';
  if (m.ReplicatedJob) return 'replicated-job';
  if (m.GlobalJob) return 'global-job';
  return 'replicated';
}

// What the daemon stores: the user's spec with the fields dockerd always adds.
function normalise(spec: ServiceSpec): ServiceSpec {
  const s = structuredClone(spec);
  s.Labels ??= {};
  const tt = (s.TaskTemplate ??= {});
  tt.ContainerSpec ??= {};
  tt.ContainerSpec.Isolation ??= 'default';
  tt.ForceUpdate ??= 0;
  tt.Runtime ||= 'container';
  // dockerd keeps only spread preferences (convert.ServiceSpecToGRPC).
  if (tt.Placement?.Preferences) tt.Placement.Preferences = tt.Placement.Preferences.filter((p) => p.Spread);
  const m = (s.Mode ??= {});
  if (!m.Global && !m.ReplicatedJob && !m.GlobalJob) {
    m.Replicated ??= {};
    m.Replicated.Replicas ??= 1;
  }
  if (m.ReplicatedJob) {
    m.ReplicatedJob.MaxConcurrent ??= 1;
    m.ReplicatedJob.TotalCompletions ??= m.ReplicatedJob.MaxConcurrent;
  }
  s.EndpointSpec = { Mode: 'vip', ...s.EndpointSpec };
  return s;
}

export class ServicesApi {
  private counts?: ServiceStatusCounts; // made at the first status asked for
  // `box` seals the registry credentials of `--with-registry-auth` (registry-auth.ts).
  // `networks` resolves the service's network targets to IDs (networks.ts).
  constructor(private readonly ctx: ControlContext, private readonly box: SecretBox, private readonly networks = new NetworksApi(ctx)) {}

  resolve(ref: string): Service {
    const { store } = this.ctx;
    return resolveObject('service', ref, store.list('services'), (s) => s.Spec.Name, (id) => store.get('services', id));
  }

  inspect(ref: string, insertDefaults: boolean): Service {
    const s = hideInService(structuredClone(this.resolve(ref)));
    if (insertDefaults) s.Spec = withDefaults(s.Spec);
    return s;
  }

  list(filters: Filters, withStatus: boolean): Service[] {
    const out: Service[] = [];
    for (const s of this.ctx.store.list('services')) {
      if (!matchAny(filters.get('id'), (v) => s.ID.startsWith(v))) continue;
      if (!matchAny(filters.get('name'), (v) => (s.Spec.Name ?? '').startsWith(v))) continue;
      if (!matchAny(filters.get('mode'), (v) => v === modeName(s.Spec))) continue;
      if (!matchAny(filters.get('runtime'), (v) => v === (s.Spec.TaskTemplate?.Runtime ?? 'container'))) continue;
      if (!matchLabels(s.Spec.Labels, filters.get('label'))) continue;
      const copy = hideInService(structuredClone(s));
      if (withStatus) copy.ServiceStatus = this.status(s);
      out.push(copy);
    }
    return out.sort((a, b) => a.CreatedAt.localeCompare(b.CreatedAt));
  }

  // ServiceStatus as dockerd computes it for `service ls` (service-status.ts).
  status(s: Service): NonNullable<Service['ServiceStatus']> {
    this.counts ??= new ServiceStatusCounts(this.ctx.store);
    return this.counts.status(s);
  }

  // `auth.encoded`: the request's X-Registry-Auth, kept sealed with the service.
  async create(spec: ServiceSpec | undefined, auth: RegistryAuthRequest = {}): Promise<{ ID: string; Warnings?: string[] }> {
    validateServiceSpec(spec);
    this.checkPorts(spec, undefined);
    const named = !!spec.Name;
    for (let attempt = 0; ; attempt++) {
      const stored = normalise(spec);
      const networkIds = this.networks.resolveServiceNetworks(stored);
      if (!named) stored.Name = randomName();
      const now = nowIso(this.ctx.now());
      const service: Service = {
        ID: newId(),
        Version: { Index: 0 },
        CreatedAt: now,
        UpdatedAt: now,
        Spec: stored,
        Endpoint: { Spec: structuredClone(spec.EndpointSpec ?? {}) },
      };
      sealForCreate(stored, service.ID, auth.encoded, this.box);
      if (stored.Mode?.ReplicatedJob || stored.Mode?.GlobalJob) service.JobStatus = { JobIteration: { Index: 0 }, LastExecution: now };
      try {
        await commitWithReferences(this.ctx.store, stored, (t) => t.create('services', service), networkIds);
        return { ID: service.ID };
      } catch (e) {
        // A generated name that clashes is drawn again; a user's name is a conflict.
        if (!named && e instanceof ShoalError && e.kind === 'conflict' && attempt < 5) continue;
        throw e;
      }
    }
  }

  // `auth`: the request's X-Registry-Auth, or where to take the stored one from (registryAuthFrom).
  async update(ref: string, versionParam: string | null, spec: ServiceSpec | undefined, rollback: boolean, auth: RegistryAuthRequest = {}): Promise<{ Warnings: string[] | null }> {
    const version = parseVersion(versionParam);
    const current = this.resolve(ref);
    const now = nowIso(this.ctx.now());
    const next = structuredClone(current);
    next.Version = { Index: version };
    next.UpdatedAt = now;
    if (rollback) {
      if (!current.PreviousSpec) throw precondition(`rpc error: code = FailedPrecondition desc = service ${current.ID} does not have a previous spec`);
      next.Spec = structuredClone(current.PreviousSpec);
      next.PreviousSpec = structuredClone(current.Spec);
      next.UpdateStatus = { State: 'rollback_started', StartedAt: now, Message: 'manually requested rollback' };
    } else {
      validateServiceSpec(spec);
      const stored = normalise(spec);
      stored.Name ||= current.Spec.Name;
      if (stored.Name !== current.Spec.Name) throw invalid('rpc error: code = Unimplemented desc = renaming services is not supported');
      if (modeName(stored) !== modeName(current.Spec)) throw invalid('rpc error: code = Unimplemented desc = service mode change is not allowed');
      sealForUpdate(stored, current, auth, this.box);
      next.Spec = stored;
      next.PreviousSpec = structuredClone(current.Spec);
      next.Endpoint = { ...next.Endpoint, Spec: structuredClone(spec.EndpointSpec ?? {}) };
      // A new update replaces whatever update state the previous one left.
      delete next.UpdateStatus;
      if (stored.Mode?.ReplicatedJob || stored.Mode?.GlobalJob) {
        next.JobStatus = { JobIteration: { Index: (current.JobStatus?.JobIteration.Index ?? 0) + 1 }, LastExecution: now };
      }
    }
    this.checkPorts(next.Spec, current.ID);
    // What is stored must reference existing secrets, configs and networks (a rollback too).
    const networkIds = this.networks.resolveServiceNetworks(next.Spec);
    await commitWithReferences(this.ctx.store, next.Spec, (t) => t.update('services', next, current), networkIds);
    return { Warnings: null };
  }

  // SwarmKit's checkPortConflicts: a published port another service uses is refused.
  private checkPorts(spec: ServiceSpec, serviceId: string | undefined): void {
    const problem = portConflict(spec, serviceId, this.ctx.store.list('services'));
    if (problem) throw invalid(`rpc error: code = InvalidArgument desc = ${problem}`);
  }

  async remove(ref: string): Promise<void> {
    const s = this.resolve(ref);
    // The orchestrator sees the delete and takes the tasks down.
    try {
      await this.ctx.store.txn().delete('services', s).commit();
    } catch (e) {
      if (e instanceof ShoalError && e.kind === 'sequence') return this.remove(s.ID);
      throw e;
    }
  }

  // A task as its node receives it: registry credentials in clear (the
  // dispatcher's prepareTask hook; in one process, LocalControlPlane's).
  revealTask(task: Task): Task {
    return revealTaskForNode(task, this.box);
  }

  upToDate(task: Task): boolean {
    const { store } = this.ctx;
    const s = store.get('services', task.ServiceID);
    // The node matters: a placement-only change leaves a task up to date where its node still fits.
    return !!s && !isTaskDirty(task, s, task.NodeID ? store.get('nodes', task.NodeID) : undefined);
  }
}

// `?version=N` as dockerd parses it (strconv.ParseUint, its error in the message).
export function parseVersion(v: string | null, what = 'service'): number {
  return parseObjectVersion(v, what);
}
