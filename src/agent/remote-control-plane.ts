import type { NodeDescription, Task, TaskStatus } from '../model/types';
import { newId } from '../common/ids';
import type { Logger } from '../common/log';
import { unavailable } from '../common/errors';
import { answeredByPeer, stillConnecting, type ChannelKeepalive, type RpcChannel, type RpcPipe, type RpcStream, type UnaryMethod } from '../rpc/transport';
import {
  Heartbeat, Heartbeats, Session, UpdateTaskStatus, UpdateTaskStatuses, isNotLeader, isRelayedBeatMissed, isSessionInvalid, leaderFromError,
  type ServiceInfo, type SessionMessage, type StatusUpdate, type WirePayload,
} from '../protocol/dispatcher';
import type { NodeNetworkView } from '../protocol/network-view';
import { AttachNetwork, DetachNetwork, NameAttachment, type AttachNetworkRequest, type AttachNetworkResponse, type NameAttachmentRequest } from '../protocol/attachments';
import type { AgentControlPlane, Assignments, PayloadValue, ServiceAnnotations } from './control-plane';
import { INITIAL_KEEPALIVE, needsRetune, nodeKeepalive, retuneDelayMs } from './keepalive';

// The agent's control plane over the node-to-node channel: one session with
// the leader's dispatcher, reached through any manager.
//
// - The session delivers the node's tasks (the whole set on every new
//   session, then changes), the secrets and configs they use, the managers'
//   addresses and the heartbeat interval.
// - Heartbeats at the interval the dispatcher asks. A beat the dispatcher
//   refuses (session invalid, not the leader) ends the session, and the agent
//   opens a new one. A beat that times out while the session's stream is up
//   (or that a relaying manager says its leader left unanswered) is sent
//   again at once, up to MISSED_BEATS_TO_END in a row: a busy leader
//   answers late, and ending thousands of sessions for that (each a new
//   registration and a whole task set) loads it far more than the beats. A
//   dead connection ends the stream through the transport's keepalive,
//   whose pings scale with the interval (keepalive.ts): when the interval
//   moves far enough, the session moves to a new connection with the same
//   manager, at a random time so that the nodes do not all move at once.
// - The first manager is any of the list (the managers relay sessions to the
//   leader), a manager that does not lead more likely than the leader
//   (LEADER_WEIGHT). A manager that cannot relay names the leader: the agent
//   goes there.
//   A lost manager: another one (spread: each once a round), with a bounded back-off. A
//   connection still being set up when the session gave up waiting is kept
//   for the next try: under load, a handshake thrown away after 5 s and begun
//   again elsewhere is work the managers did for nothing, and thousands of
//   them kept every session out for minutes (bench/scale.ts, 5,000 nodes).
// - A session the leader's dispatcher itself ended (a late heartbeat, a
//   replaced session) is opened again with the same manager over the same
//   connection: it answered, so it is reachable. Under load, thousands of
//   nodes making new TLS connections at once (to a follower that redirects
//   them back) would load the leader more than anything else.
// - Meanwhile nothing happens to the tasks: the agent keeps what it runs and
//   learns what changed from the next session's whole set.
// - Status reports are merged per task (the newest wins) and sent in batches
//   on the current session; a failed batch fails its reports, which the
//   StatusReporter retries.

export interface RemoteControlPlaneOptions {
  connect: (addr: string, keepalive: ChannelKeepalive) => RpcChannel; // keepalive: the pings this node's session needs
  managers: string[];                 // host:port of the managers known at start
  describe: () => Promise<NodeDescription>;
  log: Logger;
  onManagers?: (addrs: string[]) => void; // the managers' list changed (to keep it for the next start)
  // [managers helper] This node's role as the managers see it, on every session message (a promotion reaches a worker this way).
  onRole?: (role: 'manager' | 'worker', version?: number) => void; // version: the node object's, the role was read from
  // The roots to trust and the CA key to be certified by (a root CA rotation), on every session message that says.
  onRootCA?: (want: { bundle: string; issuerPublicKey: string }) => void;
  // The node's network view, each time the dispatcher sends one (checked by
  // protocol/network-view.ts checkNodeNetworkView; a bad one is logged and skipped).
  onNetworkView?: (view: NodeNetworkView) => void;
  // Which manager of `managers` to try first: the first (a manager's own
  // agent, whose list starts with itself), or any ('spread', the default):
  // nodes spread their sessions over the managers, which relay them to the leader.
  firstManager?: 'first' | 'spread';
  // The leader's address as the managers last said (the join's answer), until a session message says.
  leaderAddr?: string;
  // The heartbeat interval as the managers last said (the join's answer), until a session message says.
  heartbeatMs?: number;
  random?: () => number;              // in [0, 1): which manager a spread session picks, when to move to new pings (tests fix it)
  backoff?: { minMs: number; maxMs: number }; // between attempts to reach a manager
  callTimeoutMs?: number;             // registration and status calls
  newSessionId?: () => string;
}

