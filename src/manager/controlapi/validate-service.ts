import type { ContainerSpec, Mount, ServiceSpec, TaskSpec, UpdateConfig } from '../../api/types';
import { invalid } from '../../common/errors';
import { parseConstraints } from '../scheduler/constraints';
import { isValidObjectName } from './names';

// SwarmKit's controlapi validation, with its messages, so the CLI prints what
// Docker prints. Every check runs before anything is written.
const bad = (msg: string) => invalid(`rpc error: code = InvalidArgument desc = ${msg}`);

const IMAGE_RE = /^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/;

export function validateServiceSpec(spec: ServiceSpec | undefined): asserts spec is ServiceSpec {
  if (!spec || typeof spec !== 'object') throw bad('service spec must not be empty');
  if (spec.Name !== undefined && spec.Name !== '' && !isValidObjectName(spec.Name)) {
    throw bad('name must be valid as a DNS name component');
  }
  validateTaskSpec(spec.TaskTemplate);
  validateMode(spec);
  validateUpdateConfig('UpdateConfig', spec.UpdateConfig);
  validateUpdateConfig('RollbackConfig', spec.RollbackConfig);
  for (const p of spec.EndpointSpec?.Ports ?? []) {
    if (p.TargetPort !== undefined && (p.TargetPort < 0 || p.TargetPort > 65535)) throw bad(`invalid target port ${p.TargetPort}`);
    if (p.PublishedPort !== undefined && (p.PublishedPort < 0 || p.PublishedPort > 65535)) throw bad(`invalid published port ${p.PublishedPort}`);
  }
  if (spec.EndpointSpec?.Mode && !['vip', 'dnsrr'].includes(spec.EndpointSpec.Mode)) throw bad(`invalid endpoint mode ${spec.EndpointSpec.Mode}`);
}

function validateMode(spec: ServiceSpec): void {
  const m = spec.Mode ?? {};
  const modes = (['Replicated', 'Global', 'ReplicatedJob', 'GlobalJob'] as const).filter((k) => m[k] !== undefined && m[k] !== null);
  if (modes.length > 1) throw bad('service spec must have exactly one mode');
  const r = m.Replicated?.Replicas;
  if (r !== undefined && (!Number.isInteger(r) || r < 0)) throw bad(`invalid replica count ${r}`);
  const j = m.ReplicatedJob;
  if (j && ((j.MaxConcurrent ?? 0) < 0 || (j.TotalCompletions ?? 0) < 0)) throw bad('MaxConcurrent and TotalCompletions must not be negative');
}

function validateTaskSpec(tt: TaskSpec | undefined): void {
  if (!tt) throw bad('TaskSpec: missing runtime');
  if (tt.Runtime && tt.Runtime !== 'container') throw bad(`TaskSpec: unsupported runtime ${tt.Runtime}`);
  const cs = tt.ContainerSpec;
  if (!cs) throw bad('TaskSpec: missing runtime');
  if (!cs.Image) throw bad('ContainerSpec: image reference must be provided');
  if (!IMAGE_RE.test(cs.Image)) throw bad(`ContainerSpec: "${cs.Image}" is not a valid repository/tag`);
  validateSecretRefs(cs);
  validateConfigRefs(cs);
  for (const m of cs.Mounts ?? []) validateMount(m);
  if ((cs.StopGracePeriod ?? 0) < 0) throw bad('ContainerSpec: StopGracePeriod cannot be negative');
  const hc = cs.Healthcheck;
  if (hc) {
    for (const [k, v] of [['Interval', hc.Interval], ['Timeout', hc.Timeout], ['StartPeriod', hc.StartPeriod]] as const) {
      if (v !== undefined && v !== 0 && v < 1_000_000) throw bad(`ContainerSpec: Healthcheck ${k} in ContainerSpec cannot be less than 1ms`);
    }
    if ((hc.Retries ?? 0) < 0) throw bad('ContainerSpec: Healthcheck Retries in ContainerSpec cannot be negative');
  }
  const rp = tt.RestartPolicy;
  if (rp) {
    if ((rp.Delay ?? 0) < 0) throw bad('TaskSpec: restart-delay cannot be negative');
    if ((rp.Window ?? 0) < 0) throw bad('TaskSpec: restart-window cannot be negative');
    if (rp.Condition && !['none', 'on-failure', 'any'].includes(rp.Condition)) throw bad(`TaskSpec: invalid restart condition ${rp.Condition}`);
  }
  const lim = tt.Resources?.Limits;
  const res = tt.Resources?.Reservations;
  for (const [name, v] of [['limits.nanoCPUs', lim?.NanoCPUs], ['reservations.nanoCPUs', res?.NanoCPUs]] as const) {
    if (v !== undefined && v !== 0 && v < 1e6) throw bad(`invalid cpu value ${v / 1e9}: Must be at least 0.001`);
    if (v !== undefined && v < 0) throw bad(`${name} cannot be negative`);
  }
  for (const v of [lim?.MemoryBytes, res?.MemoryBytes]) {
    if (v !== undefined && v !== 0 && v < 4 * 1024 * 1024) throw bad(`invalid memory value ${v}: Must be at least 4MiB`);
  }
  if (tt.Placement?.Constraints?.length) {
    try { parseConstraints(tt.Placement.Constraints); } catch (e) { throw bad((e as Error).message.replace(/^rpc error: code = \w+ desc = /, '')); }
  }
  for (const p of tt.Placement?.Preferences ?? []) {
    const d = p.Spread?.SpreadDescriptor;
    if (!d) throw bad('placement preference must be spread');
    if (!/^(node|engine)\.labels\.[^\s]+$/.test(d) && !['node.id', 'node.hostname', 'node.role', 'node.platform.os', 'node.platform.arch'].includes(d)) {
      throw bad(`invalid placement preference: ${d}`);
    }
  }
  if ((tt.Placement?.MaxReplicas ?? 0) < 0) throw bad('TaskSpec: max replicas cannot be negative');
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

function validateUpdateConfig(what: string, uc: UpdateConfig | undefined): void {
  if (!uc) return;
  if ((uc.Delay ?? 0) < 0) throw bad(`${what}: update-delay cannot be negative`);
  if ((uc.Monitor ?? 0) < 0) throw bad(`${what}: update-monitor cannot be negative`);
  if ((uc.Parallelism ?? 0) < 0) throw bad(`${what}: parallelism cannot be negative`);
  if (uc.MaxFailureRatio !== undefined && (uc.MaxFailureRatio < 0 || uc.MaxFailureRatio > 1)) throw bad(`${what}: max-failure-ratio must be between 0 and 1`);
  if (uc.FailureAction && !['pause', 'continue', 'rollback'].includes(uc.FailureAction)) throw bad(`${what}: invalid failure action ${uc.FailureAction}`);
  if (uc.Order && !['stop-first', 'start-first'].includes(uc.Order)) throw bad(`${what}: invalid order ${uc.Order}`);
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
