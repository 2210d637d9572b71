// The dispatcher's wire contract: how a node's agent keeps its session with
// the leader's dispatcher. Every node (workers and managers alike) calls these
// with its own certificate; the node ID is always the certificate's
// (ctx.peer.nodeId), never a field of a message.
//
//   Session          server stream: the node registers with its description and
//                    receives its tasks (the whole set first, then changes),
//                    the secrets and configs those tasks use, the managers,
//                    the heartbeat interval and its own role/availability.
//   Heartbeat        unary: "still here"; answers when to beat next.
//   Heartbeats       the same calls on a pipe (rpc/transport.ts): what agents
//                    use, at a fifth of the CPU per beat (5,000 nodes beat
//                    1,000 times a second at a 10 s period); the unary one
//                    stays for agents of an earlier release.
//   UpdateTaskStatus unary: a batch of observed task statuses.
//   UpdateTaskStatuses
//                    the same calls on a pipe: what agents use (in a create
//                    a node reports about once per batch of tasks it is
//                    given); the unary one stays for agents of an earlier release.
//
// A manager that does not lead relays its nodes' three calls to the leader
// (Relay*, managers only), naming the node its own TLS check verified: the
// leader then holds one connection per manager rather than one per node
// (each costs it about 90 KB of TLS and HTTP/2 state), and the nodes' TLS
// work is spread over every manager. SwarmKit's managers proxy the same way.
import type { NodeNetworkView } from './network-view';
import { ERROR_KINDS, ShoalError, invalid, isShoalError, unavailable, type ErrorKind } from '../common/errors';
import { arr, bool, id, labels, managerList, num, oneOf, optNum, optStr, rec, str, version, type ManagerList, type Rec } from './checks';
import { checkNodeNetworkView } from './network-view';
import type { Driver, Labels, NodeAvailability, NodeDescription, NodeRole, Task, TaskStatus } from '../model/types';
import { TASK_STATES } from '../model/types';
import { passedOn, type Passed, type StreamMethod, type UnaryMethod } from '../rpc/transport';

// Bounds on what a peer may send: a bad message fails its call alone.
export const MAX_STATUS_UPDATES = 10_000;

export interface SessionRequest {
  // Made by the agent for this session; Heartbeat and UpdateTaskStatus name it,
  // so a call from a session the dispatcher no longer knows (it restarted, a
  // new leader) is refused and the agent opens a new one.
  SessionID: string;
  Description: NodeDescription;
}

// A secret's or config's value as it travels (Data is base64).
export interface WirePayload { ID: string; Name: string; Data: string; Templating?: Driver }

export interface ServiceInfo { ID: string; Name: string; Labels?: Labels }

export interface SessionMessage {
  SessionID: string;
  // This node as the managers see it; Version: the node object's Version.Index
  // the role was read from (node/role.ts orders role notices by it; absent: unknown).
  Node: { Role: NodeRole; Availability: NodeAvailability; Version?: number };
  // Where the managers are, for reconnecting (Addrs: host:port of each).
  Managers: ManagerList;
  // How often the agent heartbeats (ms).
  HeartbeatMs: number;
  // The roots to trust and the CA key certificates should come from (a root
  // CA rotation changes them: the node renews; protocol/ca.ts). Absent from older managers.
  RootCA?: { Bundle: string; IssuerPublicKey: string };
  // Full: Tasks is (part of) the node's whole set, replacing what the agent had;
  // a whole set too big for one message spans several, the last with More false.
  // Otherwise Tasks are tasks that changed and Removed the IDs that are gone.
  Full: boolean;
  More: boolean;
  Tasks: Task[];
  Removed: string[];
  // The services of the tasks in this message (container names and labels).
  Services: ServiceInfo[];
  // Values the node's tasks use, each sent once per session; Removed* when no
  // task of the node needs them any more.
  Secrets: WirePayload[];
  Configs: WirePayload[];
  RemovedSecrets: string[];
  RemovedConfigs: string[];
  // The node's networks as a whole (protocol/network-view.ts); absent when
  // unchanged since the last message of this session.
  NetworkView?: NodeNetworkView;
  // Set by checkSessionMessage on the receiving side only: why a NetworkView
  // that came was left out (it failed its checks).
  NetworkViewError?: string;
}

export interface HeartbeatRequest { SessionID: string }
export interface HeartbeatResponse { PeriodMs: number }

