import { createHash } from 'node:crypto';
import type { Node, NodeDescription, NodeRole, NodeSpec, Task, TaskStatus } from '../../model/types';
import { taskStateRank } from '../../model/types';
import { notFound, ShoalError, unavailable } from '../../common/errors';
import type { Logger } from '../../common/log';
import { nowIso } from '../../common/time';
import { deepEqual } from '../../common/deep-equal';
import type { CallContext, RpcChannel, RpcServer } from '../../rpc/transport';
import {
  Heartbeat, Heartbeats, RelayHeartbeats, RelaySession, RelayUpdateTaskStatus, Session, UpdateTaskStatus, UpdateTaskStatuses, notLeader, relayedError, SESSION_INVALID,
  type HeartbeatRequest, type HeartbeatResponse, type RelayedFor, type SessionMessage, type SessionRequest, type ServiceInfo,
  type StatusUpdate, type UpdateTaskStatusRequest, type UpdateTaskStatusResponse, type WirePayload,
} from '../../protocol/dispatcher';
import { LeaderRelay, RELAY_LEADER_CHANGED } from './relay';
import type { ClusterObject, StoreEvent } from '../../store/objects';
import { BATCHES_IN_FLIGHT, eachBatch, type Store } from '../../store/store';
import { eachConcurrently } from '../../common/concurrent';
import type { NodeNetworkView, ViewKey } from '../../protocol/network-view';
import { NetworkIndex } from './network-index';
import { dropNodeAttachments, registerAttachmentHandlers } from './attachments';
import { isAttachmentTask } from '../../protocol/attachments';
import { toManagerList, type KnownManagers } from '../../protocol/checks';
import { networkViewFor } from './network-view';
import { wantedTrust } from '../ca/rotation';
import {
  allowanceMs, expect, forgive, forgiveSome, heard, heartbeatIntervalMs, heartbeatPeriodMs, HEARTBEAT_FAILURE, nextExpiry, periodInForceMs, relayHeldUp, relayStallMs, RELAY_STALL_MIN_MS, startLeading, takeExpired, type DownMarks, type Liveness,
} from './liveness';

// The dispatcher (SwarmKit manager/dispatcher): the managers' end of every
// node's session. Handlers are registered once; only while this manager leads
// do they serve, otherwise they answer `unavailable` naming the leader.
//
// While leading it: records a registering node's description and marks it
// ready; keeps heartbeats in memory (no store write per beat) and marks down a
// node unheard of for its allowance (liveness.ts); sends each node its tasks,
// the secrets and configs they use and the cluster facts it needs; writes the
// task statuses nodes report, stamped with this manager's clock, in batches.

// How a manager opens stored values (controlapi secrets/configs `reveal`).
export interface PayloadSource {
  revealSecret(id: string): Buffer | undefined;
  revealConfig(id: string): Buffer | undefined;
}

export interface DispatcherOptions {
  store: Store;       // reads; writes go through the fenced store of the term (setLeading)
  server: RpcServer;
  log: Logger;
  now?: () => number;
  // Applied to every task sent to a node (e.g. opening sealed registry auth).
  prepareTask?: (t: Task) => Task;
  // The managers' addresses (host:port) and the leader's, for agents to reconnect.
  managers?: () => KnownManagers;
  // Secret and config values; without it tasks get none (and reject when they need any).
  payloads?: PayloadSource;
  // The encrypted overlays' data-path keys, opened (manager/netkeys/reader.ts);
  // without it views carry none.
  networkKeys?: () => ViewKey[] | undefined;
  // Channels to other managers: with it, a manager that does not lead relays
  // its nodes' sessions to the leader (relay.ts) instead of sending them there.
  connect?: (addr: string) => RpcChannel;
}

export interface Dispatcher {
  // The fenced store of this manager's term while it leads (its writes are
  // refused once deposed), undefined when it stops leading.
  setLeading(fenced: Store | undefined): void;
  stop(): Promise<void>;
}

// A full set bigger than this is sent in several messages (the transport's
// message limit is 4 MiB).
const FULL_CHUNK_BYTES = 1024 * 1024;
// The stall ticker's period, and the delay past it that counts as a stall of this manager.
const STALL_TICK_MS = 500;
const STALL_MIN_MS = 1000;
// A failed "node down" write is tried again after this.
const MARK_DOWN_RETRY_MS = 1000;
// Changes to other nodes' endpoints, services and LB addresses reach a node's
// network view within this bound (coalesced); its own tasks' at once.
const NETWORK_VIEW_DELAY_MS = 20;
// At most one line per this about nodes whose marking down was put off.
const BURST_LOG_MS = 10_000;

interface SessionState {
  id: string;
  nodeId: string;
  send(m: SessionMessage): void;
  end(err: Error): void;
  tasks: Map<string, Task>;     // what the node has been told (the latest store version of each)
  secrets: Set<string>;
  configs: Set<string>;
  settings?: SentSettings;      // Node/Managers/HeartbeatMs/RootCA as last sent
  viewDigest: string;           // of the NetworkView last sent
  viewNets: Set<string>;        // the networks in it
  endpointNets: Set<string>;    // those where the node has endpoints (its view has every node's LB address there)
  certRole: NodeRole;           // the role in the node's certificate, should the store not know the node
  via?: string;                 // the manager relaying the session (relay.ts), if not direct
}

