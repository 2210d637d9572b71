import type { ContainerSpec, Mount, ServiceSpec, TaskSpec, UpdateConfig } from '../../model/types';
import { invalid } from '../../common/errors';
import { parseConstraints } from '../../model/constraints';
import { goFloat, goQuote } from '../../common/go/go-format';
import { isValidObjectName } from './names';

// SwarmKit's controlapi validation, with its messages, so the CLI prints what
// Docker prints. Every check runs before anything is written.
const bad = (msg: string) => invalid(`rpc error: code = InvalidArgument desc = ${msg}`);

const IMAGE_RE = /^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/;

// Bounds Docker does not have, so that a typo cannot make the orchestrator
// build tens of millions of tasks or store a spec too large to move around.
// (Issue 10 asks for 150,000 tasks in one swarm; one service may hold them.)
export const MAX_REPLICAS = 1_000_000;
export const MAX_SERVICE_SPEC_BYTES = 1024 * 1024;

export function validateServiceSpec(spec: ServiceSpec | undefined): asserts spec is ServiceSpec {
  if (!spec || typeof spec !== 'object') throw bad('service spec must not be empty');
  const size = Buffer.byteLength(JSON.stringify(spec));
  if (size > MAX_SERVICE_SPEC_BYTES) throw invalid(`service spec too large: ${size} bytes encoded, the maximum is ${MAX_SERVICE_SPEC_BYTES}`);
  // moby's convert.ServiceSpecToGRPC first (plain messages), then SwarmKit's
  // controlapi validation (rpc errors).
  validateConversion(spec);
  if (spec.Name !== undefined && spec.Name !== '' && !isValidObjectName(spec.Name)) {
    throw bad('name must be valid as a DNS name component');
  }
  validateTaskSpec(spec.TaskTemplate!);
  validateMode(spec);
  const job = !!(spec.Mode?.ReplicatedJob || spec.Mode?.GlobalJob);
  if (job && spec.UpdateConfig) throw bad('Jobs may not have an update config');
  // SwarmKit checks only UpdateConfig; the rollback config drives the same
  // update machinery here, so it gets the same checks.
  if (!job) { validateUpdateConfig(spec.UpdateConfig); validateUpdateConfig(spec.RollbackConfig); }
  validateEndpoint(spec);
}

// What dockerd refuses while converting the API spec to SwarmKit's.
function validateConversion(spec: ServiceSpec): void {
  const tt = spec.TaskTemplate;
  const runtime = tt?.Runtime ?? '';
  if (runtime !== '' && runtime !== 'container') throw invalid(runtime === 'plugin' && !tt?.PluginSpec ? 'mismatched Runtime and *Spec fields' : 'unsupported runtime');
  if (!tt?.ContainerSpec) throw invalid('mismatched Runtime and *Spec fields');
  const cs = tt.ContainerSpec;
  for (const m of cs.Mounts ?? []) {
    if (m.Type !== undefined && !['bind', 'volume', 'tmpfs', 'npipe'].includes(m.Type)) throw invalid(`invalid MountType: ${goQuote(m.Type)}`);
    const prop = m.BindOptions?.Propagation;
    if (prop && !['rprivate', 'private', 'rshared', 'shared', 'rslave', 'slave'].includes(prop)) throw invalid(`invalid MountPropagation: ${goQuote(prop)}`);
  }
  for (const r of cs.Configs ?? []) {
    if (r && !r.File && !r.Runtime) throw invalid('either File or Runtime should be set');
    if (r?.File && r.Runtime) throw invalid('cannot specify both File and Runtime');
  }
  const cond = tt.RestartPolicy?.Condition;
  if (cond && !['none', 'on-failure', 'any'].includes(cond)) throw invalid(`invalid RestartCondition: ${goQuote(cond)}`);
  for (const uc of [spec.UpdateConfig, spec.RollbackConfig]) {
    if (uc?.FailureAction && !['pause', 'continue', 'rollback'].includes(uc.FailureAction)) throw invalid(`unrecognized update failure action ${uc.FailureAction}`);
    if (uc?.Order && !['stop-first', 'start-first'].includes(uc.Order)) throw invalid(`unrecognized update order ${uc.Order}`);
  }
  const mode = spec.EndpointSpec?.Mode;
  if (mode && mode !== 'vip' && mode !== 'dnsrr') throw invalid(`invalid resolution mode: ${goQuote(mode)}`);
  const m = spec.Mode ?? {};
  if ((['Replicated', 'Global', 'ReplicatedJob', 'GlobalJob'] as const).filter((k) => m[k] !== undefined && m[k] !== null).length > 1) {
    throw invalid('must specify only one service mode');
  }
}

