import { bool, bytes, float, int, map, slice, str, struct, type GoType } from '../../common/go/go-json';

// The request bodies Shoal owns, as moby v20.10.24 declares their Go types
// (api/types/swarm, mount, container, go-units). Field order and spelling are
// Go's; an embedded struct (Annotations) contributes its fields in place.
// Only the types matter here, not `omitempty`.

const strings = slice(str());
const labels = map(str());
const duration = int('time.Duration');

const annotations: Array<[string, GoType]> = [['Name', str()], ['Labels', labels]];

export const Driver = struct('swarm.Driver', [['Name', str()], ['Options', labels]]);

// ---------- services ----------
const mountDriver = struct('mount.Driver', [['Name', str()], ['Options', labels]]);
const Mount = struct('mount.Mount', [
  ['Type', str('mount.Type')],
  ['Source', str()],
  ['Target', str()],
  ['ReadOnly', bool],
  ['Consistency', str('mount.Consistency')],
  ['BindOptions', struct('mount.BindOptions', [['Propagation', str('mount.Propagation')], ['NonRecursive', bool]]), 'ptr'],
  ['VolumeOptions', struct('mount.VolumeOptions', [['NoCopy', bool], ['Labels', labels], ['DriverConfig', mountDriver, 'ptr']]), 'ptr'],
  ['TmpfsOptions', struct('mount.TmpfsOptions', [['SizeBytes', int('int64')], ['Mode', int('fs.FileMode')]]), 'ptr'],
]);

// Wire name `Healthcheck` (moby's Go field); `HealthCheck` matches it case-insensitively.
const HealthConfig = struct('container.HealthConfig', [
  ['Test', strings],
  ['Interval', duration],
  ['Timeout', duration],
  ['StartPeriod', duration],
  ['Retries', int('int')],
]);

const fileTarget = (name: string): GoType => struct(name, [['Name', str()], ['UID', str()], ['GID', str()], ['Mode', int('fs.FileMode')]]);

const SecretReference = struct('swarm.SecretReference', [
  ['File', fileTarget('swarm.SecretReferenceFileTarget'), 'ptr'],
  ['SecretID', str()],
  ['SecretName', str()],
]);

const ConfigReference = struct('swarm.ConfigReference', [
  ['File', fileTarget('swarm.ConfigReferenceFileTarget'), 'ptr'],
  ['Runtime', struct('swarm.ConfigReferenceRuntimeTarget', []), 'ptr'],
  ['ConfigID', str()],
  ['ConfigName', str()],
]);

const Privileges = struct('swarm.Privileges', [
  ['CredentialSpec', struct('swarm.CredentialSpec', [['Config', str()], ['File', str()], ['Registry', str()]]), 'ptr'],
  ['SELinuxContext', struct('swarm.SELinuxContext', [['Disable', bool], ['User', str()], ['Role', str()], ['Type', str()], ['Level', str()]]), 'ptr'],
]);

export const ContainerSpec = struct('swarm.ContainerSpec', [
  ['Image', str()],
  ['Labels', labels],
  ['Command', strings],
  ['Args', strings],
  ['Hostname', str()],
  ['Env', strings],
  ['Dir', str()],
  ['User', str()],
  ['Groups', strings],
  ['Privileges', Privileges, 'ptr'],
  ['Init', bool, 'ptr'],
  ['StopSignal', str()],
  ['TTY', bool],
  ['OpenStdin', bool],
  ['ReadOnly', bool],
  ['Mounts', slice(Mount)],
  ['StopGracePeriod', duration, 'ptr'],
  ['Healthcheck', HealthConfig, 'ptr'],
  ['Hosts', strings],
  ['DNSConfig', struct('swarm.DNSConfig', [['Nameservers', strings], ['Search', strings], ['Options', strings]]), 'ptr'],
  ['Secrets', slice(SecretReference, true)],
  ['Configs', slice(ConfigReference, true)],
  ['Isolation', str('container.Isolation')],
  ['Sysctls', labels],
  ['CapabilityAdd', strings],
  ['CapabilityDrop', strings],
  ['Ulimits', slice(struct('units.Ulimit', [['Name', str()], ['Hard', int('int64')], ['Soft', int('int64')]]), true)],
]);

