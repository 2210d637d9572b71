// The node-to-node channel over mutually authenticated TLS, with @grpc/grpc-js
// as the HTTP/2 + framing layer. There is no .proto: every method is the path
// `/shoal.<component>/<Verb>` (from its name 'component.Verb'), every message
// a Buffer of UTF-8 JSON, checked by the method's Check where it enters.
//
// Server: TLS asks for a client certificate but does not require one, so the
// 'anyone' methods (fetching the CA, joining with a token) work for a node
// that has none yet. A certificate that is presented must chain to the swarm
// CA (else the connection is closed right after the handshake, as Go's
// VerifyClientCertIfGiven refuses it); the caller's identity comes from that
// verified certificate only (CN node ID, OU role, O cluster ID), and every
// call goes through `accessAllowed`. Methods may be registered before or
// after `listen` (grpc-js accepts handlers on a running server).
//
// Certificates: `tls()` is read for every new connection (our clients always
// send SNI, so the server's SNICallback hands out a context built from the
// current certificate), so a renewed certificate needs no restart.
//
// Client: the server's certificate has CN = node ID, not a host name, so the
// check is "signed by our CA" (+ the expected node ID if given); the TLS
// server name is a fixed non-IP name (an IP there makes Node print DEP0123).
// Keepalive pings every 1 s with a 2 s timeout, so a peer whose host is off
// (packets dropped, no RST) fails open streams with 'unavailable' within
// about 3 s. (A 1 s timeout dropped healthy connections when a busy event
// loop read the ping's answer late.) A new stream that cannot connect fails
// after CONNECT_TIMEOUT_MS; unary calls are bounded by their deadline.
import * as grpc from '@grpc/grpc-js';
import { createSecureContext, type PeerCertificate, type SecureContext, type SecureContextOptions, type TLSSocket } from 'node:tls';
import type { Http2Session } from 'node:http2';
import { constants as cryptoConstants } from 'node:crypto';
import { ERROR_KINDS, invalid, isShoalError, type ErrorKind } from '../common/errors';
import type { Logger } from '../common/log';
import {
  accessAllowed, decodeMessage, encodeMessage, isPassedOn, Passed, RpcError,
  type Access, type ChannelKeepalive, type CallContext, type Peer, type RpcChannel, type RpcErrorKind, type RpcPipe, type RpcServer, type RpcStream, type StreamMethod, type UnaryMethod,
} from './transport';

export interface NodeTls { caPem: string; certPem: string; keyPem: string }

// Keepalive of a client that says none: a ping every second while connected;
// no answer within two seconds closes the connection (and fails its calls as
// 'unavailable'). An agent's session channel sets its own, scaled with the
// heartbeat interval (agent/keepalive.ts).
export const KEEPALIVE_TIME_MS = 1000;
export const KEEPALIVE_TIMEOUT_MS = 2000;
// A server pings only to reap connections whose peer vanished: it learns that
// a node is gone from its heartbeats, not from pings. Tight pings here closed
// every connection of a busy node (or of one `shoal sim` process holding
// hundreds) in one go, and their reconnections loaded the leader further.
// Once a minute, with a minute to answer: a ping's answer waits behind
// whatever the connection carries already (up to 16 MiB windows, below; see
// MANAGER_KEEPALIVE), and a dropped connection costs a node its session.
const SERVER_KEEPALIVE_TIME_MS = 60_000;
const SERVER_KEEPALIVE_TIMEOUT_MS = 60_000;
// A channel from one manager to another (the dispatcher's relay) pings every
// 30 s with a minute to answer. A leader held up for seconds must not lose
// every follower's channel at once, and the answer to a ping queues behind
// the assignments the leader is sending the follower's nodes: with 20 s to
// answer, a follower relaying 1,667 nodes lost its connection twice in 30 s
// while 5,000 nodes were being given 150,000 tasks (bench/scale.ts). A leader
// that is gone is found by the election (a new leader address closes these
// channels), not by pings.
const MANAGER_KEEPALIVE = { timeMs: 30_000, timeoutMs: 60_000 };

// HTTP/2 flow-control window, per stream and per connection (the default is
// 64 KiB), where a connection carries a crowd: a server's receive side, and a
// manager's channel to another (the dispatcher's relay). A receiver lets its
// peer send only that much before it acknowledges, and it acknowledges from
// its event loop: under load a turn takes 0.1-1 s, and a relay's one
// connection to the leader carries the assignments of some 1,700 nodes (about
// 100 MB for 150,000 tasks) and their heartbeats, 64 KiB a turn at most.
// A node's own channel keeps the default: node sizes a TLS socket's write
// buffer to its biggest write and never shrinks it, and with 16 MiB the
// manager wrote each big assignment in one go. After one 256 KiB message
// per stream: 412 KiB per connection against 204 KiB with 64 KiB windows
// (glibc's count, a scratch benchmark of 500 connections to one GrpcServer).
const FLOW_CONTROL_WINDOW = 16 * 1024 * 1024;

