import type { Logger } from '../../common/log';
import { ShoalError, unavailable } from '../../common/errors';
import { RpcError, type CallContext, type Passed, type RpcChannel, type RpcStream } from '../../rpc/transport';
import {
  RelayHeartbeats, RelaySessionPassed, RelayUpdateTaskStatus, isNotLeader, leaderUnreachable, raiseRelayed, relayedBeatMissed,
  type HeartbeatRequest, type HeartbeatResponse, type RelayedError, type RelayedFor, type SessionMessage, type SessionRequest,
  type UpdateTaskStatusRequest, type UpdateTaskStatusResponse,
} from '../../protocol/dispatcher';

// A follower's half of the relay (protocol/dispatcher.ts, Relay*): the
// sessions, heartbeats and status reports of the nodes connected here go to
// the leader's dispatcher over one channel, each named as the node this
// manager's TLS check verified. Heartbeats and reports wait up to
// BATCH_MS to go in one call with the others'. The leader's session
// messages go to the node as the bytes the leader wrote, never read here
// (the node checks each). Its answers come back unchanged, except that
// "not the leader" becomes "open the session again": the node should come
// back here, not move to the leader and pile onto it. A leader this manager
// cannot reach sends the node elsewhere.
// A relayed session the leader had taken whose connection then drops (the
// leader unchanged) is "open the session again" too: the node comes back
// here over the connection it has, and a leader really gone fails that
// second try within the connect timeout. A batch of beats the leader did not
// answer is a missed beat to each node, not a lost session. Either way, a
// leader held up for some seconds no longer sends every node of this manager
// to make a new connection elsewhere at once (a storm of TLS handshakes onto
// managers that are busy already).

export interface RelayOptions {
  connect(addr: string): RpcChannel;
  leaderAddr(): string | undefined;
  log: Logger;
  batchMs?: number;
}

// Far below a heartbeat interval (at least 500 ms).
const BATCH_MS = 20;
// A relayed call's bound; the node's own call has its own, usually shorter.
const CALL_TIMEOUT_MS = 10_000;
// Entries (heartbeats) or status updates per call: well inside a message.
const MAX_BATCH_WEIGHT = 2000;
export const RELAY_LEADER_CHANGED = 'dispatcher: the leader changed; open the session again';
export const RELAY_CONNECTION_LOST = 'dispatcher: the connection to the leader was lost; open the session again';

// No leader to relay to, said here (not by a leader): goes to the node as is.
class NoLeader extends ShoalError {
  constructor(detail: string) { super('unavailable', leaderUnreachable(detail).message); }
}

// What the node is told. The leader's own answers pass, "not the leader"
// as "open the session again" (here). A leader this manager cannot reach
// (no answer, a lost connection) is "not the leader, none reachable": the
// node tries another manager, as a node cut off with this one must.
function relayError(err: unknown): Error {
  if (err instanceof NoLeader) return err;
  if (isNotLeader(err)) return unavailable(RELAY_LEADER_CHANGED);
  if (err instanceof RpcError && !err.answered) return leaderUnreachable(err.message);
  if (err instanceof ShoalError) return err;
  return leaderUnreachable((err as Error)?.message ?? String(err));
}

// The leader did not answer: the connection failed or the call's deadline passed.
const transportFailure = (err: unknown): boolean => err instanceof RpcError && !err.answered && err.kind === 'unavailable';

function forOf(ctx: CallContext): RelayedFor {
  const p = ctx.peer!;
  return { NodeID: p.nodeId, Role: p.role, Addr: p.address };
}

// Entries gathered for one call; each settles with its own result.
class Batcher<Entry, Res> {
  private pending: Array<{ entry: Entry; resolve: (r: Res) => void; reject: (e: Error) => void }> = [];
  private weight = 0;
  private timer?: NodeJS.Timeout;

  private readonly weigh: (e: Entry) => number;
  private readonly failed: (err: unknown) => Error;

