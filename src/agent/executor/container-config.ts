import type { ContainerSpec, Labels, Mount, Platform, Task } from '../../model/types';
import { dnsServerFor, engineNetworkName } from '../../protocol/network-view';
import { expandTemplate, type TemplateContext } from './templates';

// Task → the body of dockerd's `POST /containers/create`, as moby's swarm
// executor builds it (daemon/cluster/executor/container/container.go). Pure:
// no I/O, so every field mapping is unit-tested.

export const LABEL_PREFIX = 'com.docker.swarm';
export const TASK_ID_LABEL = `${LABEL_PREFIX}.task.id`;
export const NODE_ID_LABEL = `${LABEL_PREFIX}.node.id`;
export const SERVICE_ID_LABEL = `${LABEL_PREFIX}.service.id`;

// SwarmKit's default when the spec has no StopGracePeriod.
export const DEFAULT_STOP_GRACE_NS = 10_000_000_000;

// The subset of the engine's ContainerCreateRequest that tasks use.
export interface EngineMount {
  Type?: string;
  Source?: string;
  Target?: string;
  ReadOnly?: boolean;
  Consistency?: string;
  BindOptions?: { Propagation?: string; NonRecursive?: boolean };
  VolumeOptions?: { NoCopy?: boolean; Labels?: Labels; DriverConfig?: { Name?: string; Options?: Record<string, string> } };
  TmpfsOptions?: { SizeBytes?: number; Mode?: number };
}

export interface EngineHostConfig {
  RestartPolicy: { Name: 'no' };
  GroupAdd?: string[];
  ReadonlyRootfs?: boolean;
  Mounts?: EngineMount[];
  Init?: boolean;
  ExtraHosts?: string[];
  Dns?: string[];
  DnsSearch?: string[];
  DnsOptions?: string[];
  CapAdd?: string[];
  CapDrop?: string[];
  Sysctls?: Record<string, string>;
  Ulimits?: Array<{ Name: string; Soft: number; Hard: number }>;
  NanoCpus?: number;
  Memory?: number;
  MemoryReservation?: number;
  PidsLimit?: number;
  LogConfig?: { Type: string; Config: Record<string, string> };
  SecurityOpt?: string[];
  OomScoreAdj?: number;
  NetworkMode?: string;
  PortBindings?: Record<string, Array<{ HostIp?: string; HostPort?: string }>>;
}

// A container's place on one engine network (the engine's EndpointSettings, as used).
export interface EngineEndpointConfig {
  IPAMConfig: { IPv4Address: string };
  Aliases?: string[];
}

export interface EngineCreateBody {
  Image: string;
  Labels: Labels;
  Entrypoint?: string[];
  Cmd?: string[];
  Env?: string[];
  WorkingDir?: string;
  User?: string;
  Hostname?: string;
  Tty?: boolean;
  OpenStdin?: boolean;
  StopSignal?: string;
  StopTimeout?: number;
  Healthcheck?: { Test?: string[]; Interval?: number; Timeout?: number; Retries?: number; StartPeriod?: number };
  ExposedPorts?: Record<string, Record<string, never>>;
  HostConfig: EngineHostConfig;
  NetworkingConfig?: { EndpointsConfig: Record<string, EngineEndpointConfig> };
}

export interface ContainerCreate {
  name: string;
  body: EngineCreateBody;
  // The task's other networks: the engine (API 1.41) takes one network at
  // create, the rest are connected before the container starts.
  connect?: Array<{ network: string; config: EngineEndpointConfig }>;
}

export interface ContainerConfigInput {
  task: Task;
  serviceName: string;
  serviceLabels?: Labels;
  nodeId: string;
  nodeHostname?: string;
  nodePlatform?: Platform;
  // Bind mounts of the task's secrets and configs (task-files.ts), after the spec's own.
  fileMounts?: EngineMount[];
}

// `<service>.<slot>.<task>`; global tasks (slot 0) use the node ID instead.
export function containerName(task: Task, serviceName: string, nodeId: string): string {
  return `${serviceName}.${slotOrNode(task, nodeId)}.${task.ID}`;
}

function slotOrNode(task: Task, nodeId: string): string {
  return task.Slot ? String(task.Slot) : task.NodeID || nodeId;
}