export interface StatusUpdate { TaskID: string; Status: TaskStatus }
export interface UpdateTaskStatusRequest { SessionID: string; Updates: StatusUpdate[] }
export type UpdateTaskStatusResponse = Record<string, never>;

// ---------- checks ----------

export function checkDescription(raw: unknown): NodeDescription {
  const d = rec(raw, 'Description');
  const p = rec(d.Platform, 'Description.Platform');
  const r = rec(d.Resources ?? {}, 'Description.Resources');
  const e = rec(d.Engine, 'Description.Engine');
  const plugins = arr(e.Plugins ?? [], 'Description.Engine.Plugins', 1000).map((x, i) => {
    const pl = rec(x, `Description.Engine.Plugins[${i}]`);
    return { Type: str(pl.Type, 'plugin Type', 256), Name: str(pl.Name, 'plugin Name', 1024) };
  });
  const engineLabels = labels(e.Labels, 'Description.Engine.Labels');
  const resources: NodeDescription['Resources'] = {};
  const cpus = optNum(r.NanoCPUs, 'Description.Resources.NanoCPUs');
  const mem = optNum(r.MemoryBytes, 'Description.Resources.MemoryBytes');
  if (cpus !== undefined) resources.NanoCPUs = cpus;
  if (mem !== undefined) resources.MemoryBytes = mem;
  if (r.GenericResources !== undefined) resources.GenericResources = arr(r.GenericResources, 'Description.Resources.GenericResources', 1000);
  return {
    Hostname: str(d.Hostname, 'Description.Hostname', 255),
    Platform: { Architecture: str(p.Architecture, 'Description.Platform.Architecture', 64), OS: str(p.OS, 'Description.Platform.OS', 64) },
    Resources: resources,
    Engine: { EngineVersion: str(e.EngineVersion, 'Description.Engine.EngineVersion', 256), ...(engineLabels ? { Labels: engineLabels } : {}), Plugins: plugins },
    TLSInfo: {}, // the node's certificate facts are the managers' to fill, never the agent's
  };
}

export function checkStatus(raw: unknown, what = 'Status'): TaskStatus {
  const s = rec(raw, what);
  const out: TaskStatus = {
    Timestamp: str(s.Timestamp, `${what}.Timestamp`, 64),
    State: oneOf(s.State, TASK_STATES, `${what}.State`),
    Message: str(s.Message ?? '', `${what}.Message`),
  };
  const err = optStr(s.Err, `${what}.Err`);
  if (err !== undefined) out.Err = err;
  if (s.ContainerStatus !== undefined) {
    const c = rec(s.ContainerStatus, `${what}.ContainerStatus`);
    const cs: NonNullable<TaskStatus['ContainerStatus']> = {};
    const cid = optStr(c.ContainerID, `${what}.ContainerStatus.ContainerID`, 256);
    const pid = optNum(c.PID, `${what}.ContainerStatus.PID`);
    const code = optNum(c.ExitCode, `${what}.ContainerStatus.ExitCode`);
    if (cid !== undefined) cs.ContainerID = cid;
    if (pid !== undefined) cs.PID = pid;
    if (code !== undefined) cs.ExitCode = code;
    out.ContainerStatus = cs;
  }
  if (s.PortStatus !== undefined) {
    const ps = rec(s.PortStatus, `${what}.PortStatus`);
    out.PortStatus = ps.Ports === undefined ? {} : { Ports: arr(ps.Ports, `${what}.PortStatus.Ports`, 1000).map((p, i) => rec(p, `${what}.PortStatus.Ports[${i}]`)) as never };
  }
  return out;
}

// A task from the managers: the fields the agent acts on are checked; the
// spec's inside is the executor's to read (it checks what it uses).
export function checkTask(raw: unknown, what = 'task'): Task {
  const t = rec(raw, what);
  id(t.ID, `${what}.ID`);
  id(t.ServiceID, `${what}.ServiceID`);
  if (t.NodeID !== undefined) id(t.NodeID, `${what}.NodeID`);
  rec(t.Version, `${what}.Version`);
  num((t.Version as Rec).Index, `${what}.Version.Index`);
  rec(t.Spec, `${what}.Spec`);
  if (t.Slot !== undefined) num(t.Slot, `${what}.Slot`);
  oneOf(t.DesiredState, TASK_STATES, `${what}.DesiredState`);
  checkStatus(t.Status, `${what}.Status`);
  if (t.Labels !== undefined) labels(t.Labels, `${what}.Labels`);
  str(t.CreatedAt, `${what}.CreatedAt`, 64);
  str(t.UpdatedAt, `${what}.UpdatedAt`, 64);
  return t as unknown as Task;
}