// A manager's channel to another manager: its own pings, windows as above.
export const MANAGER_CHANNEL: ChannelTuning = { keepalive: MANAGER_KEEPALIVE, flowControlWindow: FLOW_CONTROL_WINDOW };
// The TLS server name our clients send (never an IP: see DEP0123).
const DEFAULT_SERVER_NAME = 'swarm-node';
const KIND_KEY = 'shoal-kind';
// grpc-js has no connect timeout of its own: a host that drops packets would
// hold a new stream for the OS's SYN timeout (about 2 minutes).
export const CONNECT_TIMEOUT_MS = 5000;
const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

const KINDS: readonly RpcErrorKind[] = [...ERROR_KINDS, 'permission'];
const CODE_OF: Record<RpcErrorKind, grpc.status> = {
  invalid: grpc.status.INVALID_ARGUMENT,
  precondition: grpc.status.FAILED_PRECONDITION,
  not_found: grpc.status.NOT_FOUND,
  conflict: grpc.status.ALREADY_EXISTS,
  unavailable: grpc.status.UNAVAILABLE,
  sequence: grpc.status.ABORTED,
  internal: grpc.status.INTERNAL,
  permission: grpc.status.PERMISSION_DENIED,
  forbidden: grpc.status.PERMISSION_DENIED,
  unauthorized: grpc.status.UNAUTHENTICATED,
};

export const methodPath = (name: string): string => {
  const dot = name.indexOf('.');
  return `/shoal.${name.slice(0, dot)}/${name.slice(dot + 1)}`;
};

const identity = (b: Buffer): Buffer => b;

// ---------------------------------------------------------------------------
// Errors on the wire: the kind travels in the trailers, the message as the
// status details, so the caller gets the same ShoalError the handler threw.

function toStatus(err: unknown): Partial<grpc.StatusObject> {
  let kind: RpcErrorKind = 'internal';
  let message = String((err as Error)?.message ?? err);
  if (err instanceof RpcError) kind = err.rpcKind;
  else if (isShoalError(err)) kind = err.kind;
  else message = `internal error: ${message}`;
  const metadata = new grpc.Metadata();
  metadata.set(KIND_KEY, kind);
  return { code: CODE_OF[kind], details: message, metadata };
}

function kindOfCode(code: number): RpcErrorKind {
  switch (code) {
    case grpc.status.INVALID_ARGUMENT: return 'invalid';
    case grpc.status.FAILED_PRECONDITION: return 'precondition';
    case grpc.status.NOT_FOUND: return 'not_found';
    case grpc.status.ALREADY_EXISTS: return 'conflict';
    case grpc.status.ABORTED: return 'sequence';
    case grpc.status.PERMISSION_DENIED: case grpc.status.UNAUTHENTICATED: return 'permission';
    case grpc.status.UNAVAILABLE: case grpc.status.DEADLINE_EXCEEDED: case grpc.status.CANCELLED: return 'unavailable';
    default: return 'internal';
  }
}

function fromServiceError(err: unknown, method: string, address: string): RpcError {
  const e = err as Partial<grpc.ServiceError>;
  if (typeof e?.code !== 'number') return new RpcError('internal', String((err as Error)?.message ?? err));
  const sent = e.metadata?.get(KIND_KEY)[0];
  const kind = typeof sent === 'string' && (KINDS as string[]).includes(sent) ? sent as RpcErrorKind : kindOfCode(e.code);
  if (typeof sent === 'string') return new RpcError(kind, e.details ?? '', { answered: true });
  // Not a handler's error: a transport failure, said with where it happened.
  if (e.code === grpc.status.DEADLINE_EXCEEDED) return new RpcError('unavailable', `deadline exceeded calling ${method} on ${address}`);
  return new RpcError(kind, `${method} on ${address}: ${e.details || grpc.status[e.code]}`);
}

// grpc-js prints its own errors on stderr; the daemon's stderr is JSON log
// lines, so they go through our logger (once per process: it is global).
let grpcLogsRouted = false;
function routeGrpcLogs(log: Logger): void {
  if (grpcLogsRouted) return;
  grpcLogsRouted = true;
  const l = log.child({ part: 'grpc-js' });
  const text = (m: unknown, rest: unknown[]): string => [m, ...rest].map(String).join(' ');
  grpc.setLogger({
    error: (m?: unknown, ...rest: unknown[]) => l.warn(text(m, rest)),
    info: (m?: unknown, ...rest: unknown[]) => l.debug(text(m, rest)),
    debug: (m?: unknown, ...rest: unknown[]) => l.debug(text(m, rest)),
  });
}