const DEFAULT_BACKOFF = { minMs: 100, maxMs: 5000 };
// How likely a spread session is to go to the leader, against 1 for each
// manager that does not lead. A follower relays its nodes' calls to the
// leader in batches, while the leader's one thread also runs the
// orchestrators, the scheduler and the allocator, and holds more memory for
// them: each node's connection is about 140 KB of TLS and HTTP/2 state
// wherever it lands (bench/scale.ts, docs/SCALE.md). Not 0: when a follower
// goes, some of its nodes go to the leader rather than all of them to the
// one follower left.
export const LEADER_WEIGHT = 0.1;
const DEFAULT_CALL_TIMEOUT_MS = 10_000;
// Reports per UpdateTaskStatus call (the protocol takes up to 10,000).
const STATUS_BATCH = 1000;
// How long a report waits for a session before it fails (and is retried).
const SESSION_WAIT_MS = 10_000;
const STOP_WAIT_MS = 2000;
// Unanswered heartbeats in a row (each timed out after twice the interval)
// that end the session: by then the manager has declared the node down.
export const MISSED_BEATS_TO_END = 3;
// The longest wait between beats, whatever the interval asked: a timer of more
// than 2^31 ms fires at once (Node's limit), and `--dispatcher-heartbeat 2000h`
// would have the node beat without pause. Beating more often than asked is harmless.
const MAX_BEAT_WAIT_MS = 3_600_000;
// A manager of an earlier release, without the heartbeats or status pipe
// (grpc-js's and the in-memory transport's words for a method nobody serves).
const NOT_SERVED = /does not implement the method|unknown method|is not served as a pipe/;
// A new session's first message (its registration) may take this many call
// bounds: a busy leader registers thousands of nodes in turn, and a session
// given up sooner is only registered again, over a new connection. One given
// up keeps its connection (it was up; the leader was slow).
export const FIRST_MESSAGE_CALLS = 3;

// endedBy: why the agent ended the session (a failed heartbeat or call).
// missedBeats: heartbeats in a row that timed out unanswered.
// `pipes`: the session's pipes (heartbeats, status reports) by method,
// each opened by its first call; `unserved`: the pipes the manager does not
// serve (an earlier release), whose calls go unary for the rest of the session.
interface Live { id: string; addr: string; channel: RpcChannel; keepalive: ChannelKeepalive; stream: RpcStream; endedBy?: unknown; missedBeats: number; pipes: Map<string, RpcPipe<never, unknown>>; unserved: Set<string> }
interface Dialled { channel: RpcChannel; keepalive: ChannelKeepalive }
interface Queued { status: TaskStatus; done: Array<(err?: unknown) => void> }
// Session messages, and the tasks in them (a task sent twice counts twice).
export interface ReceivedCounts { messages: number; tasks: number }
interface FullSet { tasks: Map<string, Task>; services: ServiceInfo[]; secrets: WirePayload[]; configs: WirePayload[] }