// runtime.PluginSpec is generated from protobuf: lowercase JSON names.
const PluginSpec = struct('runtime.PluginSpec', [
  ['name', str()],
  ['remote', str()],
  ['privileges', slice(struct('runtime.PluginPrivilege', [['name', str()], ['description', str()], ['value', strings]]), true)],
  ['disabled', bool],
  ['env', strings],
]);

const GenericResource = struct('swarm.GenericResource', [
  ['NamedResourceSpec', struct('swarm.NamedGenericResource', [['Kind', str()], ['Value', str()]]), 'ptr'],
  ['DiscreteResourceSpec', struct('swarm.DiscreteGenericResource', [['Kind', str()], ['Value', int('int64')]]), 'ptr'],
]);

const ResourceRequirements = struct('swarm.ResourceRequirements', [
  ['Limits', struct('swarm.Limit', [['NanoCPUs', int('int64')], ['MemoryBytes', int('int64')], ['Pids', int('int64')]]), 'ptr'],
  ['Reservations', struct('swarm.Resources', [['NanoCPUs', int('int64')], ['MemoryBytes', int('int64')], ['GenericResources', slice(GenericResource)]]), 'ptr'],
]);

const RestartPolicy = struct('swarm.RestartPolicy', [
  ['Condition', str('swarm.RestartPolicyCondition')],
  ['Delay', duration, 'ptr'],
  ['MaxAttempts', int('uint64'), 'ptr'],
  ['Window', duration, 'ptr'],
]);

const Platform = struct('swarm.Platform', [['Architecture', str()], ['OS', str()]]);

const Placement = struct('swarm.Placement', [
  ['Constraints', strings],
  ['Preferences', slice(struct('swarm.PlacementPreference', [['Spread', struct('swarm.SpreadOver', [['SpreadDescriptor', str()]]), 'ptr']]))],
  ['MaxReplicas', int('uint64')],
  ['Platforms', slice(Platform)],
]);

const NetworkAttachmentConfig = struct('swarm.NetworkAttachmentConfig', [['Target', str()], ['Aliases', strings], ['DriverOpts', labels]]);

export const TaskSpec = struct('swarm.TaskSpec', [
  ['ContainerSpec', ContainerSpec, 'ptr'],
  ['PluginSpec', PluginSpec, 'ptr'],
  ['NetworkAttachmentSpec', struct('swarm.NetworkAttachmentSpec', [['ContainerID', str()]]), 'ptr'],
  ['Resources', ResourceRequirements, 'ptr'],
  ['RestartPolicy', RestartPolicy, 'ptr'],
  ['Placement', Placement, 'ptr'],
  ['Networks', slice(NetworkAttachmentConfig)],
  ['LogDriver', Driver, 'ptr'],
  ['ForceUpdate', int('uint64')],
  ['Runtime', str('swarm.RuntimeType')],
]);

const ServiceMode = struct('swarm.ServiceMode', [
  ['Replicated', struct('swarm.ReplicatedService', [['Replicas', int('uint64'), 'ptr']]), 'ptr'],
  ['Global', struct('swarm.GlobalService', []), 'ptr'],
  ['ReplicatedJob', struct('swarm.ReplicatedJob', [['MaxConcurrent', int('uint64'), 'ptr'], ['TotalCompletions', int('uint64'), 'ptr']]), 'ptr'],
  ['GlobalJob', struct('swarm.GlobalJob', []), 'ptr'],
]);

const UpdateConfig = struct('swarm.UpdateConfig', [
  ['Parallelism', int('uint64')],
  ['Delay', duration],
  ['FailureAction', str()],
  ['Monitor', duration],
  ['MaxFailureRatio', float('float32')],
  ['Order', str()],
]);

const PortConfig = struct('swarm.PortConfig', [
  ['Name', str()],
  ['Protocol', str('swarm.PortConfigProtocol')],
  ['TargetPort', int('uint32')],
  ['PublishedPort', int('uint32')],
  ['PublishMode', str('swarm.PortConfigPublishMode')],
]);

