// Docker Engine API v1.41 object shapes for the swarm surface.
// Names mirror the API (and moby's api/types/swarm) so that a reader can map
// every field to the reference spec; optional fields are omitted on the wire
// exactly where Docker omits them.

export interface Version { Index: number }
export type Labels = Record<string, string>;

export interface Meta {
  ID: string;
  Version: Version;
  CreatedAt: string;
  UpdatedAt: string;
}

// ---------- Cluster / swarm ----------
export interface SwarmSpec {
  Name?: string;
  Labels?: Labels;
  Orchestration?: { TaskHistoryRetentionLimit?: number };
  Raft?: { SnapshotInterval?: number; KeepOldSnapshots?: number; LogEntriesForSlowFollowers?: number; ElectionTick?: number; HeartbeatTick?: number };
  Dispatcher?: { HeartbeatPeriod?: number };
  CAConfig?: { NodeCertExpiry?: number; ExternalCAs?: unknown[]; SigningCACert?: string; SigningCAKey?: string; ForceRotate?: number };
  TaskDefaults?: { LogDriver?: { Name: string; Options?: Record<string, string> } };
  EncryptionConfig?: { AutoLockManagers?: boolean };
}

export interface TLSInfo { TrustRoot?: string; CertIssuerSubject?: string; CertIssuerPublicKey?: string }

export interface ClusterInfo extends Meta {
  Spec: SwarmSpec;
  TLSInfo: TLSInfo;
  RootRotationInProgress: boolean;
  DefaultAddrPool: string[];
  SubnetSize: number;
  DataPathPort: number;
}

export interface JoinTokens { Worker: string; Manager: string }
export interface Swarm extends ClusterInfo { JoinTokens: JoinTokens }

export interface InitRequest {
  ListenAddr?: string;
  AdvertiseAddr?: string;
  DataPathAddr?: string;
  DataPathPort?: number;
  DefaultAddrPool?: string[];
  ForceNewCluster?: boolean;
  SubnetSize?: number;
  Spec?: SwarmSpec;
  AutoLockManagers?: boolean;
  Availability?: NodeAvailability;
}

// ---------- Nodes ----------
export type NodeRole = 'worker' | 'manager';
export type NodeAvailability = 'active' | 'pause' | 'drain';
export type NodeState = 'unknown' | 'down' | 'ready' | 'disconnected';

export interface NodeSpec {
  Name?: string;
  Labels?: Labels;
  Role?: NodeRole;
  Availability?: NodeAvailability;
}

export interface Platform { Architecture: string; OS: string }
export interface Resources { NanoCPUs?: number; MemoryBytes?: number; GenericResources?: unknown[] }

export interface NodeDescription {
  Hostname: string;
  Platform: Platform;
  Resources: Resources;
  Engine: { EngineVersion: string; Labels?: Labels; Plugins: Array<{ Type: string; Name: string }> };
  TLSInfo: TLSInfo;
}

export interface ManagerStatus { Leader?: boolean; Reachability: 'unknown' | 'unreachable' | 'reachable'; Addr: string }

export interface Node extends Meta {
  Spec: NodeSpec;
  Description: NodeDescription;
  Status: { State: NodeState; Message?: string; Addr: string };
  ManagerStatus?: ManagerStatus;
  // The node's load-balancer address on each network it needs (SwarmKit's
  // Node.Attachments), set by the allocator: the source address of VIP and
  // routing-mesh traffic this node forwards.
  Attachments?: NetworkAttachment[];
}

// ---------- Services ----------
export interface Mount {
  Target?: string;
  Source?: string;
  Type?: 'bind' | 'volume' | 'tmpfs' | 'npipe';
  ReadOnly?: boolean;
  Consistency?: string;
  BindOptions?: { Propagation?: string; NonRecursive?: boolean };
  VolumeOptions?: { NoCopy?: boolean; Labels?: Labels; DriverConfig?: { Name?: string; Options?: Record<string, string> } };
  TmpfsOptions?: { SizeBytes?: number; Mode?: number };
}

export interface HealthConfig {
  Test?: string[];
  Interval?: number;
  Timeout?: number;
  Retries?: number;
  StartPeriod?: number;
}

export interface SecretReference {
  File?: { Name: string; UID: string; GID: string; Mode: number };
  SecretID: string;
  SecretName: string;
}

export interface ConfigReference {
  File?: { Name: string; UID: string; GID: string; Mode: number };
  Runtime?: Record<string, never>;
  ConfigID: string;
  ConfigName: string;
}