// ---------------------------------------------------------------------------
// Server

// Who called: the verified client certificate only (grpc-js hands it out only
// when the TLS layer authorized it against our CA).
function peerOf(call: { getAuthContext(): { sslPeerCertificate?: PeerCertificate }; getPeer(): string }): Peer | undefined {
  return peerOfCertificate(call.getAuthContext().sslPeerCertificate, call.getPeer());
}

function peerOfCertificate(cert: PeerCertificate | undefined, callerPeer: string): Peer | undefined {
  if (!cert?.subject) return undefined;
  const one = (v: string | string[] | undefined): string => (Array.isArray(v) ? (v.length === 1 ? v[0] : '') : v ?? '');
  const nodeId = one(cert.subject.CN);
  const ou = one(cert.subject.OU);
  const clusterId = one(cert.subject.O);
  const role = ou === 'swarm-manager' ? 'manager' : ou === 'swarm-worker' ? 'worker' : undefined;
  if (!nodeId || !clusterId || !role) return undefined;
  return { nodeId, role, clusterId, address: hostOf(callerPeer) };
}

// 'ipv4:1.2.3.4:5', '1.2.3.4:5', '[::1]:5', '::ffff:1.2.3.4:5' → the IP.
function hostOf(peer: string): string {
  let s = peer.replace(/^ipv[46]:/, '');
  const br = /^\[([^\]]+)\]/.exec(s);
  if (br) s = br[1];
  else if (/:\d+$/.test(s)) s = s.replace(/:\d+$/, '');
  return s.replace(/^::ffff:/, '');
}

// grpc-js server credentials whose default context can be swapped, plus an
// SNICallback that builds the context from `tls()` for each new connection.
class NodeServerCredentials extends grpc.ServerCredentials {
  private current?: { tls: NodeTls; ctx: SecureContext };
  private readonly tls: () => NodeTls;
  private readonly log: Logger;
  constructor(tls: () => NodeTls, log: Logger) {
    const self: { creds?: NodeServerCredentials } = {};
    super({
      requestCert: true,
      rejectUnauthorized: false, // no certificate is fine ('anyone' methods); a bad one is dropped after the handshake
      settings: { initialWindowSize: FLOW_CONTROL_WINDOW },
      SNICallback: (_name, cb) => {
        try { cb(null, self.creds!.context()); } catch (e) { cb(e as Error, undefined); }
      },
    }, contextOptions(tls()));
    self.creds = this;
    this.tls = tls;
    this.log = log;
    this.context();
  }

  // The context for the current certificate; a change also becomes the
  // default (for clients that send no server name).
  context(): SecureContext {
    const t = this.tls();
    const c = this.current;
    if (c && c.tls.certPem === t.certPem && c.tls.keyPem === t.keyPem && c.tls.caPem === t.caPem) return c.ctx;
    const opts = contextOptions(t);
    const ctx = createSecureContext(opts);
    this.current = { tls: t, ctx };
    if (c) {
      this.updateSecureContextOptions(opts);
      this.log.info('RPC server certificate reloaded');
    }
    return ctx;
  }

  _equals(other: grpc.ServerCredentials): boolean { return other === this; }
}

// No stateless session tickets: with client certificates each ticket carries
// the client's certificate, and writing it grew every connection's TLS write
// buffer for good, 16 KiB per node on a manager (a scratch benchmark of 1,000
// connections to one GrpcServer, glibc's own count: 141 -> 125 KiB each).
// Our clients never resume a TLS session.
function contextOptions(t: NodeTls): SecureContextOptions {
  return { ca: t.caPem, cert: t.certPem, key: t.keyPem, secureOptions: cryptoConstants.SSL_OP_NO_TICKET };
}

// One log line per key per period, so a peer retrying with a bad certificate
// does not flood the log; bounded memory.
class LogLimiter {
  private readonly last = new Map<string, number>();
  constructor(private readonly periodMs: number) {}
  shouldLog(key: string, now: number): boolean {
    const t = this.last.get(key);
    if (t !== undefined && now - t < this.periodMs) return false;
    if (this.last.size >= 1000) this.last.clear();
    this.last.set(key, now);
    return true;
  }
}

interface Http2ServerLike {
  on(ev: 'secureConnection', fn: (s: TLSSocket) => void): unknown;
  on(ev: 'session', fn: (s: Http2Session) => void): unknown;
}