// What a session's settings were judged on when last sent: the shared part's
// key, and the node's role and availability (not its version: a status write
// is no news to the agent). Kept apart, so that checking them for each batch
// of status events builds no string.
interface SentSettings { shared: string; role: NodeRole; availability: NonNullable<NodeSpec['Availability']> }

interface Queued { nodeId: string; status: TaskStatus; done: Array<(err?: unknown) => void> }

const RANK_ASSIGNED = taskStateRank('assigned');
const RANK_RUNNING = taskStateRank('running');
// What an agent observes: from `accepted` to `rejected` (the managers set the others).
const RANK_ACCEPTED = taskStateRank('accepted');
const RANK_REJECTED = taskStateRank('rejected');

// A container's network attachment is the node's daemon's own, never an agent's task.
const isAssignedTo = (t: Task | undefined, nodeId: string): t is Task =>
  !!t && t.NodeID === nodeId && taskStateRank(t.Status.State) >= RANK_ASSIGNED && !isAttachmentTask(t);

// A task's secrets and configs are needed until its container is over.
const needsPayloads = (t: Task): boolean => taskStateRank(t.Status.State) <= RANK_RUNNING;

const hasRefs = (t: Task | undefined): boolean => !!(t?.Spec.ContainerSpec?.Secrets?.length || t?.Spec.ContainerSpec?.Configs?.length);

// What the agent acts on changed (SwarmKit's TasksEqualStable): status-only
// changes past `assigned` are the agent's own reports and are not echoed.
function sameForAgent(a: Task, b: Task): boolean {
  if (taskStateRank(b.Status.State) <= RANK_ASSIGNED) return false;
  return a.DesiredState === b.DesiredState && a.NodeID === b.NodeID && a.Slot === b.Slot && a.ServiceID === b.ServiceID
    && (a.Spec === b.Spec || deepEqual(a.Spec, b.Spec)) && deepEqual(a.Labels, b.Labels)
    && deepEqual(a.NetworksAttachments, b.NetworksAttachments) && deepEqual(a.JobIteration, b.JobIteration);
}

function sameStatus(a: TaskStatus, b: TaskStatus): boolean {
  return a.State === b.State && a.Message === b.Message && a.Err === b.Err
    && deepEqual(a.ContainerStatus, b.ContainerStatus) && deepEqual(a.PortStatus ?? {}, b.PortStatus ?? {});
}