export class RemoteControlPlane implements AgentControlPlane {
  private readonly tasks = new Map<string, Task>();
  private readonly services = new Map<string, ServiceAnnotations>();
  private readonly secrets = new Map<string, WirePayload>();
  private readonly configs = new Map<string, WirePayload>();
  private managers: string[];
  private leader?: string;       // where a manager that could not relay sent us
  private leaderHint?: string;   // the leader as the managers last said (spread sessions avoid it)
  private nextManager = 0;
  private readonly spread: boolean;
  private readonly random: () => number;
  private tried = new Set<string>(); // managers that failed since the last session (spread: each once a round)
  private readonly channels = new Map<string, Dialled>();
  private keepalive = INITIAL_KEEPALIVE; // for connections made from now on
  private retuneTimer?: NodeJS.Timeout;
  private live?: Live;
  private sessionWaiters = new Set<() => void>();
  private onChange?: (a: Assignments) => void;
  private delivered = false;
  private full?: FullSet;
  private stopped = false;
  private wake?: () => void;
  private heartbeatTimer?: NodeJS.Timeout;
  private readonly queue = new Map<string, Queued>();
  private flushing?: Promise<void>;
  private loop?: Promise<void>;
  private readonly backoff: { minMs: number; maxMs: number };
  private readonly callTimeoutMs: number;
  private readonly counts: ReceivedCounts = { messages: 0, tasks: 0 };

  constructor(private readonly opts: RemoteControlPlaneOptions) {
    this.managers = [...opts.managers];
    this.spread = opts.firstManager !== 'first';
    this.random = opts.random ?? Math.random;
    this.leaderHint = opts.leaderAddr;
    if (opts.heartbeatMs) this.keepalive = nodeKeepalive(opts.heartbeatMs);
    this.backoff = opts.backoff ?? DEFAULT_BACKOFF;
    this.callTimeoutMs = opts.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
  }

  // The last network view the managers sent (kept across sessions).
  networkView?: NodeNetworkView;

  // The address of the manager the session is with, if any.
  get connectedTo(): string | undefined { return this.live?.addr; }

  // What the sessions delivered so far (the scale bench's message count).
  get received(): ReceivedCounts { return { ...this.counts }; }

  watchAssignments(_nodeId: string, onChange: (a: Assignments) => void): () => void {
    // The node is the one of the certificate the channel presents.
    this.onChange = onChange;
    this.loop ??= this.run();
    return () => { void this.stop(); };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    this.endSession();
    clearTimeout(this.retuneTimer);
    for (const w of this.sessionWaiters) w();
    for (const c of this.channels.values()) c.channel.close();
    this.channels.clear();
    // The loop may be waiting on the engine for a description (bounded by the
    // executor, up to a minute): shutdown does not wait for that.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.loop, new Promise<void>((resolve) => { timer = setTimeout(resolve, STOP_WAIT_MS); })]);
    clearTimeout(timer);
  }

  serviceAnnotations(serviceId: string): ServiceAnnotations | undefined { return this.services.get(serviceId); }

  // What the session delivered for this task, and only for a task of this node.
  async getSecrets(taskId: string): Promise<PayloadValue[]> {
    const refs = this.tasks.get(taskId)?.Spec.ContainerSpec?.Secrets ?? [];
    return values(new Set(refs.map((r) => r.SecretID)), this.secrets);
  }

  async getConfigs(taskId: string): Promise<PayloadValue[]> {
    const refs = this.tasks.get(taskId)?.Spec.ContainerSpec?.Configs ?? [];
    return values(new Set(refs.map((r) => r.ConfigID)), this.configs);
  }