interface Admitted { req: unknown; ctx: CallContext; abort(reason: () => unknown): void }
// Calls a pipe's server holds unanswered before it ends the pipe.
const PIPE_BACKLOG = 64;
type ServerCall = grpc.ServerUnaryCall<Buffer, Buffer> | grpc.ServerWritableStream<Buffer, Buffer> | grpc.ServerDuplexStream<Buffer, Buffer>;

// A message from a caller, decoded and checked: anything wrong is `invalid`.
function checked(check: (raw: unknown) => unknown, buf: Buffer): unknown {
  try { return check(decodeMessage(buf)); } catch (e) { throw isShoalError(e) ? e : invalid(String((e as Error)?.message ?? e)); }
}

export class GrpcServer implements RpcServer {
  private readonly server: grpc.Server;
  private readonly creds: NodeServerCredentials;
  private readonly log: Logger;
  private readonly clusterId: () => string | undefined;
  private readonly refusals = new LogLimiter(60_000);
  // Each verified connection's peer, read from its certificate once rather
  // than per call (Node translates the whole certificate each time: 7% of a
  // busy leader's time). Found by the caller's "address:port" as grpc-js
  // names it; a name two live connections share (possible when listening on
  // several addresses) is not used, and the call reads its certificate.
  private readonly connections = new Map<string, Set<TLSSocket>>();
  private readonly peers = new WeakMap<TLSSocket, Peer | undefined>();

  constructor(opts: { tls: () => NodeTls; clusterId: () => string | undefined; log: Logger }) {
    this.log = opts.log;
    routeGrpcLogs(opts.log);
    this.clusterId = opts.clusterId;
    this.creds = new NodeServerCredentials(opts.tls, opts.log);
    this.server = new grpc.Server({
      'grpc.keepalive_time_ms': SERVER_KEEPALIVE_TIME_MS,
      'grpc.keepalive_timeout_ms': SERVER_KEEPALIVE_TIMEOUT_MS,
      'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
      'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
    });
  }

  async listen(host: string, port: number): Promise<number> {
    const target = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    const bound = await new Promise<number>((resolve, reject) => {
      this.server.bindAsync(target, this.creds, (err, p) => (err ? reject(err) : resolve(p)));
    });
    // A client certificate that does not chain to our CA (or has expired) gets
    // nothing: close the connection before any request is read. grpc-js keeps
    // its HTTP/2 servers private; this listener runs after it set up the session.
    const servers = (this.server as unknown as { http2Servers?: Map<Http2ServerLike, unknown> }).http2Servers;
    if (!servers) throw new Error('grpc-js internals changed: cannot refuse unverified client certificates');
    for (const s of servers.keys()) {
      // The connection's own window (the setting above is each stream's).
      s.on('session', (session: Http2Session) => {
        try { session.setLocalWindowSize(FLOW_CONTROL_WINDOW); } catch { /* already closed: nothing to widen */ }
      });
      s.on('secureConnection', (socket: TLSSocket) => {
        if (socket.authorized) { this.remember(socket); return; }
        const cert = socket.getPeerCertificate();
        if (cert && Object.keys(cert).length > 0) {
          if (this.refusals.shouldLog(socket.remoteAddress ?? '', Date.now())) {
            this.log.warn({ remote: socket.remoteAddress, reason: String(socket.authorizationError) }, 'RPC connection with an unverified client certificate refused (logged once a minute per address)');
          }
          socket.destroy();
        }
      });
    }
    return bound;
  }

  private remember(socket: TLSSocket): void {
    const name = `${socket.remoteAddress}:${socket.remotePort}`;
    this.peers.set(socket, peerOfCertificate(socket.getPeerCertificate(), name));
    let set = this.connections.get(name);
    if (!set) this.connections.set(name, (set = new Set()));
    set.add(socket);
    socket.once('close', () => {
      set.delete(socket);
      if (!set.size && this.connections.get(name) === set) this.connections.delete(name);
    });
  }

  private peerOfCall(call: ServerCall): Peer | undefined {
    const set = this.connections.get(call.getPeer());
    if (set?.size === 1) {
      const [socket] = set;
      if (socket && !socket.destroyed && this.peers.has(socket)) return this.peers.get(socket);
    }
    return peerOf(call);
  }

  close(): Promise<void> {
    // Open streams last as long as their peers: end them all now.
    this.server.forceShutdown();
    return Promise.resolve();
  }