export function startDispatcher(opts: DispatcherOptions): Dispatcher {
  const { store, server, log } = opts;
  const now = opts.now ?? Date.now;
  const prepareTask = opts.prepareTask ?? ((t: Task) => t);
  const managers: () => KnownManagers = opts.managers ?? (() => ({ addrs: [] }));

  let leading = false;
  let term: Store | undefined; // the fenced store, while leading
  const relay = opts.connect
    ? new LeaderRelay({ connect: opts.connect, leaderAddr: () => managers().leaderAddr, log })
    : undefined;
  let stopped = false;
  let liveness: Liveness = new Map();
  let downMarks: DownMarks = []; // when nodes were marked down lately (liveness.ts takeExpired)
  let lastBurstLog = -Infinity;
  let timer: NodeJS.Timeout | undefined;
  let timerAt = Infinity;
  const sessions = new Map<string, SessionState>();
  const queue = new Map<string, Queued>();
  let flushing: Promise<void> | undefined;
  let unsubscribe: (() => void) | undefined;
  // While leading: the store by network, and the nodes whose network view may have changed.
  let netIndex: NetworkIndex | undefined;
  const viewDirty = new Set<string>();
  let viewTimer: NodeJS.Timeout | undefined;

  // Writes only through the term's fence: a write still running when the
  // term ends is refused by etcd rather than made by a deposed leader.
  const writer = (): Store => {
    if (!term) throw unavailable('dispatcher: this manager is not the leader');
    return term;
  };
  // The heartbeat period in force: the configured one, longer in a big cluster (liveness.ts periodInForceMs).
  const configuredNs = (): number | undefined => store.first('cluster')?.Spec?.Dispatcher?.HeartbeatPeriod;
  const configuredPeriodMs = (): number => heartbeatPeriodMs(configuredNs());
  const periodMs = (): number => periodInForceMs(configuredNs(), store.count('nodes'));
  // The leader says when that period changes. Called where it can change (a
  // node added or removed, the cluster's spec), not on every beat.
  let loggedPeriodMs: number | undefined;
  const notePeriod = (): void => {
    const ms = periodMs();
    if (ms === loggedPeriodMs) return;
    const configuredMs = configuredPeriodMs();
    if (loggedPeriodMs !== undefined || ms !== configuredMs) log.info({ periodMs: ms, configuredMs, nodes: store.count('nodes') }, 'heartbeat period in force changed (the configured one, longer in a big cluster)');
    loggedPeriodMs = ms;
  };

  function refuse(): never {
    if (stopped) throw unavailable('dispatcher: stopped');
    throw notLeader(managers().leaderAddr);
  }

  // ---------- liveness ----------

  // The timer is set for the earliest expiry. Finding it is O(nodes), so it is
  // done only after a sweep or a change of leadership; a heartbeat only moves
  // its node's expiry later, and a new node's expiry needs a look only when it
  // is earlier than the timer (armBy). A timer that fires early finds nothing
  // expired and sets itself again: at most one wasted sweep per expiry.
  function armTimer(): void {
    setTimer(leading ? nextExpiry(liveness) ?? Infinity : Infinity);
  }

  function armBy(nodeId: string): void {
    const at = liveness.get(nodeId);
    if (leading && at !== undefined && at < timerAt) setTimer(at);
  }

  function setTimer(next: number): void {
    if (next === timerAt) return;
    if (timer) clearTimeout(timer);
    timer = undefined;
    timerAt = next;
    if (next === Infinity) return;
    timer = setTimeout(() => {
      timer = undefined;
      timerAt = Infinity;
      checkLiveness();
    }, Math.max(0, next - now()));
    timer.unref?.();
  }

  // Event-loop stalls, seen by a ticker; checked again before any expiry is
  // acted on (an overdue expiry timer can run before the overdue tick).
  let lastTick = now();
  let ownStallsMs = 0; // all this manager's stalls forgiven so far (relayedBeats)
  function noticeStall(): void {
    const t = now();
    const stalled = t - lastTick - STALL_TICK_MS;
    lastTick = t;
    if (stalled < STALL_MIN_MS || !leading) return;
    forgive(liveness, stalled);
    ownStallsMs += stalled;
    log.warn({ stalledMs: Math.round(stalled) }, 'dispatcher was held up: heartbeat allowances extended by the delay');
    armTimer();
  }
  const stallTicker = setInterval(noticeStall, STALL_TICK_MS);
  stallTicker.unref?.();

  // When each relaying manager's last batch of beats came (liveness.ts
  // relayStallMs): a long silence before the next is that manager's stall.
  const relayBeats = new Map<string, { at: number; ownStallsMs: number }>();
  // A relay's silence since its last batch, less this manager's own stalls meanwhile.
  const netSilence = (last: { at: number; ownStallsMs: number }, t: number): number => t - last.at - (ownStallsMs - last.ownStallsMs);
  function relayedBeats(manager: string): void {
    noticeStall();
    const t = now();
    const last = relayBeats.get(manager);
    relayBeats.set(manager, { at: t, ownStallsMs });
    // The common case (batches ms apart) walks no sessions.
    if (!last || !leading || netSilence(last, t) < RELAY_STALL_MIN_MS) return;
    const relayed = [...sessions.values()].filter((s) => s.via === manager).map((s) => s.nodeId);
    const ms = relayStallMs(t - last.at, ownStallsMs - last.ownStallsMs, relayed.length, periodMs());
    if (!ms) return;
    forgiveSome(liveness, relayed, ms);
    log.warn({ relay: manager, stalledMs: Math.round(ms), nodes: relayed.length }, 'relayed heartbeats were held up: those nodes\' allowances extended by the delay');
    armTimer();
  }

  // The relays in a silence now, with when it began: their nodes alive then are not judged yet.
  function heldUpRelays(): Map<string, number> | undefined {
    const t = now();
    let silent: Array<[string, { at: number; ownStallsMs: number }]> | undefined;
    for (const [m, last] of relayBeats) if (netSilence(last, t) >= RELAY_STALL_MIN_MS) (silent ??= []).push([m, last]);
    if (!silent) return undefined;
    const counts = new Map<string, number>();
    for (const s of sessions.values()) if (s.via) counts.set(s.via, (counts.get(s.via) ?? 0) + 1);
    const held = new Map<string, number>();
    for (const [m, last] of silent) if (relayHeldUp(t - last.at, ownStallsMs - last.ownStallsMs, counts.get(m) ?? 0, periodMs())) held.set(m, last.at);
    return held.size ? held : undefined;
  }

  function checkLiveness(): void {
    if (!leading) return;
    noticeStall();
    const held = heldUpRelays();
    const pending = held && ((id: string, at: number): boolean => {
      const via = sessions.get(id)?.via;
      const since = via === undefined ? undefined : held.get(via);
      return since !== undefined && at >= since;
    });
    const { down, deferred, disrupted, limit, pending: waiting } = takeExpired(liveness, downMarks, now(), periodMs(), pending);
    if (deferred && now() - lastBurstLog >= BURST_LOG_MS) {
      lastBurstLog = now();
      log.warn({ deferred, disrupted, limit, windowMs: allowanceMs(periodMs()) },
        disrupted ? 'most nodes missed their heartbeats at once (the managers\' side, most likely): only a few are marked down per allowance, the others get more time'
          : 'many nodes missed their heartbeats at once: only so many are marked down per allowance, the others get more time');
    }
    for (const id of down) {
      log.debug({ node: id }, 'heartbeat allowance ran out');
      void markDown(id);
    }
    // Nodes left waiting for their relay are overdue: look again a tick later, not at once.
    if (waiting) setTimer(Math.max(nextExpiry(liveness) ?? Infinity, now() + STALL_TICK_MS));
    else armTimer();
  }

  // A node's status writes (ready at registration, down at expiry) run one at
  // a time, each deciding when its turn comes: a "down" started before the
  // node registered again must not land after its "ready".
  const nodeWrites = new Map<string, Promise<unknown>>();
  function nodeWrite<T>(nodeId: string, write: () => Promise<T>): Promise<T> {
    const next = (nodeWrites.get(nodeId) ?? Promise.resolve()).then(write);
    const tail = next.catch(() => undefined);
    nodeWrites.set(nodeId, tail);
    void tail.then(() => { if (nodeWrites.get(nodeId) === tail) nodeWrites.delete(nodeId); });
    return next;
  }

  // Registrations written per node: an expiry decided before one must not undo it.
  const registrations = new Map<string, number>();

  async function markDown(nodeId: string): Promise<void> {
    const seen = registrations.get(nodeId);
    // A session still open without heartbeats is a dead connection: end it.
    const s = sessions.get(nodeId);
    const via = s?.via ?? (s ? 'direct' : 'no session');
    if (s) { sessions.delete(nodeId); s.end(unavailable('dispatcher: no heartbeat within the allowance; register again')); }
    try {
      const written = await nodeWrite(nodeId, () => writer().mutate('nodes', nodeId, (n) => {
        if (registrations.get(nodeId) !== seen) return undefined; // it registered again meanwhile
        if (n.Status.State === 'down') return undefined;
        n.Status = { State: 'down', Message: HEARTBEAT_FAILURE, Addr: n.Status.Addr };
        return n;
      }));
      if (written) log.warn({ node: nodeId, via, allowanceMs: allowanceMs(periodMs()) }, 'node marked down: heartbeat failure');
      else log.debug({ node: nodeId }, 'node not marked down: already down, or it registered again');
    } catch (err) {
      if (!leading) return;
      log.warn({ err: (err as Error).message, node: nodeId }, 'marking a node down failed; retrying');
      if (!liveness.has(nodeId)) liveness.set(nodeId, now() + MARK_DOWN_RETRY_MS);
      armBy(nodeId);
    }
  }

  // ---------- sessions ----------

  // What every session's messages carry alike (the managers, the trust, the
  // heartbeat), made once per turn of the event loop: one batch of store
  // events reaches hundreds of sessions, and finding the managers walks every
  // node. `key` is what a change of them is judged on.
  let shared: { part: Pick<SessionMessage, 'Managers' | 'HeartbeatMs' | 'RootCA'>; key: string } | undefined;
  function sharedSettings(): NonNullable<typeof shared> {
    if (shared) return shared;
    const m = managers();
    const cluster = store.first('cluster');
    const trust = cluster?.TLSInfo.TrustRoot ? wantedTrust(cluster) : undefined;
    const part = {
      ...(trust ? { RootCA: { Bundle: trust.bundle, IssuerPublicKey: trust.issuerPublicKey } } : {}),
      Managers: toManagerList(m),
      HeartbeatMs: heartbeatIntervalMs(periodMs()),
    };
    shared = { part, key: JSON.stringify(part) };
    queueMicrotask(() => { shared = undefined; });
    return shared;
  }

  // The session's node settings. Never 'worker' for a node the mirror does
  // not show (yet): a manager reads the role in its session as a demotion.
  // Version orders role notices on the node (node/role.ts): 0, unknown, for the certificate's role.
  function nodeSettings(s: SessionState): { Role: NodeRole; Availability: NonNullable<NodeSpec['Availability']>; Version: number } {
    const n = store.get('nodes', s.nodeId);
    return { Role: n?.Spec.Role ?? s.certRole, Availability: n?.Spec.Availability ?? 'active', Version: n?.Version.Index ?? 0 };
  }

  function settingsChanged(s: SessionState, node = nodeSettings(s)): boolean {
    const sent = s.settings;
    return !sent || sent.shared !== sharedSettings().key || sent.role !== node.Role || sent.availability !== node.Availability;
  }

  function message(s: SessionState, part: Partial<SessionMessage>): SessionMessage {
    const shared = sharedSettings();
    const node = nodeSettings(s);
    // The roots (a PEM bundle, most of a one-task message) only when they or
    // the other settings changed: every message of a busy session carried them.
    const { RootCA, ...rest } = shared.part;
    const settings = settingsChanged(s, node) ? { ...rest, ...(RootCA ? { RootCA } : {}) } : rest;
    s.settings = { shared: shared.key, role: node.Role, availability: node.Availability };
    return {
      SessionID: s.id, ...settings, Node: node, Full: false, More: false, Tasks: [], Removed: [], Services: [],
      Secrets: [], Configs: [], RemovedSecrets: [], RemovedConfigs: [], ...part,
    };
  }

  function servicesOf(tasks: Task[]): ServiceInfo[] {
    const out = new Map<string, ServiceInfo>();
    for (const t of tasks) {
      if (out.has(t.ServiceID)) continue;
      const svc = store.get('services', t.ServiceID);
      if (svc) out.set(svc.ID, { ID: svc.ID, Name: svc.Spec.Name ?? '', ...(svc.Spec.Labels ? { Labels: svc.Spec.Labels } : {}) });
    }
    return [...out.values()];
  }

  // Brings the session's payload sets in line with its tasks: new values to send, IDs to drop.
  function payloadDiff(s: SessionState): Pick<SessionMessage, 'Secrets' | 'Configs' | 'RemovedSecrets' | 'RemovedConfigs'> {
    const wantSecrets = new Set<string>();
    const wantConfigs = new Set<string>();
    for (const t of s.tasks.values()) {
      if (!needsPayloads(t)) continue;
      for (const r of t.Spec.ContainerSpec?.Secrets ?? []) wantSecrets.add(r.SecretID);
      for (const r of t.Spec.ContainerSpec?.Configs ?? []) wantConfigs.add(r.ConfigID);
    }
    const Secrets: WirePayload[] = [];
    const Configs: WirePayload[] = [];
    for (const id of wantSecrets) {
      if (s.secrets.has(id)) continue;
      const v = reveal('secrets', id);
      if (v) { Secrets.push(v); s.secrets.add(id); }
    }
    for (const id of wantConfigs) {
      if (s.configs.has(id)) continue;
      const v = reveal('configs', id);
      if (v) { Configs.push(v); s.configs.add(id); }
    }
    const RemovedSecrets = [...s.secrets].filter((id) => !wantSecrets.has(id));
    const RemovedConfigs = [...s.configs].filter((id) => !wantConfigs.has(id));
    for (const id of RemovedSecrets) s.secrets.delete(id);
    for (const id of RemovedConfigs) s.configs.delete(id);
    return { Secrets, Configs, RemovedSecrets, RemovedConfigs };
  }

  function reveal(kind: 'secrets' | 'configs', id: string): WirePayload | undefined {
    const obj = store.get(kind, id);
    if (!obj || !opts.payloads) return undefined;
    let data: Buffer | undefined;
    try {
      data = kind === 'secrets' ? opts.payloads.revealSecret(id) : opts.payloads.revealConfig(id);
    } catch (err) {
      log.error({ err: (err as Error).message, [kind === 'secrets' ? 'secret' : 'config']: id }, 'opening a stored value failed; left out');
      return undefined;
    }
    if (!data) return undefined;
    const out: WirePayload = { ID: obj.ID, Name: obj.Spec.Name ?? '', Data: data.toString('base64') };
    data.fill(0);
    if (obj.Spec.Templating) out.Templating = obj.Spec.Templating;
    return out;
  }

  // ---------- network views ----------

  // The node's view, or undefined when it is what the node has.
  function viewChange(s: SessionState): NodeNetworkView | undefined {
    const view = networkViewFor(s.nodeId, netIndex ?? new NetworkIndex(store), opts.networkKeys?.());
    const digest = createHash('sha256').update(JSON.stringify(view)).digest('base64');
    if (digest === s.viewDigest) return undefined;
    s.viewDigest = digest;
    s.viewNets = new Set(view.Networks.map((n) => n.ID));
    s.endpointNets = new Set(view.Endpoints.filter((e) => e.NodeID === s.nodeId).map((e) => e.NetworkID));
    return view;
  }

  function sendView(s: SessionState): void {
    const view = viewChange(s);
    if (view) s.send(message(s, { NetworkView: view }));
  }

  function flushViews(): void {
    if (viewTimer) clearTimeout(viewTimer);
    viewTimer = undefined;
    const ids = [...viewDirty];
    viewDirty.clear();
    for (const id of ids) {
      const s = sessions.get(id);
      if (!s) continue;
      try { sendView(s); } catch (err) { log.error({ err, node: id }, 'network view not computed'); }
    }
  }

  // The node's whole set, in messages of at most FULL_CHUNK_BYTES of tasks.
  function sendFull(s: SessionState): void {
    s.tasks.clear();
    for (const t of store.tasksOfNode(s.nodeId)) if (isAssignedTo(t, s.nodeId)) s.tasks.set(t.ID, t);
    const all = [...s.tasks.values()].map(prepareTask);
    const chunks: Task[][] = [[]];
    let bytes = 0;
    for (const t of all) {
      const size = JSON.stringify(t).length;
      if (bytes + size > FULL_CHUNK_BYTES && chunks[chunks.length - 1]!.length) { chunks.push([]); bytes = 0; }
      chunks[chunks.length - 1]!.push(t);
      bytes += size;
    }
    const payloads = payloadDiff(s);
    // The networks first, so they can be built before any task starts.
    const view = viewChange(s);
    chunks.forEach((tasks, i) => {
      const last = i === chunks.length - 1;
      s.send(message(s, { Full: true, More: !last, Tasks: tasks, Services: servicesOf(tasks), ...(last ? payloads : {}), ...(i === 0 && view ? { NetworkView: view } : {}) }));
    });
  }

  // What changed for one session in a batch of store events.
  // Most batches are the agents' own status reports, news to no one: nothing
  // is allocated for them (it runs once per node and batch of store events).
  function sendChanges(s: SessionState, taskIds: Set<string>): void {
    let changed: Task[] | undefined;
    let removed: string[] | undefined;
    let refs = false; // only tasks with secrets or configs can change what the node needs
    for (const id of taskIds) {
      const cur = store.get('tasks', id);
      const had = s.tasks.get(id);
      if (isAssignedTo(cur, s.nodeId)) {
        s.tasks.set(id, cur);
        if (!had || !sameForAgent(had, cur)) (changed ??= []).push(cur);
      } else if (had) {
        s.tasks.delete(id);
        (removed ??= []).push(id);
      } else continue;
      refs ||= hasRefs(had) || hasRefs(cur);
    }
    const payloads = refs ? payloadDiff(s) : undefined;
    const payloadNews = !!payloads && (payloads.Secrets.length || payloads.Configs.length || payloads.RemovedSecrets.length || payloads.RemovedConfigs.length);
    if (!changed && !removed && !payloadNews && !settingsChanged(s)) return;
    const tasks = (changed ?? []).map(prepareTask);
    s.send(message(s, { Tasks: tasks, Removed: removed ?? [], Services: servicesOf(tasks), ...payloads }));
  }

  // Which nodes' network views an event batch may change: the node's own
  // (its tasks' networks) at once, before its task changes go out; those of
  // nodes on a touched network within NETWORK_VIEW_DELAY_MS.
  function onNetworkEvents(events: StoreEvent[]): void {
    if (!netIndex) return;
    const touched = netIndex.apply(events);
    // The cluster object holds the data-path keys: every view may change (the digest keeps unchanged ones home).
    if (events.some((e) => e.kind === 'cluster' && !deepEqual((e.object as ClusterObject | undefined)?.NetworkKeys, (e.previous as ClusterObject | undefined)?.NetworkKeys))) touched.all = true;
    if (!touched.all && !touched.networks.size && !touched.lbNetworks.size && !touched.nodes.size) return;
    for (const s of sessions.values()) {
      if (touched.nodes.has(s.nodeId)) { viewDirty.delete(s.nodeId); sendView(s); continue; }
      if (touched.all || [...touched.networks].some((id) => s.viewNets.has(id)) || [...touched.lbNetworks].some((id) => s.endpointNets.has(id))) viewDirty.add(s.nodeId);
    }
    if (viewDirty.size && !viewTimer) viewTimer = setTimeout(flushViews, NETWORK_VIEW_DELAY_MS);
  }

  function onEvents(events: StoreEvent[]): void {
    if (!leading) return;
    // A change in the same turn (several batches applied at once) is seen at once.
    if (events.some((e) => e.kind === 'nodes' || e.kind === 'cluster')) { shared = undefined; notePeriod(); }
    try { onNetworkEvents(events); } catch (err) { log.error({ err }, 'network views not updated'); }
    const dirty = new Map<string, Set<string>>();
    let everyone = false;
    const touch = (nodeId: string | undefined, taskId?: string): void => {
      if (!nodeId || !sessions.has(nodeId)) return;
      let set = dirty.get(nodeId);
      if (!set) dirty.set(nodeId, (set = new Set()));
      if (taskId) set.add(taskId);
    };
    for (const e of events) {
      if (e.kind === 'tasks') {
        const cur = e.object as Task | undefined;
        const prev = e.previous as Task | undefined;
        touch(cur?.NodeID, e.id);
        if (prev?.NodeID !== cur?.NodeID) touch(prev?.NodeID, e.id);
      } else if (e.kind === 'nodes') {
        if (!e.object) {
          liveness.delete(e.id);
          registrations.delete(e.id);
          void dropNodeAttachments(store, writer(), e.id).catch((err: unknown) => log.warn({ err: (err as Error).message, node: e.id }, 'removing a removed node\'s network attachments failed'));
          const s = sessions.get(e.id);
          if (s) { sessions.delete(e.id); s.end(notFound(`node ${e.id} not found`)); }
        } else {
          if (e.action === 'create' && (e.object as Node).Status?.State !== 'down') { expect(liveness, e.id, now(), periodMs()); armBy(e.id); }
          touch(e.id);
        }
      } else if (e.kind === 'cluster') {
        everyone = true;
      }
    }
    if (everyone) for (const id of sessions.keys()) touch(id);
    for (const [nodeId, taskIds] of dirty) {
      const s = sessions.get(nodeId);
      if (!s) continue;
      try {
        sendChanges(s, taskIds);
      } catch (err) {
        // What this node holds is no longer known here: its session starts
        // again (a whole set), and the other nodes still get this batch.
        log.error({ err, node: nodeId }, 'changes for a session not sent; ending it');
        sessions.delete(nodeId);
        s.end(unavailable('dispatcher: changes for this session could not be sent; open the session again'));
      }
    }
  }

  // The node's description and readiness, written only when they change.
  async function register(nodeId: string, desc: NodeDescription, addr: string): Promise<void> {
    await nodeWrite(nodeId, async () => {
      await writeReady(nodeId, desc, addr);
      // A sign of life: should the session not follow, the node expires from here.
      registrations.set(nodeId, (registrations.get(nodeId) ?? 0) + 1);
      heard(liveness, nodeId, now(), periodMs());
      armBy(nodeId);
    });
  }

  async function writeReady(nodeId: string, desc: NodeDescription, addr: string): Promise<void> {
    await writer().mutate('nodes', nodeId, (n) => {
      const description = { ...desc, TLSInfo: n.Description?.TLSInfo ?? {} };
      const status: Node['Status'] = { State: 'ready', Addr: addr || n.Status.Addr };
      if (deepEqual(n.Description, description) && deepEqual(n.Status, status)) return undefined;
      n.Description = description;
      n.Status = status;
      return n;
    });
  }

  async function session(req: SessionRequest, ctx: CallContext, send: (m: SessionMessage) => void, via?: string): Promise<void> {
    if (!leading) refuse();
    const peer = ctx.peer!;
    const nodeId = peer.nodeId;
    if (!store.get('nodes', nodeId)) throw notFound(`node ${nodeId} not found`);
    await register(nodeId, req.Description, peer.address);
    // Looked at again after the write: the node may have been removed, or
    // leadership lost, meanwhile (from here to `await ended` nothing yields).
    if (!leading) refuse();
    if (!store.get('nodes', nodeId)) throw notFound(`node ${nodeId} not found`);
    if (ctx.signal.aborted) return;
    const old = sessions.get(nodeId);
    if (old) old.end(unavailable('dispatcher: session replaced by a newer one of the same node'));
    let end!: (err: Error) => void;
    const ended = new Promise<void>((resolve, reject) => {
      end = reject;
      ctx.signal.addEventListener('abort', () => resolve(), { once: true });
    });
    const s: SessionState = { id: req.SessionID, nodeId, send, end, tasks: new Map(), secrets: new Set(), configs: new Set(), viewDigest: '', viewNets: new Set(), endpointNets: new Set(), certRole: peer.role, ...(via ? { via } : {}) };
    sessions.set(nodeId, s);
    heard(liveness, nodeId, now(), periodMs());
    armBy(nodeId);
    log.info({ node: nodeId, addr: peer.address, session: s.id }, 'node registered');
    try {
      sendFull(s);
      await ended;
    } finally {
      if (sessions.get(nodeId) === s) sessions.delete(nodeId);
    }
  }

  function currentSession(ctx: CallContext, sessionId: string): SessionState {
    if (!leading) refuse();
    const s = sessions.get(ctx.peer!.nodeId);
    if (!s || s.id !== sessionId) throw notFound(SESSION_INVALID);
    return s;
  }

  // ---------- task status ----------

  async function updateStatus(updates: StatusUpdate[], nodeId: string): Promise<void> {
    const writes: Array<Promise<void>> = [];
    for (const u of updates) {
      const t = store.get('tasks', u.TaskID);
      if (!t) continue; // deleted meanwhile: nothing to record
      if (t.NodeID !== nodeId) {
        log.warn({ node: nodeId, task: u.TaskID, taskNode: t.NodeID }, 'status report for a task of another node ignored');
        continue;
      }
      const r = taskStateRank(u.Status.State);
      if (r < RANK_ACCEPTED || r > RANK_REJECTED) {
        log.warn({ node: nodeId, task: u.TaskID, state: u.Status.State }, 'status report with a state an agent does not set ignored');
        continue;
      }
      writes.push(enqueue(u.TaskID, nodeId, u.Status));
    }
    await Promise.all(writes);
  }

  function enqueue(taskId: string, nodeId: string, status: TaskStatus): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = (err?: unknown): void => (err === undefined ? resolve() : reject(err));
      const q = queue.get(taskId);
      if (!q) queue.set(taskId, { nodeId, status, done: [done] });
      else {
        if (taskStateRank(status.State) >= taskStateRank(q.status.State)) q.status = status;
        q.done.push(done);
      }
      kickFlush();
    });
  }

  // Reports that arrive while a write is in flight go out together in the next one.
  function kickFlush(): void {
    if (flushing) return;
    flushing = new Promise<void>((resolve) => setImmediate(resolve))
      .then(async () => { while (queue.size) await writeStatuses(); })
      .finally(() => { flushing = undefined; if (queue.size) kickFlush(); });
  }

  // The stored task with the reported status stamped by this manager, or
  // undefined when there is nothing to write (a regression, the same again).
  function withStatus(t: Task, status: TaskStatus, stamp: string): Task | undefined {
    if (taskStateRank(status.State) < taskStateRank(t.Status.State)) return undefined;
    if (sameStatus(t.Status, status)) return undefined;
    return { ...t, Status: { ...status, Timestamp: stamp }, UpdatedAt: stamp };
  }

  async function writeStatuses(): Promise<void> {
    const items = [...queue.entries()];
    queue.clear();
    const stamp = nowIso(now());
    const writes: Array<{ taskId: string; q: Queued; next: Task }> = [];
    for (const [taskId, q] of items) {
      const cur = store.get('tasks', taskId);
      const next = cur && cur.NodeID === q.nodeId ? withStatus(cur, q.status, stamp) : undefined;
      if (next) writes.push({ taskId, q, next });
      else for (const d of q.done) d();
    }
    const finish = (q: Queued, err?: unknown): void => { for (const d of q.done) d(err); };
    let fenced: Store;
    try { fenced = writer(); } catch (err) { for (const w of writes) finish(w.q, err); return; }
    // Each task once (the queue is keyed by task): the batches are independent. Never rejects.
    await eachConcurrently(eachBatch(fenced, writes, (txn, w) => txn.update('tasks', w.next), (w, error) => finish(w.q, error)), BATCHES_IN_FLIGHT, async ({ txn, items: chunk }) => {
      try {
        await txn.commit();
        for (const w of chunk) finish(w.q);
        return;
      } catch (err) {
        if (!(err instanceof ShoalError && err.kind === 'sequence')) { for (const w of chunk) finish(w.q, err); return; }
      }
      // A task of the batch changed under us (the orchestrator wrote it): each on its own.
      await Promise.all(chunk.map((w) => fenced.mutate('tasks', w.taskId, (t) => (t.NodeID === w.q.nodeId ? withStatus(t, w.q.status, stamp) : undefined))
        .then(() => finish(w.q), (err: unknown) => finish(w.q, err))));
    });
  }

  // ---------- handlers (registered once) ----------

  function heartbeat(req: HeartbeatRequest, ctx: CallContext): HeartbeatResponse {
    const s = currentSession(ctx, req.SessionID);
    const period = periodMs();
    heard(liveness, s.nodeId, now(), period);
    armBy(s.nodeId);
    return { PeriodMs: heartbeatIntervalMs(period) };
  }

  async function taskStatus(req: UpdateTaskStatusRequest, ctx: CallContext): Promise<UpdateTaskStatusResponse> {
    const s = currentSession(ctx, req.SessionID);
    await updateStatus(req.Updates, s.nodeId);
    return {};
  }

  // A relayed call as the node's own: the relaying manager (a manager's
  // certificate, checked by the transport) vouches for the node it verified.
  function relayedContext(For: RelayedFor, ctx: CallContext): CallContext {
    const peer = { nodeId: For.NodeID, role: For.Role, clusterId: ctx.peer!.clusterId, address: For.Addr };
    return { peer, remoteAddress: For.Addr, get signal() { return ctx.signal; } };
  }

  // The node's calls arrive here directly, or relayed by a manager that
  // does not lead; a relayed call is never relayed again.
  const relaying = (): boolean => !leading && !stopped && relay?.available === true;
  server.stream(Session, (req, ctx, send) => (relaying() ? relay!.session(req, ctx, send) : session(req, ctx, send)));
  const beat = async (req: HeartbeatRequest, ctx: CallContext): Promise<HeartbeatResponse> => (relaying() ? relay!.heartbeat(req, ctx) : heartbeat(req, ctx));
  server.unary(Heartbeat, beat);
  server.pipe(Heartbeats, beat);
  const statuses = (req: UpdateTaskStatusRequest, ctx: CallContext): Promise<UpdateTaskStatusResponse> => (relaying() ? relay!.updateTaskStatus(req, ctx) : taskStatus(req, ctx));
  server.unary(UpdateTaskStatus, statuses);
  server.pipe(UpdateTaskStatuses, statuses);
  server.stream(RelaySession, (req, ctx, send) => session(req.Req, relayedContext(req.For, ctx), send, ctx.peer!.nodeId));
  server.unary(RelayHeartbeats, async (req, ctx) => {
    if (leading) relayedBeats(ctx.peer!.nodeId);
    return {
      Results: req.Beats.map((b) => {
        try { return heartbeat({ SessionID: b.SessionID }, relayedContext(b.For, ctx)); } catch (err) { return { Error: relayedError(err) }; }
      }),
    };
  });
  server.unary(RelayUpdateTaskStatus, async (req, ctx) => ({
    Results: await Promise.all(req.Reports.map((r) => taskStatus(r, relayedContext(r.For, ctx)).then(() => ({}), (err: unknown) => ({ Error: relayedError(err) })))),
  }));

  registerAttachmentHandlers(server, { store, log, now, writer: () => (leading ? writer() : refuse()) });

  function dropViews(): void {
    netIndex = undefined;
    viewDirty.clear();
    if (viewTimer) clearTimeout(viewTimer);
    viewTimer = undefined;
  }

  function endAll(err: Error): void {
    const all = [...sessions.values()];
    sessions.clear();
    for (const s of all) s.end(err);
  }

  return {
    setLeading(fenced: Store | undefined): void {
      if (stopped || fenced === term) return;
      const next = fenced !== undefined;
      term = fenced;
      if (next === leading) return; // a new term straight after the last one: same sessions
      leading = next;
      if (next) {
        liveness = startLeading(store.list('nodes'), now(), periodMs());
        downMarks = [];
        relayBeats.clear();
        netIndex = new NetworkIndex(store);
        unsubscribe = store.subscribe(onEvents);
        loggedPeriodMs = undefined;
        notePeriod();
        log.info({ nodes: liveness.size, periodMs: periodMs() }, 'dispatcher leading');
      } else {
        unsubscribe?.();
        unsubscribe = undefined;
        liveness = new Map();
        dropViews();
        // With a relay the nodes stay with this manager (it relays them to
        // the next leader); without, they are sent to the leader.
        endAll(relay ? unavailable(RELAY_LEADER_CHANGED) : notLeader(managers().leaderAddr));
        log.info('dispatcher no longer leading');
      }
      armTimer();
    },
    async stop(): Promise<void> {
      if (stopped) return;
      stopped = true;
      clearInterval(stallTicker);
      leading = false;
      term = undefined;
      unsubscribe?.();
      liveness = new Map();
      dropViews();
      armTimer();
      endAll(unavailable('dispatcher: stopped'));
      relay?.close();
      await flushing?.catch(() => undefined);
    },
  };
}