function checkPayload(raw: unknown, what: string): WirePayload {
  const p = rec(raw, what);
  const data = str(p.Data, `${what}.Data`, 2 * 1024 * 1024); // configs up to 1000 KB, as base64
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(data)) throw invalid(`${what}.Data: not base64`);
  const out: WirePayload = { ID: id(p.ID, `${what}.ID`), Name: str(p.Name, `${what}.Name`, 1024), Data: data };
  if (p.Templating !== undefined) {
    const d = rec(p.Templating, `${what}.Templating`);
    out.Templating = { Name: str(d.Name, `${what}.Templating.Name`, 256), ...(d.Options !== undefined ? { Options: labels(d.Options, `${what}.Templating.Options`) } : {}) };
  }
  return out;
}

const ids = (v: unknown, what: string): string[] => arr(v, what).map((x, i) => id(x, `${what}[${i}]`));

export function checkSessionRequest(raw: unknown): SessionRequest {
  const r = rec(raw, 'session request');
  return { SessionID: id(r.SessionID, 'SessionID'), Description: checkDescription(r.Description) };
}

export function checkSessionMessage(raw: unknown): SessionMessage {
  const m = rec(raw, 'session message');
  const node = rec(m.Node, 'Node');
  const hb = num(m.HeartbeatMs, 'HeartbeatMs');
  if (hb <= 0) throw invalid('HeartbeatMs: must be positive');
  return {
    SessionID: id(m.SessionID, 'SessionID'),
    Node: {
      Role: oneOf(node.Role, ['manager', 'worker'] as const, 'Node.Role'), Availability: oneOf(node.Availability, ['active', 'pause', 'drain'] as const, 'Node.Availability'),
      ...(node.Version !== undefined ? { Version: version(node.Version, 'Node.Version') } : {}),
    },
    Managers: managerList(m.Managers, 'Managers'),
    HeartbeatMs: hb,
    ...(m.RootCA !== undefined ? { RootCA: rootCAField(m.RootCA) } : {}),
    Full: bool(m.Full, 'Full'),
    More: bool(m.More, 'More'),
    Tasks: arr(m.Tasks, 'Tasks').map((t, i) => checkTask(t, `Tasks[${i}]`)),
    Removed: ids(m.Removed, 'Removed'),
    Services: arr(m.Services, 'Services').map((s, i) => {
      const r = rec(s, `Services[${i}]`);
      const l = labels(r.Labels, `Services[${i}].Labels`);
      return { ID: id(r.ID, `Services[${i}].ID`), Name: str(r.Name, `Services[${i}].Name`, 1024), ...(l ? { Labels: l } : {}) };
    }),
    Secrets: arr(m.Secrets, 'Secrets').map((p, i) => checkPayload(p, `Secrets[${i}]`)),
    Configs: arr(m.Configs, 'Configs').map((p, i) => checkPayload(p, `Configs[${i}]`)),
    RemovedSecrets: ids(m.RemovedSecrets, 'RemovedSecrets'),
    RemovedConfigs: ids(m.RemovedConfigs, 'RemovedConfigs'),
    ...networkViewField(m.NetworkView),
  };
}

function rootCAField(raw: unknown): NonNullable<SessionMessage['RootCA']> {
  const r = rec(raw, 'RootCA');
  const bundle = str(r.Bundle, 'RootCA.Bundle', 64 * 1024);
  if (!bundle.includes('-----BEGIN CERTIFICATE-----')) throw invalid('RootCA.Bundle: not PEM certificates');
  return { Bundle: bundle, IssuerPublicKey: str(r.IssuerPublicKey, 'RootCA.IssuerPublicKey', 1024) };
}

// A bad view fails alone: the message (its tasks) still counts, and the agent
// is told why the view was left out (NetworkViewError).
function networkViewField(raw: unknown): Pick<SessionMessage, 'NetworkView' | 'NetworkViewError'> {
  if (raw === undefined) return {};
  try { return { NetworkView: checkNodeNetworkView(raw) }; } catch (err) { return { NetworkViewError: (err as Error).message }; }
}

