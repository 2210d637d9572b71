// An in-memory transport for tests: nodes "listen" on names in one
// MemoryNetwork and call each other with the same access rules, the same JSON
// round trip and the same checks as the TLS transport. A node can be cut off
// (partition) to test what happens when a peer goes silent.
import { invalid, isShoalError } from '../common/errors';
import {
  accessAllowed, decodeMessage, Passed, RpcError,
  type CallContext, type Peer, type RpcChannel, type RpcErrorKind, type RpcPipe, type RpcServer, type RpcStream, type StreamMethod, type UnaryMethod,
} from './transport';

type UnaryHandler = (req: unknown, ctx: CallContext) => Promise<unknown>;
type StreamHandler = (req: unknown, ctx: CallContext, send: (msg: unknown) => void) => Promise<void>;

interface Registered {
  access: UnaryMethod<unknown, unknown>['access'];
  request: (raw: unknown) => unknown;
  unary?: UnaryHandler;
  stream?: StreamHandler;
  pipe?: UnaryHandler;
}

export class MemoryServer implements RpcServer {
  readonly methods = new Map<string, Registered>();
  constructor(readonly address: string, readonly clusterId: () => string | undefined) {}

  unary<Req, Res>(m: UnaryMethod<Req, Res>, handler: (req: Req, ctx: CallContext) => Promise<Res>): void {
    this.methods.set(m.name, { access: m.access, request: m.request, unary: handler as UnaryHandler });
  }

  stream<Req, Msg>(m: StreamMethod<Req, Msg>, handler: (req: Req, ctx: CallContext, send: (msg: Msg | Passed<Msg>) => void) => Promise<void>): void {
    this.methods.set(m.name, { access: m.access, request: m.request, stream: handler as StreamHandler });
  }

  pipe<Req, Res>(m: UnaryMethod<Req, Res>, handler: (req: Req, ctx: CallContext) => Promise<Res>): void {
    this.methods.set(m.name, { access: m.access, request: m.request, pipe: handler as UnaryHandler });
  }
}

export class MemoryNetwork {
  // asIo: calls reach their handler as socket I/O would, after the timers
  // that are due (setImmediate), not in the caller's own turn; a test of
  // what a held-up event loop does first needs that order.
  constructor(readonly opts: { asIo?: boolean } = {}) {}

  private readonly servers = new Map<string, MemoryServer>();
  private readonly cut = new Set<string>();
  private readonly live = new Set<{ from?: string; to: string; abort: (e: Error) => void }>();

  // A server reachable at `address`; `clusterId` is the cluster this node belongs to (for access checks).
  listen(address: string, clusterId: () => string | undefined): MemoryServer {
    const s = new MemoryServer(address, clusterId);
    this.servers.set(address, s);
    return s;
  }

  unlisten(address: string): void {
    this.servers.delete(address);
    this.dropCalls((c) => c.to === address);
  }

  // A channel from `self` (its certificate's identity; undefined = no certificate) to `address`;
  // `from` is the caller's address when it has no certificate.
  channel(self: Peer | undefined, address: string, from?: string): RpcChannel {
    return new MemoryChannel(this, self, address, self?.address ?? from);
  }

  // Calls to or from the address fail as unreachable; open streams end with 'unavailable'.
  partition(address: string): void {
    this.cut.add(address);
    this.dropCalls((c) => c.to === address || c.from === address);
  }

  heal(address: string): void { this.cut.delete(address); }

  /** @internal */
  route(self: Peer | undefined, address: string, method: string): { server: MemoryServer; reg: Registered } {
    if (this.cut.has(address) || (self && this.cut.has(self.address))) throw new RpcError('unavailable', `connection error: ${address} is unreachable`);
    const server = this.servers.get(address);
    if (!server) throw new RpcError('unavailable', `connection error: nothing listens on ${address}`);
    const reg = server.methods.get(method);
    if (!reg) throw new RpcError('internal', `unknown method ${method}`);
    if (!accessAllowed(reg.access, self, server.clusterId())) throw new RpcError('permission', `permission denied for ${method}`);
    return { server, reg };
  }

  /** @internal */
  track(call: { from?: string; to: string; abort: (e: Error) => void }): () => unknown {
    this.live.add(call);
    return () => this.live.delete(call);
  }

  private dropCalls(match: (c: { from?: string; to: string }) => boolean): void {
    for (const c of [...this.live]) if (match(c)) c.abort(new RpcError('unavailable', `connection to ${c.to} lost`));
  }
}

const roundTrip = (v: unknown): unknown => (v === undefined ? undefined : JSON.parse(JSON.stringify(v)));