// Spec labels, then the task's own, then the system labels, which win.
export function containerLabels(input: ContainerConfigInput): Labels {
  const { task, serviceName, nodeId } = input;
  return {
    ...(task.Spec.ContainerSpec?.Labels ?? {}),
    ...(task.Labels ?? {}),
    [`${LABEL_PREFIX}.node.id`]: nodeId,
    [`${LABEL_PREFIX}.service.id`]: task.ServiceID,
    [`${LABEL_PREFIX}.service.name`]: serviceName,
    [`${LABEL_PREFIX}.task`]: '',
    [`${LABEL_PREFIX}.task.id`]: task.ID,
    [`${LABEL_PREFIX}.task.name`]: containerName(task, serviceName, nodeId),
  };
}

export function templateContext(input: ContainerConfigInput): TemplateContext {
  const { task, serviceName, nodeId } = input;
  return {
    Service: { ID: task.ServiceID, Name: serviceName, Labels: input.serviceLabels ?? {} },
    Node: { ID: nodeId, Hostname: input.nodeHostname ?? '', Platform: input.nodePlatform ?? { Architecture: '', OS: '' } },
    Task: { ID: task.ID, Name: containerName(task, serviceName, nodeId), Slot: slotOrNode(task, nodeId) },
  };
}

// Grace period in whole seconds, rounded up so a stop never waits less than asked.
export function stopGraceSeconds(spec: ContainerSpec | undefined): number {
  return Math.ceil((spec?.StopGracePeriod ?? DEFAULT_STOP_GRACE_NS) / 1e9);
}