export interface ContainerSpec {
  Image?: string;
  Labels?: Labels;
  Command?: string[];
  Args?: string[];
  Hostname?: string;
  Env?: string[];
  Dir?: string;
  User?: string;
  Groups?: string[];
  Privileges?: { CredentialSpec?: unknown; SELinuxContext?: unknown; NoNewPrivileges?: boolean };
  TTY?: boolean;
  OpenStdin?: boolean;
  ReadOnly?: boolean;
  Mounts?: Mount[];
  StopSignal?: string;
  StopGracePeriod?: number;
  Healthcheck?: HealthConfig; // the wire name (moby's Go type); the v1.41 swagger says HealthCheck, which no client sends
  Hosts?: string[];
  DNSConfig?: { Nameservers?: string[]; Search?: string[]; Options?: string[] };
  Secrets?: SecretReference[];
  Configs?: ConfigReference[];
  Isolation?: string;
  Init?: boolean | null;
  Sysctls?: Record<string, string>;
  CapabilityAdd?: string[];
  CapabilityDrop?: string[];
  Ulimits?: Array<{ Name: string; Soft: number; Hard: number }>;
  // Not part of Docker's API (as in SwarmKit, it never leaves the manager in
  // an answer): the X-Registry-Auth of `--with-registry-auth`, sealed at rest;
  // in clear only in a task handed to its node (controlapi/registry-auth.ts).
  PullOptions?: PullOptions;
  [extra: string]: unknown; // newer CLIs send fields beyond 1.41; keep them
}

export interface PullOptions { SealedRegistryAuth?: string; RegistryAuth?: string }

export interface ResourceLimits { NanoCPUs?: number; MemoryBytes?: number; Pids?: number }
export interface ResourceReservations { NanoCPUs?: number; MemoryBytes?: number; GenericResources?: unknown[] }

export type RestartCondition = 'none' | 'on-failure' | 'any';
export interface RestartPolicy { Condition?: RestartCondition; Delay?: number; MaxAttempts?: number; Window?: number }

export interface PlacementPreference { Spread?: { SpreadDescriptor: string } }
export interface Placement {
  Constraints?: string[];
  Preferences?: PlacementPreference[];
  MaxReplicas?: number;
  Platforms?: Platform[];
}

export interface NetworkAttachmentConfig { Target: string; Aliases?: string[]; DriverOpts?: Record<string, string> }

export interface TaskSpec {
  PluginSpec?: unknown;
  ContainerSpec?: ContainerSpec;
  NetworkAttachmentSpec?: unknown;
  Resources?: { Limits?: ResourceLimits; Reservations?: ResourceReservations };
  RestartPolicy?: RestartPolicy;
  Placement?: Placement;
  ForceUpdate?: number;
  Runtime?: string;
  Networks?: NetworkAttachmentConfig[];
  LogDriver?: { Name?: string; Options?: Record<string, string> };
}

export interface UpdateConfig {
  Parallelism?: number;
  Delay?: number;
  FailureAction?: 'continue' | 'pause' | 'rollback';
  Monitor?: number;
  MaxFailureRatio?: number;
  Order?: 'stop-first' | 'start-first';
}

export interface ServiceMode {
  Replicated?: { Replicas?: number };
  Global?: Record<string, never>;
  ReplicatedJob?: { MaxConcurrent?: number; TotalCompletions?: number };
  GlobalJob?: Record<string, never>;
}

export interface PortConfig {
  Name?: string;
  Protocol?: 'tcp' | 'udp' | 'sctp';
  TargetPort?: number;
  PublishedPort?: number;
  PublishMode?: 'ingress' | 'host';
}

export interface EndpointSpec { Mode?: 'vip' | 'dnsrr'; Ports?: PortConfig[] }

export interface ServiceSpec {
  Name?: string;
  Labels?: Labels;
  TaskTemplate?: TaskSpec;
  Mode?: ServiceMode;
  UpdateConfig?: UpdateConfig;
  RollbackConfig?: UpdateConfig;
  Networks?: NetworkAttachmentConfig[];
  EndpointSpec?: EndpointSpec;
}

export type UpdateState = 'updating' | 'paused' | 'completed' | 'rollback_started' | 'rollback_paused' | 'rollback_completed';

export interface UpdateStatus { State?: UpdateState; StartedAt?: string; CompletedAt?: string; Message?: string }

export interface Service extends Meta {
  Spec: ServiceSpec;
  PreviousSpec?: ServiceSpec;
  // Ports and VirtualIPs are set by the allocator (published ports chosen, one VIP per network).
  Endpoint: { Spec: EndpointSpec; Ports?: PortConfig[]; VirtualIPs?: EndpointVirtualIP[] };
  UpdateStatus?: UpdateStatus;
  ServiceStatus?: { RunningTasks: number; DesiredTasks: number; CompletedTasks: number };
  JobStatus?: { JobIteration: Version; LastExecution?: string };
}

