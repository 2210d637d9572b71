import type { Logger } from '../../common/log';
import { ShoalError, notFound, unavailable } from '../../common/errors';
import type { CallContext, RpcChannel, RpcStream } from '../../rpc/transport';
import {
  RelayHeartbeats, RelaySession, RelayUpdateTaskStatus, SESSION_INVALID, isNotLeader, raiseRelayed,
  type HeartbeatRequest, type HeartbeatResponse, type RelayedError, type RelayedFor, type SessionMessage, type SessionRequest,
  type UpdateTaskStatusRequest, type UpdateTaskStatusResponse,
} from '../../protocol/dispatcher';

// A follower's half of the relay (protocol/dispatcher.ts, Relay*): the
// sessions and status reports of the nodes connected here go to the leader's
// dispatcher over one channel, each named as the node this manager's TLS check
// verified; reports wait up to BATCH_MS to go in one call with the others'.
//
// Heartbeats are answered here, at once, for the sessions this manager relays,
// and go on to the leader in the background: at most one call in flight,
// carrying the latest beat of every node. A leader slow to answer then delays
// the beats it reads (it marks a node down only when none arrives within the
// allowance) but never fails the nodes' own calls: with the answer tied to
// the leader, one slow batch timed out hundreds of nodes together and their
// reconnections loaded the leader further. A beat the leader refuses (a
// replaced session, no longer the leader) ends that node's relayed session,
// and the node opens a new one.
//
// The leader's answers come back unchanged, except that "not the leader"
// becomes "open the session again": the node should come back here, not move
// to the leader and pile onto it.

export interface RelayOptions {
  connect(addr: string): RpcChannel;
  leaderAddr(): string | undefined;
  // The heartbeat interval to answer with (the cluster's, from this manager's mirror).
  intervalMs(): number;
  log: Logger;
  batchMs?: number;
}

// Far below a heartbeat interval (at least 500 ms).
const BATCH_MS = 20;
// At most one line per this about beats the leader did not take.
const BEAT_LOG_MS = 10_000;
// A relayed call's bound; the node's own call has its own, usually shorter.
const CALL_TIMEOUT_MS = 10_000;
// Entries (heartbeats) or status updates per call: well inside a message.
const MAX_BATCH_WEIGHT = 2000;
export const RELAY_LEADER_CHANGED = 'dispatcher: the leader changed; open the session again';

function relayError(err: unknown): Error {
  if (isNotLeader(err)) return unavailable(RELAY_LEADER_CHANGED);
  if (err instanceof ShoalError) return err;
  return unavailable(`dispatcher: relay to the leader failed: ${(err as Error)?.message ?? String(err)}`);
}

function forOf(ctx: CallContext): RelayedFor {
  const p = ctx.peer!;
  return { NodeID: p.nodeId, Role: p.role, Addr: p.address };
}

// Entries gathered for one call; each settles with its own result.
class Batcher<Entry, Res> {
  private pending: Array<{ entry: Entry; resolve: (r: Res) => void; reject: (e: Error) => void }> = [];
  private weight = 0;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly send: (entries: Entry[]) => Promise<Array<Res | { Error: RelayedError }>>,
    private readonly delayMs: number,
    private readonly weigh: (e: Entry) => number = () => 1,
  ) {}

  add(entry: Entry): Promise<Res> {
    return new Promise<Res>((resolve, reject) => {
      const w = this.weigh(entry);
      if (this.pending.length && this.weight + w > MAX_BATCH_WEIGHT) this.flush();
      this.pending.push({ entry, resolve, reject });
      this.weight += w;
      if (this.weight >= MAX_BATCH_WEIGHT) this.flush();
      else this.timer ??= setTimeout(() => this.flush(), this.delayMs);
    });
  }

  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.pending;
    this.pending = [];
    this.weight = 0;
    if (!batch.length) return;
    let sent: Promise<Array<Res | { Error: RelayedError }>>;
    try { sent = this.send(batch.map((b) => b.entry)); } catch (err) { sent = Promise.reject(err); }
    sent.then((results) => {
      if (results.length !== batch.length) throw unavailable(`dispatcher: the leader answered ${results.length} of ${batch.length} relayed entries`);
      batch.forEach((b, i) => {
        const r = results[i]!;
        if (typeof r === 'object' && r !== null && 'Error' in r && r.Error) b.reject(relayError(raiseRelayed(r.Error)));
        else b.resolve(r as Res);
      });
    }).catch((err: unknown) => {
      const e = relayError(err);
      for (const b of batch) b.reject(e);
    });
  }

  fail(err: Error): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.weight = 0;
    for (const b of this.pending.splice(0)) b.reject(err);
  }
}

interface RelayedSession { id: string; stream: RpcStream; endedBy?: Error }
type Beat = { For: RelayedFor; SessionID: string };

export class LeaderRelay {
  private channel?: RpcChannel;
  // The sessions relayed now, by node ID.
  private readonly sessions = new Map<string, RelayedSession>();
  private closed = false;
  // The latest beat of each node not yet sent, and the one call in flight.
  private beatsDue = new Map<string, Beat>();
  private beatTimer?: NodeJS.Timeout;
  private beatsInFlight = false;
  private lastBeatLog = -Infinity;
  private readonly reports: Batcher<{ For: RelayedFor; SessionID: string; Updates: UpdateTaskStatusRequest['Updates'] }, UpdateTaskStatusResponse>;