function checkHeartbeatRequest(raw: unknown): HeartbeatRequest {
  return { SessionID: id(rec(raw, 'heartbeat request').SessionID, 'SessionID') };
}

function checkHeartbeatResponse(raw: unknown): HeartbeatResponse {
  const p = num(rec(raw, 'heartbeat response').PeriodMs, 'PeriodMs');
  if (p <= 0) throw invalid('PeriodMs: must be positive');
  return { PeriodMs: p };
}

export function checkUpdateTaskStatusRequest(raw: unknown): UpdateTaskStatusRequest {
  const r = rec(raw, 'status request');
  return {
    SessionID: id(r.SessionID, 'SessionID'),
    Updates: arr(r.Updates, 'Updates', MAX_STATUS_UPDATES).map((u, i) => {
      const x = rec(u, `Updates[${i}]`);
      return { TaskID: id(x.TaskID, `Updates[${i}].TaskID`), Status: checkStatus(x.Status, `Updates[${i}].Status`) };
    }),
  };
}

export const Session: StreamMethod<SessionRequest, SessionMessage> = {
  name: 'dispatcher.Session', access: 'node', request: checkSessionRequest, message: checkSessionMessage,
};
export const Heartbeat: UnaryMethod<HeartbeatRequest, HeartbeatResponse> = {
  name: 'dispatcher.Heartbeat', access: 'node', request: checkHeartbeatRequest, response: checkHeartbeatResponse,
};
export const Heartbeats: UnaryMethod<HeartbeatRequest, HeartbeatResponse> = { ...Heartbeat, name: 'dispatcher.Heartbeats' };
export const UpdateTaskStatus: UnaryMethod<UpdateTaskStatusRequest, UpdateTaskStatusResponse> = {
  name: 'dispatcher.UpdateTaskStatus', access: 'node', request: checkUpdateTaskStatusRequest,
  response: (raw) => { rec(raw, 'status response'); return {}; },
};
export const UpdateTaskStatuses: UnaryMethod<UpdateTaskStatusRequest, UpdateTaskStatusResponse> = { ...UpdateTaskStatus, name: 'dispatcher.UpdateTaskStatuses' };

// The node a relaying manager verified (its certificate's ID and role, the
// address it called from).
export interface RelayedFor { NodeID: string; Role: NodeRole; Addr: string }
export interface Relayed<Req> { For: RelayedFor; Req: Req }

// Heartbeats and status reports of many nodes go in one call (grpc-js and
// HTTP/2's per-call work was a large share of a busy leader's profile), and
// each is answered on its own: one node's stale session fails only its own entry.
export interface RelayHeartbeatsRequest { Beats: Array<{ For: RelayedFor; SessionID: string }> }
export interface RelayUpdateTaskStatusRequest { Reports: Array<{ For: RelayedFor; SessionID: string; Updates: StatusUpdate[] }> }
export interface RelayedError { Kind: ErrorKind; Message: string }
export interface RelayHeartbeatsResponse { Results: Array<{ PeriodMs?: number; Error?: RelayedError }> }
export interface RelayUpdateTaskStatusResponse { Results: Array<{ Error?: RelayedError }> }
export const MAX_RELAYED = 10_000;

function checkFor(raw: unknown, what: string): RelayedFor {
  const f = rec(raw, what);
  return { NodeID: id(f.NodeID, `${what}.NodeID`), Role: oneOf(f.Role, ['manager', 'worker'] as const, `${what}.Role`), Addr: str(f.Addr, `${what}.Addr`, 300) };
}

function checkRelayedError(raw: unknown, what: string): RelayedError | undefined {
  if (raw === undefined) return undefined;
  const e = rec(raw, what);
  return { Kind: oneOf(e.Kind, ERROR_KINDS, `${what}.Kind`), Message: str(e.Message, `${what}.Message`) };
}

// An entry's error as it crosses back to the relaying manager, and as it is
// raised there: the same kind and text the node would have had directly.
export function relayedError(err: unknown): RelayedError {
  return { Kind: isShoalError(err) ? err.kind : 'internal', Message: (err as Error)?.message ?? String(err) };
}
export const raiseRelayed = (e: RelayedError): ShoalError => new ShoalError(e.Kind, e.Message);