// ---------- Tasks ----------
// Numeric order matters: states only move forward (SwarmKit numbers them 64 apart).
export const TASK_STATES = [
  'new', 'allocated', 'pending', 'assigned', 'accepted', 'preparing', 'ready', 'starting',
  'running', 'complete', 'shutdown', 'failed', 'rejected', 'remove', 'orphaned',
] as const;
export type TaskState = typeof TASK_STATES[number];

export function taskStateRank(s: TaskState): number { return TASK_STATES.indexOf(s); }

export interface TaskStatus {
  Timestamp: string;
  State: TaskState;
  Message: string;
  Err?: string;
  ContainerStatus?: { ContainerID?: string; PID?: number; ExitCode?: number };
  PortStatus?: { Ports?: PortConfig[] };
}

export interface Task extends Meta {
  Name?: string;
  Labels: Labels;
  Spec: TaskSpec;
  ServiceID: string;
  Slot?: number;
  NodeID?: string;
  AssignedGenericResources?: unknown[];
  Status: TaskStatus;
  DesiredState: TaskState;
  NetworksAttachments?: NetworkAttachment[]; // set by the allocator
  // The service's endpoint as the allocator left it when the task was made
  // (SwarmKit's Task.Endpoint): the executor publishes its host-mode ports.
  Endpoint?: { Spec?: EndpointSpec; Ports?: PortConfig[] };
  JobIteration?: Version;
}

// ---------- Secrets / configs ----------
// Data is base64 on the wire (Go's []byte). A secret's Data is never sent back.
export interface Driver { Name: string; Options?: Record<string, string> }
export interface SecretSpec { Name?: string; Labels?: Labels; Data?: string; Driver?: Driver; Templating?: Driver }
export interface Secret extends Meta { Spec: SecretSpec }
export interface ConfigSpec { Name?: string; Labels?: Labels; Data?: string; Templating?: Driver }
export interface Config extends Meta { Spec: ConfigSpec }
export interface CreateResponse { ID: string }

// ---------- Info ----------
export interface SwarmInfo {
  NodeID: string;
  NodeAddr: string;
  LocalNodeState: '' | 'inactive' | 'pending' | 'active' | 'error' | 'locked';
  ControlAvailable: boolean;
  Error: string;
  RemoteManagers: Array<{ NodeID: string; Addr: string }> | null;
  Nodes?: number;
  Managers?: number;
  Cluster?: ClusterInfo;
}

// ---------- Events ----------
export interface EventMessage {
  Type: string;
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  scope: 'swarm' | 'local';
  time: number;
  timeNano: number;
}

// ---------- Networks ----------
// Swarm networks (names as Docker's API and SwarmKit's). Only `overlay`
// networks are the swarm's; every other driver stays the engine's own and is
// forwarded to it untouched.

export interface IPAMConfig { Subnet?: string; Range?: string; Gateway?: string; AuxiliaryAddresses?: Record<string, string> }
export interface IPAMOptions { Driver?: Driver; Configs?: IPAMConfig[] }

export interface NetworkSpec {
  Name?: string;
  Labels?: Labels;
  DriverConfiguration?: Driver;  // Name 'overlay'; Options e.g. { encrypted: '' }
  IPv6Enabled?: boolean;
  Internal?: boolean;
  Attachable?: boolean;
  Ingress?: boolean;
  IPAMOptions?: IPAMOptions;
  ConfigFrom?: { Network?: string };
  Scope?: string;                // always 'swarm' here
}

// DriverState.Options[VXLAN_ID_OPTION] is the network's VNI, as Docker shows it.
export const VXLAN_ID_OPTION = 'com.docker.network.driver.overlay.vxlanid_list';

export interface Network extends Meta {
  Spec: NetworkSpec;
  DriverState?: Driver;          // set by the allocator: the VNI
  IPAM?: IPAMOptions;            // set by the allocator: the subnet and gateway actually used
}

// A task's (or a node's load balancer's) place on one network: Docker's
// Task.NetworksAttachments[] item. Addresses are CIDR ("10.0.1.5/24").
export interface NetworkAttachment { Network: Network; Addresses: string[]; Aliases?: string[] }

// Where a service answers on one network (Service.Endpoint.VirtualIPs[]); Addr is CIDR.
export interface EndpointVirtualIP { NetworkID: string; Addr: string }

// Beyond Docker: a service label that keeps the client's source address on
// published ports (local-first delivery without source NAT).
export const KEEP_CLIENT_IP_LABEL = 'io.shoal.ingress.keep-client-ip';