  constructor(private readonly opts: RelayOptions) {
    this.reports = new Batcher<{ For: RelayedFor; SessionID: string; Updates: UpdateTaskStatusRequest['Updates'] }, UpdateTaskStatusResponse>(async (Reports) => {
      const res = await this.upstream().unary(RelayUpdateTaskStatus, { Reports }, { timeoutMs: CALL_TIMEOUT_MS });
      return res.Results.map((r): UpdateTaskStatusResponse | { Error: RelayedError } => (r.Error ? { Error: r.Error } : {}));
    }, opts.batchMs ?? BATCH_MS, (r) => 1 + r.Updates.length);
  }

  // Whether there is a leader to relay to.
  get available(): boolean { return !this.closed && this.opts.leaderAddr() !== undefined; }

  // One channel, to the current leader; a new leader gets a new one (the
  // streams on the old one end, and their nodes open their sessions again).
  private upstream(): RpcChannel {
    const addr = this.opts.leaderAddr();
    if (this.closed || !addr) throw unavailable('dispatcher: no leader to relay to');
    if (this.channel?.address !== addr) {
      this.channel?.close();
      this.channel = this.opts.connect(addr);
      this.opts.log.info({ leader: addr }, 'relaying node sessions to the leader');
    }
    return this.channel;
  }

  session(req: SessionRequest, ctx: CallContext, send: (m: SessionMessage) => void): Promise<void> {
    const channel = this.upstream();
    const nodeId = ctx.peer!.nodeId;
    return new Promise<void>((resolve, reject) => {
      const stream = channel.stream(RelaySession, { For: forOf(ctx), Req: req }, send);
      const entry: RelayedSession = { id: req.SessionID, stream };
      this.sessions.get(nodeId)?.stream.cancel();
      this.sessions.set(nodeId, entry);
      const onAbort = (): void => stream.cancel();
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      stream.done.then(
        () => { if (ctx.signal.aborted) resolve(); else reject(unavailable(RELAY_LEADER_CHANGED)); },
        (err: unknown) => { if (ctx.signal.aborted) resolve(); else reject(relayError(entry.endedBy ?? err)); },
      ).finally(() => {
        if (this.sessions.get(nodeId) === entry) this.sessions.delete(nodeId);
        ctx.signal.removeEventListener('abort', onAbort);
      });
    });
  }

  // Answered here for a session relayed here; the beat follows to the leader.
  heartbeat(req: HeartbeatRequest, ctx: CallContext): HeartbeatResponse {
    const nodeId = ctx.peer!.nodeId;
    if (this.sessions.get(nodeId)?.id !== req.SessionID) throw notFound(SESSION_INVALID);
    this.beatsDue.set(nodeId, { For: forOf(ctx), SessionID: req.SessionID });
    this.scheduleBeats();
    return { PeriodMs: this.opts.intervalMs() };
  }

  private scheduleBeats(): void {
    if (this.closed || this.beatTimer || this.beatsInFlight || !this.beatsDue.size) return;
    this.beatTimer = setTimeout(() => { this.beatTimer = undefined; void this.sendBeats(); }, this.opts.batchMs ?? BATCH_MS);
  }

  private async sendBeats(): Promise<void> {
    const due = [...this.beatsDue.values()];
    this.beatsDue.clear();
    this.beatsInFlight = true;
    try {
      for (let i = 0; i < due.length && !this.closed; i += MAX_BATCH_WEIGHT) {
        const beats = due.slice(i, i + MAX_BATCH_WEIGHT);
        const res = await this.upstream().unary(RelayHeartbeats, { Beats: beats }, { timeoutMs: CALL_TIMEOUT_MS });
        res.Results.forEach((r, j) => { if (r.Error && beats[j]) this.endSession(beats[j], raiseRelayed(r.Error)); });
      }
    } catch (err) {
      // The streams of a lost leader end on their own; a slow one gets the next beats.
      const t = Date.now();
      if (t - this.lastBeatLog >= BEAT_LOG_MS) {
        this.lastBeatLog = t;
        this.opts.log.warn({ err: (err as Error).message, beats: due.length }, 'relayed heartbeats not taken by the leader (logged once in 10 s)');
      }
    } finally {
      this.beatsInFlight = false;
      this.scheduleBeats();
    }
  }

  private endSession(beat: Beat, why: Error): void {
    const s = this.sessions.get(beat.For.NodeID);
    if (!s || s.id !== beat.SessionID) return;
    s.endedBy = why;
    s.stream.cancel();
  }

  updateTaskStatus(req: UpdateTaskStatusRequest, ctx: CallContext): Promise<UpdateTaskStatusResponse> {
    return this.reports.add({ For: forOf(ctx), SessionID: req.SessionID, Updates: req.Updates });
  }

  close(): void {
    this.closed = true;
    if (this.beatTimer) clearTimeout(this.beatTimer);
    this.beatTimer = undefined;
    this.beatsDue.clear();
    this.reports.fail(unavailable('dispatcher: stopped'));
    for (const s of this.sessions.values()) s.stream.cancel();
    this.sessions.clear();
    this.channel?.close();
    this.channel = undefined;
  }
}