  // Access and the request check, before the handler sees anything. A
  // pipe has no request of its own (`check` undefined): each of its calls is
  // checked as it arrives.
  private admit(access: Access, name: string, call: ServerCall, check: ((raw: unknown) => unknown) | undefined): Admitted {
    // Any new call is a chance to notice a renewed certificate.
    this.creds.context();
    const peer = this.peerOfCall(call);
    if (!accessAllowed(access, peer, this.clusterId())) throw new RpcError('permission', `permission denied for ${name}`);
    let req: unknown;
    if (check) req = checked(check, (call as grpc.ServerUnaryCall<Buffer, Buffer>).request);
    // The signal is made only for a handler that reads it: grpc-js reports
    // every call's end as 'cancelled', and an error (with its stack) per call
    // was a measurable share of a busy leader's time.
    let ac: AbortController | undefined;
    let reason: (() => unknown) | undefined;
    const abort = (why: () => unknown): void => { if (reason) return; reason = why; ac?.abort(why()); };
    (call as grpc.ServerUnaryCall<Buffer, Buffer>).on('cancelled', () => abort(() => new RpcError('unavailable', 'call cancelled')));
    const ctx: CallContext = {
      peer, remoteAddress: hostOf(call.getPeer()),
      get signal(): AbortSignal {
        if (!ac) { ac = new AbortController(); if (reason) ac.abort(reason()); }
        return ac.signal;
      },
    };
    return { req, ctx, abort };
  }

  unary<Req, Res>(m: UnaryMethod<Req, Res>, handler: (req: Req, ctx: CallContext) => Promise<Res>): void {
    const h: grpc.handleUnaryCall<Buffer, Buffer> = (call, callback) => {
      let admitted: ReturnType<GrpcServer['admit']>;
      try { admitted = this.admit(m.access, m.name, call, m.request); } catch (e) { callback(toStatus(e)); return; }
      Promise.resolve()
        .then(() => handler(admitted.req as Req, admitted.ctx))
        .then((res) => encodeMessage(res)) // a value JSON cannot hold fails the call, not the process
        .then((buf) => callback(null, buf), (err: unknown) => {
          if (!isShoalError(err)) this.log.error({ err, method: m.name }, 'RPC handler failed');
          callback(toStatus(err));
        });
    };
    this.register(m.name, h, 'unary');
  }

  stream<Req, Msg>(m: StreamMethod<Req, Msg>, handler: (req: Req, ctx: CallContext, send: (msg: Msg | Passed<Msg>) => void) => Promise<void>): void {
    const h: grpc.handleServerStreamingCall<Buffer, Buffer> = (call) => {
      let admitted: ReturnType<GrpcServer['admit']>;
      const fail = (err: unknown): void => { call.emit('error', toStatus(err)); };
      try { admitted = this.admit(m.access, m.name, call, m.request); } catch (e) { fail(e); return; }
      let ended = false;
      const send = (msg: Msg | Passed<Msg>): void => { if (!ended && !call.cancelled) call.write(msg instanceof Passed ? msg.bytes : encodeMessage(msg)); };
      Promise.resolve()
        .then(() => handler(admitted.req as Req, admitted.ctx, send))
        .then(() => { ended = true; if (!call.cancelled) call.end(); }, (err: unknown) => {
          ended = true;
          if (!isShoalError(err)) this.log.error({ err, method: m.name }, 'RPC stream handler failed');
          if (!call.cancelled) fail(err);
        })
        .finally(() => admitted.abort(() => new Error('stream ended')));
    };
    this.register(m.name, h, 'serverStream');
  }

  // A bidirectional stream underneath: calls answered one at a time, in
  // order; the first error (access, a bad message, the handler's) ends it.
  pipe<Req, Res>(m: UnaryMethod<Req, Res>, handler: (req: Req, ctx: CallContext) => Promise<Res>): void {
    const h: grpc.handleBidiStreamingCall<Buffer, Buffer> = (call) => {
      let admitted: Admitted;
      let ended = false;
      const fail = (err: unknown): void => {
        if (ended) return;
        ended = true;
        if (!isShoalError(err)) this.log.error({ err, method: m.name }, 'RPC pipe handler failed');
        if (!call.cancelled) call.emit('error', toStatus(err));
      };
      try { admitted = this.admit(m.access, m.name, call, undefined); } catch (e) { fail(e); return; }
      const waiting: Buffer[] = [];
      let busy = false;
      let halfClosed = false; // the caller sends no more: answer what it sent, then end
      const finish = (): void => { if (!ended) { ended = true; if (!call.cancelled) call.end(); } };
      const next = (): void => {
        const buf = waiting.shift();
        if (ended || buf === undefined) { busy = false; if (halfClosed) finish(); return; }
        busy = true;
        Promise.resolve()
          .then(() => handler(checked(m.request, buf) as Req, admitted.ctx))
          .then((res) => encodeMessage(res)) // a value JSON cannot hold ends the pipe, not the process
          .then((out) => { if (!ended && !call.cancelled) call.write(out); next(); })
          .catch(fail);
      };
      call.on('data', (buf: Buffer) => {
        // A caller waits for its answers (an agent: one beat at a time); one that does not is cut off.
        if (waiting.length >= PIPE_BACKLOG) { fail(invalid(`${m.name}: more than ${PIPE_BACKLOG} calls waiting on one pipe`)); return; }
        waiting.push(buf);
        if (!busy) next();
      });
      call.on('end', () => { halfClosed = true; if (!busy) finish(); });
      call.on('close', () => { ended = true; admitted.abort(() => new Error('pipe ended')); });
    };
    this.register(m.name, h, 'bidi');
  }