  updateTaskStatus(taskId: string, status: TaskStatus): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = (err?: unknown): void => (err === undefined ? resolve() : reject(err));
      const q = this.queue.get(taskId);
      if (q) { q.status = status; q.done.push(done); } else this.queue.set(taskId, { status, done: [done] });
      this.kickFlush();
    });
  }

  // ---------- network attachments (protocol/attachments.ts) ----------

  // An address on a swarm network for a container of this node, from the leader.
  async attachNetwork(req: AttachNetworkRequest): Promise<AttachNetworkResponse> {
    const live = await this.waitSession();
    if (!live) throw unavailable('no session with a manager');
    try {
      return await live.channel.unary(AttachNetwork, req, { timeoutMs: this.callTimeoutMs + 5000 });
    } catch (err) {
      this.sessionCallFailed(live, err);
      throw err;
    }
  }

  async nameAttachment(req: NameAttachmentRequest): Promise<void> {
    const live = await this.waitSession();
    if (!live) throw unavailable('no session with a manager');
    try {
      await live.channel.unary(NameAttachment, req, { timeoutMs: this.callTimeoutMs });
    } catch (err) {
      this.sessionCallFailed(live, err);
      throw err;
    }
  }

  async detachNetwork(attachmentId: string): Promise<void> {
    const live = await this.waitSession();
    if (!live) throw unavailable('no session with a manager');
    try {
      await live.channel.unary(DetachNetwork, { AttachmentID: attachmentId }, { timeoutMs: this.callTimeoutMs });
    } catch (err) {
      this.sessionCallFailed(live, err);
      throw err;
    }
  }

  // ---------- status ----------

  private kickFlush(): void {
    if (this.flushing) return;
    this.flushing = new Promise<void>((resolve) => setImmediate(resolve))
      .then(async () => { while (this.queue.size && !this.stopped) await this.sendStatuses(); })
      .finally(() => {
        this.flushing = undefined;
        if (this.stopped) this.failQueued(unavailable('agent stopped'));
        else if (this.queue.size) this.kickFlush();
      });
  }

  private failQueued(err: Error): void {
    const all = [...this.queue.values()];
    this.queue.clear();
    for (const q of all) for (const d of q.done) d(err);
  }

  private async sendStatuses(): Promise<void> {
    const live = await this.waitSession();
    const items = [...this.queue.entries()].slice(0, STATUS_BATCH);
    for (const [id] of items) this.queue.delete(id);
    const finish = (err?: unknown): void => { for (const [, q] of items) for (const d of q.done) d(err); };
    if (!live) { finish(unavailable('no session with a manager')); return; }
    const updates: StatusUpdate[] = items.map(([TaskID, q]) => ({ TaskID, Status: q.status }));
    try {
      await this.onPipe(live, UpdateTaskStatuses, UpdateTaskStatus, { SessionID: live.id, Updates: updates }, { timeoutMs: this.callTimeoutMs });
      finish();
    } catch (err) {
      finish(err);
      this.sessionCallFailed(live, err);
    }
  }

  // Whether a session with the leader's dispatcher is established within
  // `timeoutMs`: the dispatcher wrote the node's registration before its first
  // message. `swarm init` and `join` return after it, as Docker's do.
  async whenSession(timeoutMs: number): Promise<boolean> {
    return (await this.waitSession(timeoutMs)) !== undefined;
  }

  private waitSession(timeoutMs = SESSION_WAIT_MS): Promise<Live | undefined> {
    if (this.live || this.stopped) return Promise.resolve(this.live);
    return new Promise((resolve) => {
      const done = (): void => { clearTimeout(timer); this.sessionWaiters.delete(done); resolve(this.live); };
      const timer = setTimeout(done, timeoutMs);
      this.sessionWaiters.add(done);
    });
  }

  // ---------- the session ----------

  // The leader a manager sent us to; otherwise any manager ('spread': at
  // random, the leader less likely, none that failed this round) or the
  // managers in turn, skipping the one that just failed ('first').
  private pickManager(failed?: string): string | undefined {
    if (this.leader) return this.leader;
    const n = this.managers.length;
    if (this.spread && n > 1) {
      // Every manager once before any again, the leader among them: managers
      // that do not answer cost one attempt each a round, whatever the draws.
      if (failed) this.tried.add(failed);
      let candidates = this.managers.filter((a) => !this.tried.has(a));
      if (!candidates.length) {
        this.tried = new Set(failed ? [failed] : []);
        candidates = this.managers.filter((a) => a !== failed);
      }
      const weight = (a: string): number => (a === this.leaderHint ? LEADER_WEIGHT : 1);
      let r = this.random() * candidates.reduce((sum, a) => sum + weight(a), 0);
      for (const a of candidates) if ((r -= weight(a)) < 0) return a;
      return candidates.at(-1);
    }
    for (let i = 0; i < n; i++) {
      const addr = this.managers[this.nextManager++ % n]!;
      if (addr !== failed || n === 1) return addr;
    }
    return undefined;
  }

  // A connection made with pings too far from those wanted now is made again.
  private channel(addr: string): Dialled {
    let c = this.channels.get(addr);
    if (c && needsRetune(c.keepalive, this.keepalive)) { this.dropChannel(addr); c = undefined; }
    if (!c) this.channels.set(addr, (c = { channel: this.opts.connect(addr, this.keepalive), keepalive: this.keepalive }));
    return c;
  }

  private dropChannel(addr: string): void {
    this.channels.get(addr)?.channel.close();
    this.channels.delete(addr);
  }

  // The interval the dispatcher asks, from every session message and beat:
  // a session whose connection pings too far from that moves to a new one (retune).
  private noteInterval(intervalMs: number): void {
    const wanted = nodeKeepalive(intervalMs);
    if (wanted.timeMs === this.keepalive.timeMs) return;
    this.keepalive = wanted;
    if (this.retuneTimer || !this.live || !needsRetune(this.live.keepalive, wanted)) return;
    const ms = retuneDelayMs(intervalMs, this.tasks.size > 0, this.random());
    this.retuneTimer = setTimeout(() => { this.retuneTimer = undefined; this.retune(); }, ms);
  }

  private retune(): void {
    const live = this.live;
    if (this.stopped || !live || !needsRetune(live.keepalive, this.keepalive)) return;
    this.opts.log.info({ manager: live.addr, pingMs: this.keepalive.timeMs, wasMs: live.keepalive.timeMs }, 'moving the session to a new connection: the heartbeat interval changed, and the pings with it');
    this.endSession(Object.assign(unavailable(`session moved to a connection with pings every ${this.keepalive.timeMs} ms`), { retune: true }));
  }

  private async run(): Promise<void> {
    let backoff = this.backoff.minMs;
    let redirected = false;
    let failed: string | undefined;
    let again: string | undefined; // the manager that answered: asked again first
    while (!this.stopped) {
      const addr = again ?? this.pickManager(failed);
      let established = false;
      let err: unknown;
      if (addr) {
        try {
          established = await this.runSession(addr);
        } catch (e) {
          err = e;
          established = (e as { established?: boolean }).established === true;
        }
      }
      if (this.stopped) break;
      if (established) { backoff = this.backoff.minMs; this.tried.clear(); }
      // Our own move to new pings: the same manager at once (channel() dials anew).
      if ((err as { retune?: boolean } | undefined)?.retune === true) { again = addr; failed = undefined; redirected = false; continue; }
      const leader = leaderFromError(err);
      // The manager's dispatcher ended the session (not a lost connection, not a redirect).
      const answered = answeredByPeer(err) && !isNotLeader(err);
      // Straight to the leader a manager names, once; a second redirect in a row waits.
      const follow: boolean = leader !== undefined && leader !== addr && !redirected;
      redirected = follow;
      if (leader) this.leader = leader !== addr ? leader : undefined;
      else if (this.leader === addr && !answered) this.leader = undefined; // a leader hint (from a beat) keeps
      failed = leader || answered ? undefined : addr;
      again = !leader && answered ? addr : undefined;
      const keepChannel = (err as { keepChannel?: boolean } | undefined)?.keepChannel === true;
      if (!leader && !answered && addr && !keepChannel) this.dropChannel(addr);
      this.opts.log.warn({ manager: addr, leader, err: (err as Error | undefined)?.message, retryMs: follow ? 0 : backoff }, leader ? 'dispatcher is not the leader; moving to the leader' : 'session with the managers lost; trying the next manager');
      if (follow) continue;
      await this.sleep(backoff * (0.5 + Math.random() / 2));
      backoff = Math.min(this.backoff.maxMs, backoff * 2);
    }
  }

  // One session: resolves (or rejects, with `established` set on the error)
  // when it ends; returns whether it was ever established. `keepChannel` on
  // the error: the connection was up or still being set up, only slow (the
  // session gave up waiting for it or for the first message), so it is kept.
  private async runSession(addr: string): Promise<boolean> {
    const description = await this.opts.describe();
    if (this.stopped) return false;
    const { channel, keepalive } = this.channel(addr);
    const id = (this.opts.newSessionId ?? newId)();
    let established = false;
    let live: Live | undefined;
    let stream: RpcStream | undefined;
    const firstMs = FIRST_MESSAGE_CALLS * this.callTimeoutMs;
    let slowFirst = false;
    const firstTimer = setTimeout(() => { if (!established) { slowFirst = true; stream?.cancel(); } }, firstMs);
    stream = channel.stream(Session, { SessionID: id, Description: description }, (msg) => {
      if (this.stopped || msg.SessionID !== id) return;
      if (!established) {
        established = true;
        clearTimeout(firstTimer);
        this.live = live = { id, addr, channel, keepalive, stream: stream!, missedBeats: 0, pipes: new Map(), unserved: new Set() };
        this.full = undefined;
        this.opts.log.info({ manager: addr, session: id }, 'session with the dispatcher established');
        for (const w of [...this.sessionWaiters]) w();
      }
      this.apply(msg);
    });
    try {
      await stream.done;
      if (!this.stopped) throw unavailable('dispatcher ended the session');
      return established;
    } catch (err) {
      // Our cancel hides why: the heartbeat's or call's own error says it.
      const why = slowFirst ? unavailable(`no answer to the session from ${addr} within ${firstMs} ms`) : (live?.endedBy ?? err) as Error;
      throw Object.assign(why, { established, keepChannel: slowFirst || stillConnecting(err) });
    } finally {
      clearTimeout(firstTimer);
      if (this.live?.id === id) this.endSession();
    }
  }

  private endSession(reason?: unknown): void {
    const live = this.live;
    this.live = undefined;
    if (live && reason !== undefined) live.endedBy ??= reason;
    if (this.heartbeatTimer) clearTimeout(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
    live?.stream.cancel();
    for (const p of live?.pipes.values() ?? []) p.close();
  }

  // The next beat in `ms`; `intervalMs` bounds its wait (the interval the dispatcher asked).
  private scheduleHeartbeat(ms: number, intervalMs = ms): void {
    if (this.heartbeatTimer) clearTimeout(this.heartbeatTimer);
    const live = this.live;
    if (!live) return;
    this.heartbeatTimer = setTimeout(() => void this.beat(live, intervalMs), Math.min(ms, MAX_BEAT_WAIT_MS));
  }

  private async beat(live: Live, intervalMs: number): Promise<void> {
    if (this.live !== live) return;
    try {
      // A beat that takes longer than the interval is as good as lost.
      // Up to the heartbeat period (twice the interval; the manager's allowance
      // is 1.5 periods): one slow answer from a busy leader must not end the
      // session, as reconnecting thousands of nodes at once loads it more.
      const res = await this.onPipe(live, Heartbeats, Heartbeat, { SessionID: live.id }, { timeoutMs: Math.min(MAX_BEAT_WAIT_MS, Math.max(1000, 2 * intervalMs)) });
      live.missedBeats = 0;
      if (this.live !== live) return;
      this.scheduleHeartbeat(res.PeriodMs);
      this.noteInterval(res.PeriodMs);
    } catch (err) {
      if (this.live !== live) return;
      const leader = leaderFromError(err);
      if (!leader && (!answeredByPeer(err) || isRelayedBeatMissed(err)) && ++live.missedBeats < MISSED_BEATS_TO_END) {
        this.opts.log.warn({ manager: live.addr, err: (err as Error).message, missed: live.missedBeats }, 'heartbeat not answered; beating again on the same session');
        this.scheduleHeartbeat(0, intervalMs);
        return;
      }
      this.opts.log.warn({ manager: live.addr, err: (err as Error).message }, 'heartbeat failed; reconnecting');
      if (leader) this.leader = leader;
      this.endSession(err);
    }
  }

  // A call on the session's pipe for `piped` (a fifth of a unary call's CPU,
  // both ends); unary (`unary`) to a manager that does not serve that pipe.
  private async onPipe<Req, Res>(live: Live, piped: UnaryMethod<Req, Res>, unary: UnaryMethod<Req, Res>, req: Req, opts: { timeoutMs: number }): Promise<Res> {
    if (live.unserved.has(piped.name)) return live.channel.unary(unary, req, opts);
    let pipe = live.pipes.get(piped.name) as RpcPipe<Req, Res> | undefined;
    if (!pipe) live.pipes.set(piped.name, (pipe = live.channel.pipe(piped)));
    try {
      return await pipe.call(req, opts);
    } catch (err) {
      if (!NOT_SERVED.test((err as Error).message)) throw err;
      live.unserved.add(piped.name);
      return live.channel.unary(unary, req, opts);
    }
  }

  private sessionCallFailed(live: Live, err: unknown): void {
    if (this.live === live && (isSessionInvalid(err) || leaderFromError(err))) {
      const leader = leaderFromError(err);
      if (leader) this.leader = leader;
      this.endSession(err);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => { this.wake = undefined; resolve(); }, ms);
      this.wake = () => { clearTimeout(t); this.wake = undefined; resolve(); };
    });
  }

  // ---------- what the session delivers ----------

  private apply(msg: SessionMessage): void {
    this.counts.messages++;
    this.counts.tasks += msg.Tasks.length;
    this.opts.onRole?.(msg.Node.Role, msg.Node.Version); // [managers helper]
    if (msg.RootCA) this.opts.onRootCA?.({ bundle: msg.RootCA.Bundle, issuerPublicKey: msg.RootCA.IssuerPublicKey });
    this.applyNetworkView(msg);
    this.leaderHint = msg.Managers.LeaderAddr;
    if (msg.Managers.Addrs.length && msg.Managers.Addrs.join() !== this.managers.join()) {
      this.managers = [...msg.Managers.Addrs];
      this.opts.onManagers?.([...this.managers]);
    }
    if (this.live && !this.heartbeatTimer) this.scheduleHeartbeat(msg.HeartbeatMs);
    this.noteInterval(msg.HeartbeatMs);
    if (msg.Full) {
      const f: FullSet = (this.full ??= { tasks: new Map(), services: [], secrets: [], configs: [] } as FullSet);
      for (const t of msg.Tasks) f.tasks.set(t.ID, t);
      f.services.push(...msg.Services);
      f.secrets.push(...msg.Secrets);
      f.configs.push(...msg.Configs);
      if (msg.More) return;
      this.full = undefined;
      this.applyFull(f);
      return;
    }
    for (const s of msg.Services) this.services.set(s.ID, { Name: s.Name, ...(s.Labels ? { Labels: s.Labels } : {}) });
    for (const p of msg.Secrets) this.secrets.set(p.ID, p);
    for (const p of msg.Configs) this.configs.set(p.ID, p);
    for (const id of msg.RemovedSecrets) this.secrets.delete(id);
    for (const id of msg.RemovedConfigs) this.configs.delete(id);
    const changed = new Set<string>();
    const removed = new Set<string>();
    for (const t of msg.Tasks) { this.tasks.set(t.ID, t); changed.add(t.ID); }
    for (const id of msg.Removed) if (this.tasks.delete(id)) removed.add(id);
    if (changed.size || removed.size) this.notify(changed, removed);
  }

  private applyNetworkView(msg: SessionMessage): void {
    if (msg.NetworkViewError) this.opts.log.warn({ err: msg.NetworkViewError }, 'network view from the managers failed its checks; left out');
    if (!msg.NetworkView) return;
    this.networkView = msg.NetworkView;
    try { this.opts.onNetworkView?.(msg.NetworkView); } catch (err) { this.opts.log.error({ err }, 'network view not applied'); }
  }

  // A new session's whole set replaces what the agent knew: tasks missing
  // from it are gone (their containers go), the others are (re)delivered.
  private applyFull(f: FullSet): void {
    const removed = new Set<string>();
    for (const id of this.tasks.keys()) if (!f.tasks.has(id)) removed.add(id);
    const changed = new Set<string>();
    for (const [id, t] of f.tasks) {
      const had = this.tasks.get(id);
      if (!had || had.Version.Index !== t.Version.Index || had.DesiredState !== t.DesiredState) changed.add(id);
    }
    this.tasks.clear();
    for (const [id, t] of f.tasks) this.tasks.set(id, t);
    for (const s of f.services) this.services.set(s.ID, { Name: s.Name, ...(s.Labels ? { Labels: s.Labels } : {}) });
    this.secrets.clear();
    this.configs.clear();
    for (const p of f.secrets) this.secrets.set(p.ID, p);
    for (const p of f.configs) this.configs.set(p.ID, p);
    if (!this.delivered || changed.size || removed.size) this.notify(changed, removed);
  }

  private notify(changed: Set<string>, removed: Set<string>): void {
    if (!this.onChange) return;
    if (!this.delivered) {
      this.delivered = true;
      changed = new Set(this.tasks.keys());
    }
    this.onChange({ tasks: new Map(this.tasks), changed, removed });
  }
}

function values(ids: Set<string>, from: Map<string, WirePayload>): PayloadValue[] {
  const out: PayloadValue[] = [];
  for (const id of ids) {
    const p = from.get(id);
    if (p) out.push({ ID: p.ID, Name: p.Name, Data: Buffer.from(p.Data, 'base64'), ...(p.Templating ? { Templating: p.Templating } : {}) });
  }
  return out;
}