export const RelaySession: StreamMethod<Relayed<SessionRequest>, SessionMessage> = {
  name: 'dispatcher.RelaySession', access: 'manager', message: checkSessionMessage,
  request: (raw) => { const r = rec(raw, 'relayed session'); return { For: checkFor(r.For, 'For'), Req: checkSessionRequest(r.Req) }; },
};
// The same call as the relaying manager makes it: the leader's messages come
// as bytes, handed to the node unread (the node's own Session check reads them).
export const RelaySessionPassed: StreamMethod<Relayed<SessionRequest>, Passed<SessionMessage>> = { ...RelaySession, message: passedOn<SessionMessage>() };
export const RelayHeartbeats: UnaryMethod<RelayHeartbeatsRequest, RelayHeartbeatsResponse> = {
  name: 'dispatcher.RelayHeartbeats', access: 'manager',
  request: (raw) => ({
    Beats: arr(rec(raw, 'relayed heartbeats').Beats, 'Beats', MAX_RELAYED).map((b, i) => {
      const x = rec(b, `Beats[${i}]`);
      return { For: checkFor(x.For, `Beats[${i}].For`), SessionID: id(x.SessionID, `Beats[${i}].SessionID`) };
    }),
  }),
  response: (raw) => ({
    Results: arr(rec(raw, 'relayed heartbeats answer').Results, 'Results', MAX_RELAYED).map((r, i) => {
      const x = rec(r, `Results[${i}]`);
      const error = checkRelayedError(x.Error, `Results[${i}].Error`);
      return error ? { Error: error } : { PeriodMs: checkHeartbeatResponse(x).PeriodMs };
    }),
  }),
};
export const RelayUpdateTaskStatus: UnaryMethod<RelayUpdateTaskStatusRequest, RelayUpdateTaskStatusResponse> = {
  name: 'dispatcher.RelayUpdateTaskStatus', access: 'manager',
  request: (raw) => ({
    Reports: arr(rec(raw, 'relayed status reports').Reports, 'Reports', MAX_RELAYED).map((b, i) => {
      const x = rec(b, `Reports[${i}]`);
      const req = checkUpdateTaskStatusRequest(x);
      return { For: checkFor(x.For, `Reports[${i}].For`), SessionID: req.SessionID, Updates: req.Updates };
    }),
  }),
  response: (raw) => ({
    Results: arr(rec(raw, 'relayed status answer').Results, 'Results', MAX_RELAYED).map((r, i) => {
      const error = checkRelayedError(rec(r, `Results[${i}]`).Error, `Results[${i}].Error`);
      return error ? { Error: error } : {};
    }),
  }),
};

// ---------- errors both sides read ----------

// A manager that is not the leader names the leader in its answer; the agent
// reads the address back from it (only the kind and the text cross the wire).
const NOT_LEADER = 'dispatcher: this manager is not the leader';
export function notLeader(leaderAddr: string | undefined): ShoalError {
  return unavailable(leaderAddr ? `${NOT_LEADER}; the leader is at ${leaderAddr}` : `${NOT_LEADER}, and no leader is known`);
}
// A manager that relays but cannot reach the leader: the node should try
// another manager (it is "not the leader" with no leader named).
export function leaderUnreachable(detail: string): ShoalError {
  return unavailable(`${NOT_LEADER}, and cannot reach the leader: ${detail}`);
}
// A relaying manager whose leader did not answer a batch of beats (a
// deadline, a dropped connection): to the node a missed beat, as if its own
// call had gone unanswered, so it beats again on the same session.
const BEAT_NOT_RELAYED = 'dispatcher: the leader did not answer the relayed heartbeat';
export function relayedBeatMissed(detail: string): ShoalError {
  return unavailable(`${BEAT_NOT_RELAYED}: ${detail}`);
}
export const isRelayedBeatMissed = (err: unknown): boolean => ((err as Error)?.message ?? '').startsWith(BEAT_NOT_RELAYED);
export const isNotLeader = (err: unknown): boolean => ((err as Error)?.message ?? '').startsWith(NOT_LEADER);
export function leaderFromError(err: unknown): string | undefined {
  const m = /this manager is not the leader; the leader is at (\S+)$/.exec((err as Error)?.message ?? '');
  return m?.[1];
}

// The session a call names is not this node's current session (the dispatcher
// restarted, another session replaced it): the agent opens a new one.
export const SESSION_INVALID = 'dispatcher: session invalid';
export const isSessionInvalid = (err: unknown): boolean => ((err as Error)?.message ?? '').includes(SESSION_INVALID);