  private register(name: string, h: grpc.handleUnaryCall<Buffer, Buffer> | grpc.handleServerStreamingCall<Buffer, Buffer> | grpc.handleBidiStreamingCall<Buffer, Buffer>, type: 'unary' | 'serverStream' | 'bidi'): void {
    const path = methodPath(name);
    this.server.unregister(path); // registering again replaces the handler
    this.server.register(path, h as grpc.handleUnaryCall<Buffer, Buffer>, identity, identity, type);
  }
}

// ---------------------------------------------------------------------------
// Client

const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.keepalive_time_ms': KEEPALIVE_TIME_MS,
  'grpc.keepalive_timeout_ms': KEEPALIVE_TIMEOUT_MS,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.initial_reconnect_backoff_ms': 200,
  'grpc.max_reconnect_backoff_ms': 2000,
  'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
  'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  // Our own connection per channel: channels with other certificates never share one.
  'grpc.use_local_subchannel_pool': 1,
};

class GrpcChannel implements RpcChannel {
  private readonly client: grpc.Client;
  private closed = false;

  constructor(readonly address: string, creds: grpc.ChannelCredentials, serverName: string, tuning: ChannelTuning) {
    const { keepalive, flowControlWindow } = tuning;
    this.client = new grpc.Client(address, creds, {
      ...CHANNEL_OPTIONS, 'grpc.ssl_target_name_override': serverName,
      ...(keepalive ? { 'grpc.keepalive_time_ms': keepalive.timeMs, 'grpc.keepalive_timeout_ms': keepalive.timeoutMs } : {}),
      ...(flowControlWindow ? { 'grpc-node.flow_control_window': flowControlWindow } : {}),
    });
  }