export const ServiceSpec = struct('swarm.ServiceSpec', [
  ...annotations,
  ['TaskTemplate', TaskSpec],
  ['Mode', ServiceMode],
  ['UpdateConfig', UpdateConfig, 'ptr'],
  ['RollbackConfig', UpdateConfig, 'ptr'],
  ['Networks', slice(NetworkAttachmentConfig)],
  ['EndpointSpec', struct('swarm.EndpointSpec', [['Mode', str('swarm.ResolutionMode')], ['Ports', slice(PortConfig)]]), 'ptr'],
]);

// ---------- swarm ----------
export const SwarmSpec = struct('swarm.Spec', [
  ...annotations,
  ['Orchestration', struct('swarm.OrchestrationConfig', [['TaskHistoryRetentionLimit', int('int64'), 'ptr']])],
  ['Raft', struct('swarm.RaftConfig', [
    ['SnapshotInterval', int('uint64')],
    ['KeepOldSnapshots', int('uint64'), 'ptr'],
    ['LogEntriesForSlowFollowers', int('uint64')],
    ['ElectionTick', int('int')],
    ['HeartbeatTick', int('int')],
  ])],
  ['Dispatcher', struct('swarm.DispatcherConfig', [['HeartbeatPeriod', duration]])],
  ['CAConfig', struct('swarm.CAConfig', [
    ['NodeCertExpiry', duration],
    ['ExternalCAs', slice(struct('swarm.ExternalCA', [
      ['Protocol', str('swarm.ExternalCAProtocol')], ['URL', str()], ['Options', labels], ['CACert', str()],
    ]), true)],
    ['SigningCACert', str()],
    ['SigningCAKey', str()],
    ['ForceRotate', int('uint64')],
  ])],
  ['TaskDefaults', struct('swarm.TaskDefaults', [['LogDriver', Driver, 'ptr']])],
  ['EncryptionConfig', struct('swarm.EncryptionConfig', [['AutoLockManagers', bool]])],
]);

export const InitRequest = struct('swarm.InitRequest', [
  ['ListenAddr', str()],
  ['AdvertiseAddr', str()],
  ['DataPathAddr', str()],
  ['DataPathPort', int('uint32')],
  ['ForceNewCluster', bool],
  ['Spec', SwarmSpec],
  ['AutoLockManagers', bool],
  ['Availability', str('swarm.NodeAvailability')],
  ['DefaultAddrPool', strings],
  ['SubnetSize', int('uint32')],
]);

export const JoinRequest = struct('swarm.JoinRequest', [
  ['ListenAddr', str()],
  ['AdvertiseAddr', str()],
  ['DataPathAddr', str()],
  ['RemoteAddrs', strings],
  ['JoinToken', str()],
  ['Availability', str('swarm.NodeAvailability')],
]);

export const UnlockRequest = struct('swarm.UnlockRequest', [['UnlockKey', str()]]);

// ---------- nodes, secrets, configs ----------
export const NodeSpec = struct('swarm.NodeSpec', [
  ...annotations,
  ['Role', str('swarm.NodeRole')],
  ['Availability', str('swarm.NodeAvailability')],
]);

export const SecretSpec = struct('swarm.SecretSpec', [...annotations, ['Data', bytes], ['Driver', Driver, 'ptr'], ['Templating', Driver, 'ptr']]);

export const ConfigSpec = struct('swarm.ConfigSpec', [...annotations, ['Data', bytes], ['Templating', Driver, 'ptr']]);

// ---------- networks ----------
// types.NetworkCreateRequest: NetworkCreate embedded, then Name.
const IPAMConfig = struct('network.IPAMConfig', [['Subnet', str()], ['IPRange', str()], ['Gateway', str()], ['AuxiliaryAddresses', labels]]);

export const NetworkCreateRequest = struct('types.NetworkCreateRequest', [
  ['CheckDuplicate', bool],
  ['Driver', str()],
  ['Scope', str()],
  ['EnableIPv6', bool],
  ['IPAM', struct('network.IPAM', [['Driver', str()], ['Options', labels], ['Config', slice(IPAMConfig)]]), 'ptr'],
  ['Internal', bool],
  ['Attachable', bool],
  ['Ingress', bool],
  ['ConfigOnly', bool],
  ['ConfigFrom', struct('network.ConfigReference', [['Network', str()]]), 'ptr'],
  ['Options', labels],
  ['Labels', labels],
  ['Name', str()],
]);

export const NetworkConnect = struct('types.NetworkConnect', [['Container', str()]]);