function validateMode(spec: ServiceSpec): void {
  const m = spec.Mode ?? {};
  const r = m.Replicated?.Replicas;
  if (r !== undefined && (!Number.isInteger(r) || r < 0)) throw bad('Number of replicas must be non-negative');
  if (r !== undefined && r > MAX_REPLICAS) throw bad(`invalid replicas value ${r}: the maximum is ${MAX_REPLICAS}`);
  const j = m.ReplicatedJob;
  if (j && (j.MaxConcurrent ?? 0) < 0) throw bad('Maximum concurrent jobs must not be negative');
  if (j && (j.TotalCompletions ?? 0) < 0) throw bad('Total completed jobs must not be negative');
  if (j && (j.MaxConcurrent ?? 0) > MAX_REPLICAS) throw bad(`invalid MaxConcurrent value ${j.MaxConcurrent}: the maximum is ${MAX_REPLICAS}`);
}

const MS = 1_000_000;

function validateTaskSpec(tt: TaskSpec): void {
  const cs = tt.ContainerSpec!;
  const lim = tt.Resources?.Limits;
  const res = tt.Resources?.Reservations;
  for (const r of [lim, res]) {
    const cpu = r?.NanoCPUs ?? 0;
    if (cpu !== 0 && cpu < 1e6) throw bad(`invalid cpu value ${goFloat(cpu / 1e9)}: Must be at least 0.001`);
    const mem = r?.MemoryBytes ?? 0;
    if (mem !== 0 && mem < 4 * 1024 * 1024) throw bad(`invalid memory value ${mem}: Must be at least 4MiB`);
  }
  if ((lim?.Pids ?? 0) < 0) throw bad('invalid pids limit: cannot be negative');
  const rp = tt.RestartPolicy;
  if ((rp?.Delay ?? 0) < 0) throw bad('TaskSpec: restart-delay cannot be negative');
  if ((rp?.Window ?? 0) < 0) throw bad('TaskSpec: restart-window cannot be negative');
  if (tt.Placement?.Constraints?.length) {
    try { parseConstraints(tt.Placement.Constraints); } catch (e) { throw bad((e as Error).message.replace(/^rpc error: code = \w+ desc = /, '')); }
  }
  validateSecretRefs(cs);
  validateConfigRefs(cs);
  if (!cs.Image) throw bad('ContainerSpec: image reference must be provided');
  if (!IMAGE_RE.test(cs.Image)) throw bad(`ContainerSpec: "${cs.Image}" is not a valid repository/tag`);
  const targets = new Set<string>();
  for (const m of cs.Mounts ?? []) {
    if (targets.has(m.Target ?? '')) throw bad(`ContainerSpec: duplicate mount point: ${m.Target ?? ''}`);
    targets.add(m.Target ?? '');
    validateMount(m);
  }
  if ((cs.StopGracePeriod ?? 0) < 0) throw bad('ContainerSpec: StopGracePeriod cannot be negative');
  const hc = cs.Healthcheck;
  if (hc) {
    for (const [k, v] of [['Interval', hc.Interval], ['Timeout', hc.Timeout], ['StartPeriod', hc.StartPeriod]] as const) {
      if (v !== undefined && v !== 0 && v < MS) throw bad(`ContainerSpec: ${k} in HealthConfig cannot be less than 1ms`);
    }
    if ((hc.Retries ?? 0) < 0) throw bad('ContainerSpec: Retries in HealthConfig cannot be negative');
  }
  for (const u of cs.Ulimits ?? []) if (!u) throw bad('ContainerSpec: malformed ulimit');
}