// An error as the caller sees it: kind and message survive, the rest does
// not. `answered`: the handler raised it (as a status from the peer would be).
function asRpcError(err: unknown, answered = false): RpcError {
  if (err instanceof RpcError) return new RpcError(err.rpcKind, err.message, { answered });
  if (isShoalError(err)) return new RpcError(err.kind as RpcErrorKind, err.message, { answered });
  return new RpcError('internal', (err as Error)?.message ?? String(err), { answered });
}

class MemoryChannel implements RpcChannel {
  private closed = false;
  constructor(private readonly net: MemoryNetwork, private readonly self: Peer | undefined, readonly address: string, private readonly from?: string) {}

  unary<Req, Res>(m: UnaryMethod<Req, Res>, req: Req, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<Res> {
    return this.call(m, req, opts, 'unary');
  }

  // Each call of a pipe as a unary call to the pipe's handler: with one
  // process between them, no stream needs to be kept.
  pipe<Req, Res>(m: UnaryMethod<Req, Res>): RpcPipe<Req, Res> {
    let closed = false;
    return {
      call: (req, opts) => (closed ? Promise.reject(new RpcError('unavailable', 'call cancelled')) : this.call(m, req, opts, 'pipe')),
      close: () => { closed = true; },
    };
  }

  private async call<Req, Res>(m: UnaryMethod<Req, Res>, req: Req, opts: { timeoutMs: number; signal?: AbortSignal }, kind: 'unary' | 'pipe'): Promise<Res> {
    if (this.closed) throw new RpcError('unavailable', 'channel closed');
    const { reg } = this.net.route(this.self, this.address, m.name);
    const handler = reg[kind];
    if (!handler) throw new RpcError('internal', `${m.name} is not served as a ${kind}`);
    const ac = new AbortController();
    return new Promise<Res>((resolve, reject) => {
      const fail = (e: Error): void => { ac.abort(e); reject(e); };
      const timer = setTimeout(() => fail(new RpcError('unavailable', `deadline exceeded calling ${m.name}`)), opts.timeoutMs);
      const onAbort = (): void => fail(new RpcError('unavailable', 'call cancelled'));
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      const untrack = this.net.track({ from: this.self?.address, to: this.address, abort: fail });
      const finish = (): void => { clearTimeout(timer); untrack(); opts.signal?.removeEventListener('abort', onAbort); };
      (this.net.opts.asIo ? new Promise<void>((r) => setImmediate(r)) : Promise.resolve())
        .then(() => {
          let checked: unknown;
          try { checked = reg.request(roundTrip(req)); } catch (e) { throw isShoalError(e) ? e : invalid(String(e)); }
          return handler(checked, { peer: this.self, remoteAddress: this.from, signal: ac.signal });
        })
        .then((res) => m.response(roundTrip(res)))
        .then((res) => { finish(); resolve(res); }, (err: unknown) => { finish(); reject(asRpcError(err, true)); });
    });
  }

  stream<Req, Msg>(m: StreamMethod<Req, Msg>, req: Req, onMessage: (msg: Msg) => void): RpcStream {
    const ac = new AbortController();
    let untrack: () => unknown = () => undefined;
    const done = new Promise<void>((resolve, reject) => {
      if (this.closed) { reject(new RpcError('unavailable', 'channel closed')); return; }
      let ended = false;
      const end = (err?: Error): void => {
        if (ended) return;
        ended = true;
        untrack();
        if (!ac.signal.aborted) ac.abort(err ?? new Error('stream ended'));
        if (err) reject(err); else resolve();
      };
      ac.signal.addEventListener('abort', () => end(ac.signal.reason instanceof RpcError ? ac.signal.reason : new RpcError('unavailable', 'stream cancelled')), { once: true });
      let reg: Registered;
      try { reg = this.net.route(this.self, this.address, m.name).reg; } catch (e) { end(e as Error); return; }
      untrack = this.net.track({ from: this.self?.address, to: this.address, abort: (e) => ac.abort(e) });
      const send = (msg: unknown): void => {
        if (ended) return;
        let checked: Msg;
        // A Passed is its bytes on the wire; a passedOn() check makes one again.
        try { checked = m.message(msg instanceof Passed ? decodeMessage(msg.bytes) : roundTrip(msg)); } catch (e) { end(asRpcError(e)); return; }
        // Delivered asynchronously, in order, as a socket would.
        queueMicrotask(() => { if (!ended) onMessage(checked); });
      };
      Promise.resolve()
        .then(() => reg.stream!(reg.request(roundTrip(req)), { peer: this.self, remoteAddress: this.from, signal: ac.signal }, send))
        .then(() => queueMicrotask(() => end()), (err: unknown) => end(asRpcError(err, true)));
    });
    done.catch(() => undefined); // the caller may only cancel
    return { done, cancel: () => ac.abort(new RpcError('unavailable', 'stream cancelled')) };
  }

  close(): void { this.closed = true; }
}
