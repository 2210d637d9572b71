import type { Logger } from '../../common/log';
import { ShoalError, unavailable } from '../../common/errors';
import type { CallContext, RpcChannel, RpcStream, UnaryMethod } from '../../rpc/transport';
import {
  RelayHeartbeat, RelaySession, RelayUpdateTaskStatus, isNotLeader,
  type HeartbeatRequest, type HeartbeatResponse, type Relayed, type SessionMessage, type SessionRequest,
  type UpdateTaskStatusRequest, type UpdateTaskStatusResponse,
} from '../../protocol/dispatcher';

// A follower's half of the relay (protocol/dispatcher.ts, Relay*): the
// sessions, heartbeats and status reports of the nodes connected here go to
// the leader's dispatcher over one channel, each named as the node this
// manager's TLS check verified. The leader's answers come back unchanged,
// except that "not the leader" becomes "open the session again": the node
// should come back here, not move to the leader and pile onto it.

export interface RelayOptions {
  connect(addr: string): RpcChannel;
  leaderAddr(): string | undefined;
  log: Logger;
  callTimeoutMs?: number;
}

const CALL_TIMEOUT_MS = 10_000;
export const RELAY_LEADER_CHANGED = 'dispatcher: the leader changed; open the session again';

function relayError(err: unknown): Error {
  if (isNotLeader(err)) return unavailable(RELAY_LEADER_CHANGED);
  if (err instanceof ShoalError) return err;
  return unavailable(`dispatcher: relay to the leader failed: ${(err as Error)?.message ?? String(err)}`);
}

function forOf(ctx: CallContext): Relayed<unknown>['For'] {
  const p = ctx.peer!;
  return { NodeID: p.nodeId, Role: p.role, Addr: p.address };
}

export class LeaderRelay {
  private channel?: RpcChannel;
  private readonly streams = new Set<RpcStream>();
  private closed = false;

  constructor(private readonly opts: RelayOptions) {}

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
    return new Promise<void>((resolve, reject) => {
      const stream = channel.stream(RelaySession, { For: forOf(ctx), Req: req }, send);
      this.streams.add(stream);
      const onAbort = (): void => stream.cancel();
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      stream.done.then(
        () => { if (ctx.signal.aborted) resolve(); else reject(unavailable(RELAY_LEADER_CHANGED)); },
        (err: unknown) => { if (ctx.signal.aborted) resolve(); else reject(relayError(err)); },
      ).finally(() => {
        this.streams.delete(stream);
        ctx.signal.removeEventListener('abort', onAbort);
      });
    });
  }

  heartbeat(req: HeartbeatRequest, ctx: CallContext): Promise<HeartbeatResponse> {
    return this.unary(RelayHeartbeat, req, ctx);
  }

  updateTaskStatus(req: UpdateTaskStatusRequest, ctx: CallContext): Promise<UpdateTaskStatusResponse> {
    return this.unary(RelayUpdateTaskStatus, req, ctx);
  }

  private async unary<Req, Res>(m: UnaryMethod<Relayed<Req>, Res>, req: Req, ctx: CallContext): Promise<Res> {
    const channel = this.upstream();
    try {
      return await channel.unary(m, { For: forOf(ctx), Req: req }, { timeoutMs: this.opts.callTimeoutMs ?? CALL_TIMEOUT_MS, signal: ctx.signal });
    } catch (err) {
      throw relayError(err);
    }
  }

  close(): void {
    this.closed = true;
    for (const s of this.streams) s.cancel();
    this.streams.clear();
    this.channel?.close();
    this.channel = undefined;
  }
}