function validateEndpoint(spec: ServiceSpec): void {
  const ep = spec.EndpointSpec;
  const published = new Set<string>();
  for (const p of ep?.Ports ?? []) {
    if (p.TargetPort !== undefined && (p.TargetPort < 0 || p.TargetPort > 65535)) throw bad(`invalid target port ${p.TargetPort}`);
    if (p.PublishedPort !== undefined && (p.PublishedPort < 0 || p.PublishedPort > 65535)) throw bad(`invalid published port ${p.PublishedPort}`);
    if (ep?.Mode === 'dnsrr' && (p.PublishMode ?? 'ingress') === 'ingress') {
      throw bad("EndpointSpec: port published with ingress mode can't be used with dnsrr mode");
    }
    if (!p.PublishedPort) continue;
    const key = `${p.PublishedPort}/${p.Protocol ?? 'tcp'}`;
    if (published.has(key)) throw bad('EndpointSpec: duplicate published ports provided');
    published.add(key);
  }
}

function validateMount(m: Mount): void {
  if (!m.Target) throw bad('ContainerSpec: Target must not be empty');
  switch (m.Type) {
    case 'bind':
      if (!m.Source) throw bad('ContainerSpec: Source must not be empty for bind mounts');
      if (!m.Source.startsWith('/')) throw bad(`ContainerSpec: invalid bind mount source, source path must be absolute: ${m.Source}`);
      break;
    case 'volume':
    case 'tmpfs':
    case undefined:
      break;
    default:
      throw bad(`ContainerSpec: invalid mount type: ${m.Type}`);
  }
}

// SwarmKit's validateUpdate (its messages say TaskSpec).
function validateUpdateConfig(uc: UpdateConfig | undefined): void {
  if (!uc) return;
  if ((uc.Delay ?? 0) < 0) throw bad('TaskSpec: update-delay cannot be negative');
  if ((uc.Monitor ?? 0) < 0) throw bad('TaskSpec: update-monitor cannot be negative');
  if (uc.MaxFailureRatio !== undefined && (uc.MaxFailureRatio < 0 || uc.MaxFailureRatio > 1)) {
    throw bad('TaskSpec: update-maxfailureratio cannot be less than 0 or bigger than 1');
  }
}

// SwarmKit's validateSecretRefsSpec / validateConfigRefsSpec: well-formed
// references with distinct file targets. Whether the objects exist is checked
// against the store when the service is written (references.ts).
function validateSecretRefs(cs: ContainerSpec): void {
  const targets = new Map<string, string>();
  for (const r of cs.Secrets ?? []) {
    if (!r || !r.SecretID || !r.SecretName) throw bad('malformed secret reference');
    if (!r.File) throw bad('malformed secret reference, no target provided');
    const name = r.File.Name;
    if (!name) throw bad('malformed file secret reference, invalid target file name provided');
    const prev = targets.get(name);
    if (prev !== undefined) throw bad(`secret references '${prev}' and '${r.SecretName}' have a conflicting target: '${name}'`);
    targets.set(name, r.SecretName);
  }
}

function validateConfigRefs(cs: ContainerSpec): void {
  const targets = new Map<string, string>();
  for (const r of cs.Configs ?? []) {
    if (!r || !r.ConfigID || !r.ConfigName) throw bad('malformed config reference');
    if (!r.File && !r.Runtime) throw bad('malformed config reference, no target provided');
    if (!r.File) continue;
    const name = r.File.Name;
    if (!name) throw bad('malformed file config reference, invalid target file name provided');
    const prev = targets.get(name);
    if (prev !== undefined) throw bad(`config references '${prev}' and '${r.ConfigName}' have a conflicting target: '${name}'`);
    targets.set(name, r.ConfigName);
  }
}