// Throws TemplateError when a placeholder cannot be expanded (the task is rejected).
export function buildContainerConfig(input: ContainerConfigInput): ContainerCreate {
  const { task } = input;
  const spec: ContainerSpec = task.Spec.ContainerSpec ?? {};
  const ctx = templateContext(input);
  const expand = (s: string): string => expandTemplate(s, ctx);

  const body: EngineCreateBody = {
    Image: spec.Image ?? '',
    Labels: containerLabels(input),
    HostConfig: { RestartPolicy: { Name: 'no' } }, // the orchestrator restarts, not the engine
  };
  // Command replaces the image's entrypoint; Args alone feed the image's entrypoint.
  if (spec.Command?.length) body.Entrypoint = [...spec.Command];
  if (spec.Args?.length) body.Cmd = [...spec.Args];
  if (spec.Env?.length) body.Env = spec.Env.map((e) => expandEnv(e, expand));
  if (spec.Dir) body.WorkingDir = spec.Dir;
  if (spec.User) body.User = spec.User;
  if (spec.Hostname) body.Hostname = expand(spec.Hostname);
  if (spec.TTY) body.Tty = true;
  if (spec.OpenStdin) body.OpenStdin = true;
  if (spec.StopSignal) body.StopSignal = spec.StopSignal;
  if (spec.StopGracePeriod !== undefined) body.StopTimeout = stopGraceSeconds(spec);
  if (spec.Healthcheck) body.Healthcheck = compact({ ...spec.Healthcheck });

  const hc = body.HostConfig;
  if (spec.Groups?.length) hc.GroupAdd = [...spec.Groups];
  if (spec.ReadOnly) hc.ReadonlyRootfs = true;
  if (spec.Mounts?.length) hc.Mounts = spec.Mounts.map((m) => engineMount(m, expand));
  if (input.fileMounts?.length) hc.Mounts = [...(hc.Mounts ?? []), ...input.fileMounts.map((m) => ({ ...m }))];
  if (typeof spec.Init === 'boolean') hc.Init = spec.Init;
  const extraHosts = (spec.Hosts ?? []).flatMap(extraHostEntries);
  if (extraHosts.length) hc.ExtraHosts = extraHosts;
  const dns = spec.DNSConfig;
  if (dns?.Nameservers?.length) hc.Dns = [...dns.Nameservers];
  const networks = taskEndpoints(task, input.serviceName);
  let connect: ContainerCreate['connect'];
  if (networks.length) {
    const [first, ...rest] = networks;
    hc.NetworkMode = first!.network;
    body.NetworkingConfig = { EndpointsConfig: { [first!.network]: first!.config } };
    if (rest.length) connect = rest;
    // Docker's resolver (127.0.0.11) answers the task's local names and hands
    // every other name to Shoal's DNS server (service names, tasks.NAME); the
    // spec's own nameservers come after it. On --internal networks only, the
    // server is reached at the gateway (dnsServerFor).
    const server = dnsServerFor((task.NetworksAttachments ?? []).map((a) => a.Network));
    hc.Dns = [server, ...(hc.Dns ?? []).filter((a) => a !== server)];
  }
  const ports = hostModePorts(task);
  if (ports.length) {
    body.ExposedPorts = {};
    hc.PortBindings = {};
    for (const p of ports) {
      body.ExposedPorts[p.key] = {};
      hc.PortBindings[p.key] = [p.hostPort ? { HostPort: p.hostPort } : {}];
    }
  }
  if (dns?.Search?.length) hc.DnsSearch = [...dns.Search];
  if (dns?.Options?.length) hc.DnsOptions = [...dns.Options];
  if (spec.CapabilityAdd?.length) hc.CapAdd = [...spec.CapabilityAdd];
  if (spec.CapabilityDrop?.length) hc.CapDrop = [...spec.CapabilityDrop];
  if (spec.Sysctls && Object.keys(spec.Sysctls).length) hc.Sysctls = { ...spec.Sysctls };
  if (spec.Ulimits?.length) hc.Ulimits = spec.Ulimits.map((u) => ({ Name: u.Name, Soft: u.Soft, Hard: u.Hard }));
  const securityOpt = securityOptions(spec);
  if (securityOpt.length) hc.SecurityOpt = securityOpt;
  if (typeof spec['OomScoreAdj'] === 'number' && spec['OomScoreAdj'] !== 0) hc.OomScoreAdj = spec['OomScoreAdj'];

  const limits = task.Spec.Resources?.Limits;
  if (limits?.NanoCPUs) hc.NanoCpus = limits.NanoCPUs;
  if (limits?.MemoryBytes) hc.Memory = limits.MemoryBytes;
  if (limits?.Pids) hc.PidsLimit = limits.Pids;
  const reservedMemory = task.Spec.Resources?.Reservations?.MemoryBytes;
  // The engine refuses a reservation above the limit; the limit is what matters then.
  if (reservedMemory && (!hc.Memory || reservedMemory <= hc.Memory)) hc.MemoryReservation = reservedMemory;

  const logDriver = task.Spec.LogDriver;
  if (logDriver?.Name) hc.LogConfig = { Type: logDriver.Name, Config: { ...(logDriver.Options ?? {}) } };

  return { name: containerName(task, input.serviceName, input.nodeId), body, ...(connect ? { connect } : {}) };
}

// The task's networks as engine endpoints: the engine network Shoal made for
// each swarm network, the address the allocator gave the task, and the
// attachment's aliases. Never the service name: Docker's resolver would answer
// it with this node's tasks only, where Shoal's DNS answers the VIP.
export function taskEndpoints(task: Task, serviceName: string): Array<{ network: string; config: EngineEndpointConfig }> {
  const out: Array<{ network: string; config: EngineEndpointConfig }> = [];
  for (const a of task.NetworksAttachments ?? []) {
    const id = a?.Network?.ID;
    if (typeof id !== 'string' || !id) throw new Error('network attachment without a network ID');
    const addr = typeof a.Addresses?.[0] === 'string' ? a.Addresses[0].split('/')[0]! : '';
    if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(addr)) throw new Error(`no address allocated on network ${a.Network.Spec?.Name ?? id}`);
    const aliases = (Array.isArray(a.Aliases) ? a.Aliases : []).filter((x): x is string => typeof x === 'string' && x !== '' && x !== serviceName);
    out.push({ network: engineNetworkName(id), config: { IPAMConfig: { IPv4Address: addr }, ...(aliases.length ? { Aliases: [...new Set(aliases)] } : {}) } });
  }
  return out;
}