  unary<Req, Res>(m: UnaryMethod<Req, Res>, req: Req, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<Res> {
    if (this.closed) return Promise.reject(new RpcError('unavailable', 'channel closed'));
    if (opts.signal?.aborted) return Promise.reject(new RpcError('unavailable', 'call cancelled'));
    return new Promise<Res>((resolve, reject) => {
      const call = this.client.makeUnaryRequest(methodPath(m.name), identity, identity, encodeMessage(req), new grpc.Metadata(), { deadline: Date.now() + opts.timeoutMs },
        (err, res) => {
          opts.signal?.removeEventListener('abort', onAbort);
          if (err) { reject(cancelledByUs ? new RpcError('unavailable', 'call cancelled') : fromServiceError(err, m.name, this.address)); return; }
          try { resolve(m.response(decodeMessage(res ?? Buffer.alloc(0)))); } catch (e) { reject(new RpcError(isShoalError(e) ? e.kind : 'invalid', `bad answer from ${this.address} to ${m.name}: ${(e as Error).message}`)); }
        });
      let cancelledByUs = false;
      const onAbort = (): void => { cancelledByUs = true; call.cancel(); };
      opts.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  stream<Req, Msg>(m: StreamMethod<Req, Msg>, req: Req, onMessage: (msg: Msg) => void): RpcStream {
    if (this.closed) {
      const done = Promise.reject(new RpcError('unavailable', 'channel closed'));
      done.catch(() => undefined);
      return { done, cancel: () => undefined };
    }
    const call = this.client.makeServerStreamRequest(methodPath(m.name), identity, identity, encodeMessage(req), new grpc.Metadata(), {});
    let settled = false;
    let cancelReason: RpcError | undefined;
    const done = new Promise<void>((resolve, reject) => {
      const finish = (err?: RpcError): void => {
        if (settled) return;
        settled = true;
        if (err) reject(err); else resolve();
      };
      const passOn = isPassedOn(m.message);
      call.on('data', (buf: Buffer) => {
        if (settled || cancelReason) return;
        // The method's check is passedOn(): Msg is a Passed.
        if (passOn) { onMessage(new Passed(buf) as unknown as Msg); return; }
        let msg: Msg;
        try { msg = m.message(decodeMessage(buf)); } catch (e) {
          cancelReason = new RpcError(isShoalError(e) ? e.kind as ErrorKind : 'invalid', `bad message from ${this.address} on ${m.name}: ${(e as Error).message}`);
          call.cancel();
          return;
        }
        onMessage(msg);
      });
      call.on('error', (err: unknown) => finish(cancelReason ?? fromServiceError(err, m.name, this.address)));
      call.on('status', (s: grpc.StatusObject) => { if (s.code === grpc.status.OK) finish(); });
    });
    done.catch(() => undefined); // the caller may only cancel
    this.client.waitForReady(Date.now() + CONNECT_TIMEOUT_MS, (err) => {
      if (err && !settled && !cancelReason) {
        const connecting = this.client.getChannel().getConnectivityState(false) === grpc.connectivityState.CONNECTING;
        cancelReason = new RpcError('unavailable', `connection error: cannot reach ${this.address} within ${CONNECT_TIMEOUT_MS} ms${connecting ? ' (still connecting)' : ''}`, { stillConnecting: connecting });
        call.cancel();
      }
    });
    return {
      done,
      cancel: () => { if (!settled && !cancelReason) { cancelReason = new RpcError('unavailable', 'stream cancelled'); call.cancel(); } },
    };
  }

  pipe<Req, Res>(m: UnaryMethod<Req, Res>): RpcPipe<Req, Res> {
    return new GrpcPipe(this.client, m, this.address, () => this.closed);
  }

  close(): void {
    this.closed = true;
    this.client.close();
  }
}

// The client's end of a pipe (RpcPipe in transport.ts).
class GrpcPipe<Req, Res> implements RpcPipe<Req, Res> {
  private stream?: grpc.ClientDuplexStream<Buffer, Buffer>;
  // The calls sent on `stream` and not yet answered, oldest first.
  private waiting: Array<{ resolve: (res: Res) => void; reject: (err: RpcError) => void; timer: NodeJS.Timeout }> = [];
  private closed = false;

  constructor(private readonly client: grpc.Client, private readonly m: UnaryMethod<Req, Res>, private readonly address: string, private readonly channelClosed: () => boolean) {}

  call(req: Req, opts: { timeoutMs: number }): Promise<Res> {
    if (this.closed || this.channelClosed()) return Promise.reject(new RpcError('unavailable', 'channel closed'));
    let buf: Buffer;
    try { buf = encodeMessage(req); } catch (e) { return Promise.reject(e); } // a value JSON cannot hold fails this call alone
    return new Promise<Res>((resolve, reject) => {
      const call = this.stream ?? this.open();
      const timer = setTimeout(() => this.end(call, new RpcError('unavailable', `deadline exceeded calling ${this.m.name} on ${this.address}`)), opts.timeoutMs);
      this.waiting.push({ resolve, reject, timer });
      call.write(buf);
    });
  }

  close(): void {
    this.closed = true;
    if (this.stream) this.end(this.stream, new RpcError('unavailable', 'call cancelled'));
  }

  private open(): grpc.ClientDuplexStream<Buffer, Buffer> {
    const call = this.client.makeBidiStreamRequest(methodPath(this.m.name), identity, identity, new grpc.Metadata(), {});
    this.stream = call;
    call.on('data', (buf: Buffer) => {
      if (this.stream !== call) return;
      const w = this.waiting.shift();
      if (!w) { this.end(call, new RpcError('internal', `${this.m.name} on ${this.address}: an answer to no call`)); return; }
      clearTimeout(w.timer);
      try { w.resolve(this.m.response(decodeMessage(buf))); } catch (e) {
        const err = new RpcError(isShoalError(e) ? e.kind as ErrorKind : 'invalid', `bad answer from ${this.address} to ${this.m.name}: ${(e as Error).message}`);
        w.reject(err);
        this.end(call, err);
      }
    });
    call.on('error', (err: unknown) => this.end(call, fromServiceError(err, this.m.name, this.address)));
    call.on('status', (st: grpc.StatusObject) => { if (st.code === grpc.status.OK) this.end(call, new RpcError('unavailable', `${this.m.name} on ${this.address}: the pipe ended`)); });
    return call;
  }

  // The stream is over (or given up): the calls still waiting fail with `err`.
  private end(call: grpc.ClientDuplexStream<Buffer, Buffer>, err: RpcError): void {
    if (this.stream !== call) return;
    this.stream = undefined;
    const waiting = this.waiting;
    this.waiting = [];
    for (const w of waiting) { clearTimeout(w.timer); w.reject(err); }
    call.cancel();
  }
}

// A channel that trusts only `caPem`; with a node certificate it is that node
// to the server. `expectNodeId` also requires the server's CN, `expectRole`
// its role (OU): a node dialing a manager should ask for 'manager', so that a
// worker's certificate cannot pose as one.
// `tuning.keepalive`: other than KEEPALIVE_TIME_MS / KEEPALIVE_TIMEOUT_MS
// (`shoal sim`, whose one event loop serves thousands of nodes' connections;
// MANAGER_CHANNEL); `tuning.flowControlWindow`: wider receive windows than
// HTTP/2's 64 KiB (MANAGER_CHANNEL).
export function grpcChannel(address: string, tls: ChannelTls, log?: Logger, tuning: ChannelTuning = {}): RpcChannel {
  if (log) routeGrpcLogs(log);
  const creds = grpc.credentials.createFromSecureContext(
    clientContext(tls),
    {
      // The chain is checked by TLS against caPem; the name is a node ID.
      checkServerIdentity: (_host, cert) => {
        const one = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);
        const cn = one(cert.subject?.CN);
        const ou = one(cert.subject?.OU);
        if (tls.expectNodeId && cn !== tls.expectNodeId) return new Error(`server certificate is for node ${cn}, expected ${tls.expectNodeId}`);
        if (tls.expectRole && ou !== `swarm-${tls.expectRole}`) return new Error(`server certificate is for a ${ou ?? 'node without a role'}, expected swarm-${tls.expectRole}`);
        return undefined;
      },
    },
  );
  return new GrpcChannel(address, creds, tls.expectNodeId ?? DEFAULT_SERVER_NAME, tuning);
}

export interface ChannelTuning { keepalive?: ChannelKeepalive; flowControlWindow?: number }
type ChannelTls = { caPem: string; certPem?: string; keyPem?: string; expectNodeId?: string; expectRole?: 'manager' | 'worker' };

// A context given a CA gets its own copy of node's whole bundled root store
// (milliseconds of CPU each): a node dials again and again with the same
// identity, and `shoal sim` holds thousands, so each identity's context is
// made once. Found by the object a caller keeps (its identity), else by value.
const contextsByObject = new WeakMap<object, { key: string; ctx: SecureContext }>();
const contextsByValue = new Map<string, SecureContext>();
const CONTEXTS_BY_VALUE = 16;
function clientContext(tls: ChannelTls): SecureContext {
  const key = `${tls.caPem}\0${tls.certPem ?? ''}\0${tls.keyPem ?? ''}`;
  const held = contextsByObject.get(tls);
  if (held?.key === key) return held.ctx;
  let ctx = contextsByValue.get(key);
  if (ctx) contextsByValue.delete(key); // moved to the newest end below
  else ctx = createSecureContext({ ca: tls.caPem, ...(tls.certPem && tls.keyPem ? { cert: tls.certPem, key: tls.keyPem } : {}) });
  contextsByValue.set(key, ctx);
  if (contextsByValue.size > CONTEXTS_BY_VALUE) contextsByValue.delete(contextsByValue.keys().next().value!);
  contextsByObject.set(tls, { key, ctx });
  return ctx;
}

// The joiner's first call: it has no CA yet, so the server is not verified
// here; the caller checks the answer against the join token's digest.
const GetRootCA: UnaryMethod<Record<string, never>, { Certificate: string }> = {
  name: 'ca.GetRootCACertificate',
  access: 'anyone',
  request: () => ({}),
  response: (raw) => {
    const c = (raw as { Certificate?: unknown } | null)?.Certificate;
    if (typeof c !== 'string' || c.length > 64 * 1024 || !c.includes('-----BEGIN CERTIFICATE-----')) throw invalid('root CA answer is not a PEM certificate');
    return { Certificate: c };
  },
};

// Made once: each createSsl without roots loads Node's whole bundled root
// store into a new TLS context (85 ms of CPU; 21 s per 250 joins of `shoal sim`).
let untrustedCreds: grpc.ChannelCredentials | undefined;

export async function fetchRootCA(address: string, timeoutMs: number): Promise<string> {
  untrustedCreds ??= grpc.credentials.createSsl(null, null, null, { rejectUnauthorized: false, checkServerIdentity: () => undefined });
  const ch = new GrpcChannel(address, untrustedCreds, DEFAULT_SERVER_NAME, {});
  try {
    return (await ch.unary(GetRootCA, {}, { timeoutMs })).Certificate;
  } finally {
    ch.close();
  }
}