  // `weigh`: an entry's share of MAX_BATCH_WEIGHT (1 by default); `failed`:
  // what each node is told when the whole call fails (relayError by default).
  constructor(
    private readonly send: (entries: Entry[]) => Promise<Array<Res | { Error: RelayedError }>>,
    private readonly delayMs: number,
    opts: { weigh?: (e: Entry) => number; failed?: (err: unknown) => Error } = {},
  ) {
    this.weigh = opts.weigh ?? (() => 1);
    this.failed = opts.failed ?? relayError;
  }

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
      const e = this.failed(err);
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

export class LeaderRelay {
  // Sessions and reports on one channel, heartbeats on one of their own: a
  // beat must not queue behind thousands of status reports on the same
  // connection, or the leader finds this manager's nodes silent.
  private channel?: RpcChannel;
  private beatChannel?: RpcChannel;
  private readonly streams = new Set<RpcStream>();
  private closed = false;
  private readonly beats: Batcher<{ For: RelayedFor; SessionID: string }, HeartbeatResponse>;
  private readonly reports: Batcher<{ For: RelayedFor; SessionID: string; Updates: UpdateTaskStatusRequest['Updates'] }, UpdateTaskStatusResponse>;

  constructor(private readonly opts: RelayOptions) {
    const delay = opts.batchMs ?? BATCH_MS;
    this.beats = new Batcher<{ For: RelayedFor; SessionID: string }, HeartbeatResponse>(async (Beats) => {
      const res = await this.upstream('beats').unary(RelayHeartbeats, { Beats }, { timeoutMs: CALL_TIMEOUT_MS });
      return res.Results.map((r) => (r.Error ? { Error: r.Error } : { PeriodMs: r.PeriodMs! }));
    }, delay, { failed: (err) => (transportFailure(err) ? relayedBeatMissed((err as Error).message) : relayError(err)) });
    this.reports = new Batcher<{ For: RelayedFor; SessionID: string; Updates: UpdateTaskStatusRequest['Updates'] }, UpdateTaskStatusResponse>(async (Reports) => {
      const res = await this.upstream().unary(RelayUpdateTaskStatus, { Reports }, { timeoutMs: CALL_TIMEOUT_MS });
      return res.Results.map((r): UpdateTaskStatusResponse | { Error: RelayedError } => (r.Error ? { Error: r.Error } : {}));
    }, delay, { weigh: (r) => 1 + r.Updates.length });
  }

  // Whether there is a leader to relay to.
  get available(): boolean { return !this.closed && this.opts.leaderAddr() !== undefined; }

  // The channel (of two) to the current leader; a new leader gets new ones
  // (the streams on the old one end, and their nodes open their sessions again).
  private upstream(purpose: 'beats' | 'rest' = 'rest'): RpcChannel {
    const addr = this.opts.leaderAddr();
    if (this.closed || !addr) throw new NoLeader('no leader is known');
    if (this.channel?.address !== addr) {
      this.channel?.close();
      this.beatChannel?.close();
      this.channel = this.opts.connect(addr);
      this.beatChannel = this.opts.connect(addr);
      this.opts.log.info({ leader: addr }, 'relaying node sessions to the leader');
    }
    return purpose === 'beats' ? this.beatChannel! : this.channel;
  }

  async session(req: SessionRequest, ctx: CallContext, send: (m: Passed<SessionMessage>) => void): Promise<void> {
    const channel = this.upstream();
    let taken = false; // the leader's first message came: it has the session
    return await new Promise<void>((resolve, reject) => {
      const stream = channel.stream(RelaySessionPassed, { For: forOf(ctx), Req: req }, (m) => { taken = true; send(m); });
      this.streams.add(stream);
      const onAbort = (): void => stream.cancel();
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      stream.done.then(
        () => { if (ctx.signal.aborted) resolve(); else reject(unavailable(RELAY_LEADER_CHANGED)); },
        (err: unknown) => {
          if (ctx.signal.aborted) resolve();
          else if (taken && transportFailure(err) && !this.closed && this.channel === channel) reject(unavailable(RELAY_CONNECTION_LOST));
          else reject(relayError(err));
        },
      ).finally(() => {
        this.streams.delete(stream);
        ctx.signal.removeEventListener('abort', onAbort);
      });
    });
  }

  heartbeat(req: HeartbeatRequest, ctx: CallContext): Promise<HeartbeatResponse> {
    return this.beats.add({ For: forOf(ctx), SessionID: req.SessionID });
  }

  updateTaskStatus(req: UpdateTaskStatusRequest, ctx: CallContext): Promise<UpdateTaskStatusResponse> {
    return this.reports.add({ For: forOf(ctx), SessionID: req.SessionID, Updates: req.Updates });
  }

  close(): void {
    this.closed = true;
    const stopped = unavailable('dispatcher: stopped');
    this.beats.fail(stopped);
    this.reports.fail(stopped);
    for (const s of this.streams) s.cancel();
    this.streams.clear();
    this.channel?.close();
    this.beatChannel?.close();
    this.channel = undefined;
    this.beatChannel = undefined;
  }
}