// Ports published in host mode (moby's portBindings/exposedPorts): on this
// node's addresses, the published port or one the engine picks.
function hostModePorts(task: Task): Array<{ key: string; hostPort?: string }> {
  const out: Array<{ key: string; hostPort?: string }> = [];
  for (const p of task.Endpoint?.Ports ?? []) {
    if (p.PublishMode !== 'host' || !p.TargetPort) continue;
    out.push({ key: `${p.TargetPort}/${(p.Protocol ?? 'tcp').toLowerCase()}`, ...(p.PublishedPort ? { hostPort: String(p.PublishedPort) } : {}) });
  }
  return out;
}

// Only the value of NAME=value is a template (swarmkit template/expand.go).
function expandEnv(entry: string, expand: (s: string) => string): string {
  const eq = entry.indexOf('=');
  return eq < 0 ? entry : `${entry.slice(0, eq)}=${expand(entry.slice(eq + 1))}`;
}

function engineMount(m: Mount, expand: (s: string) => string): EngineMount {
  const out: EngineMount = { Type: m.Type ?? 'volume' };
  if (m.Source) out.Source = expand(m.Source);
  if (m.Target) out.Target = expand(m.Target);
  if (m.ReadOnly) out.ReadOnly = true;
  if (m.Consistency) out.Consistency = m.Consistency;
  if (m.BindOptions) out.BindOptions = compact({ ...m.BindOptions });
  if (m.VolumeOptions) {
    const v = m.VolumeOptions;
    out.VolumeOptions = compact({
      NoCopy: v.NoCopy,
      Labels: v.Labels ? expandValues(v.Labels, expand) : undefined,
      DriverConfig: v.DriverConfig ? compact({ Name: v.DriverConfig.Name, Options: v.DriverConfig.Options ? expandValues(v.DriverConfig.Options, expand) : undefined }) : undefined,
    });
  }
  if (m.TmpfsOptions) out.TmpfsOptions = compact({ ...m.TmpfsOptions });
  return out;
}

function expandValues(map: Record<string, string>, expand: (s: string) => string): Record<string, string> {
  return Object.fromEntries(Object.entries(map).map(([k, v]) => [k, expand(v)]));
}

// Swarm keeps hosts(5) lines, "IP NAME [ALIAS...]"; the engine wants "NAME:IP".
export function extraHostEntries(line: string): string[] {
  const [ip, ...names] = line.trim().split(/\s+/);
  if (!ip || !names.length) return [];
  return names.map((n) => `${n}:${ip}`);
}

function securityOptions(spec: ContainerSpec): string[] {
  const out: string[] = [];
  const p = spec.Privileges;
  if (p?.NoNewPrivileges) out.push('no-new-privileges=true');
  const se = p?.SELinuxContext as { Disable?: boolean; User?: string; Role?: string; Type?: string; Level?: string } | undefined;
  if (se?.Disable) out.push('label=disable');
  else if (se) {
    if (se.User) out.push(`label=user:${se.User}`);
    if (se.Role) out.push(`label=role:${se.Role}`);
    if (se.Type) out.push(`label=type:${se.Type}`);
    if (se.Level) out.push(`label=level:${se.Level}`);
  }
  return out;
}

function compact<T extends object>(o: T): T {
  for (const k of Object.keys(o) as Array<keyof T>) if (o[k] === undefined) delete o[k];
  return o;
}

// Task containers that bind-mount the engine's socket to watch the swarm
// (visualizers, Portainer's agent, Traefik's swarm provider) must reach
// Shoal's API, which answers the swarm calls, not the host's dockerd, which
// knows nothing of the swarm: such a mount's source becomes this daemon's
// own unix socket. Other mounts are untouched.
export const ENGINE_SOCKET_PATHS = new Set(['/var/run/docker.sock', '/run/docker.sock']);

export function routeDockerSocket(config: ContainerCreate, apiSocket: string | undefined): ContainerCreate {
  const mounts = config.body.HostConfig?.Mounts; // a caller may send a body without HostConfig
  if (!apiSocket || !mounts?.some(isEngineSocketMount)) return config;
  const out = structuredClone(config);
  out.body.HostConfig.Mounts = mounts.map((m) => (isEngineSocketMount(m) ? { ...m, Source: apiSocket } : m));
  return out;
}

const isEngineSocketMount = (m: EngineMount): boolean => m.Type === 'bind' && ENGINE_SOCKET_PATHS.has((m.Source ?? '').replace(/\/+$/, ''));
