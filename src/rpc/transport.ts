// The node-to-node channel as the rest of Shoal sees it: typed methods with a
// check for every message that arrives, unary calls with a deadline, server
// streams, and pipes (unary calls on one stream). The real transport is
// mutually authenticated TLS on the node's advertise address (grpc.ts); tests
// use the in-memory one (memory.ts), which applies the same access rules and
// the same JSON round trip.
//
// Messages are plain JSON values (bytes as base64 strings): whatever is sent
// is what `JSON.parse(JSON.stringify(msg))` gives, and every message is
// checked where it enters (`request` on the server, `response`/`message` on
// the client; one passed on unread, `Passed`, where it is read at last). A
// message that fails its check fails that call alone (on a pipe, that call
// and the pipe's stream).
import { invalid, ShoalError, type ErrorKind } from '../common/errors';

export type NodeRole = 'manager' | 'worker';

// Who called, from the client certificate the transport verified against the
// swarm's CA: CN = node ID, OU = role, O = cluster ID.
export interface Peer {
  nodeId: string;
  role: NodeRole;
  clusterId: string;
  address: string; // the caller's IP as seen by this node
}

// Who may call a method:
//  'anyone'  - no certificate needed (fetching the CA, joining with a token);
//  'node'    - any node of this cluster (a valid certificate, either role);
//  'manager' - a manager's certificate only (a worker's is refused).
export type Access = 'anyone' | 'node' | 'manager';

// Checks a message that came from outside; throws `invalid(...)` on a bad one.
export type Check<T> = (raw: unknown) => T;

export interface UnaryMethod<Req, Res> {
  name: string; // 'component.Verb', e.g. 'dispatcher.Heartbeat'
  access: Access;
  request: Check<Req>;
  response: Check<Res>;
}

export interface StreamMethod<Req, Msg> {
  name: string;
  access: Access;
  request: Check<Req>;
  message: Check<Msg>;
}

// A message as it crosses the wire, for every transport: UTF-8 JSON.
export const encodeMessage = (v: unknown): Buffer => Buffer.from(JSON.stringify(v ?? null), 'utf8');
export function decodeMessage(buf: Buffer): unknown {
  try { return JSON.parse(buf.toString('utf8')); } catch { throw invalid('message is not JSON'); }
}

// A stream's message handed on as it came, unread: a manager relaying a
// node's session passes the leader's messages to the node as bytes (the
// node checks each where it enters). Reading, checking and writing them
// again took a relaying follower about 6 % of its busy time in a 1,000-node
// create (its profile: decode, checkSessionMessage, encode). A method whose
// `message` is `passedOn()` gets these; a server stream's `send` takes one
// in place of a message and writes its bytes unchanged.
export class Passed<T> {
  declare private readonly of?: T; // what the bytes hold, for the types only
  constructor(readonly bytes: Buffer) {}
}
const PASS_ON: unique symbol = Symbol('pass on');
// The check of such a method. A transport that does not know the mark
// (it decoded the message) gets the same bytes back from the value.
export function passedOn<T>(): Check<Passed<T>> {
  const check = (raw: unknown): Passed<T> => new Passed<T>(encodeMessage(raw));
  return Object.assign(check, { [PASS_ON]: true as const });
}
export const isPassedOn = (check: Check<unknown>): boolean => (check as { [PASS_ON]?: true })[PASS_ON] === true;

export interface CallContext {
  peer?: Peer; // absent only for 'anyone' methods called without a certificate
  // The caller's IP as this node sees it, certificate or not (a joining node
  // has none yet; its address is where the manager reaches it).
  remoteAddress?: string;
  // Aborted when the caller goes away, cancels, or its deadline passes.
  signal: AbortSignal;
}

// Server side: the methods a node serves to other nodes.
export interface RpcServer {
  unary<Req, Res>(m: UnaryMethod<Req, Res>, handler: (req: Req, ctx: CallContext) => Promise<Res>): void;
  // A server stream: `send` any number of messages; the stream ends cleanly
  // when the handler's promise resolves, with the error when it rejects, and
  // the handler should return once `ctx.signal` is aborted.
  stream<Req, Msg>(m: StreamMethod<Req, Msg>, handler: (req: Req, ctx: CallContext, send: (msg: Msg | Passed<Msg>) => void) => Promise<void>): void;
  // A pipe (RpcPipe): the handler answers each call of the stream in turn,
  // as it would a unary call. Its error ends the pipe and fails that call.
  pipe<Req, Res>(m: UnaryMethod<Req, Res>, handler: (req: Req, ctx: CallContext) => Promise<Res>): void;
}

// Client side: a channel to one remote node.
export interface RpcChannel {
  readonly address: string; // host:port
  unary<Req, Res>(m: UnaryMethod<Req, Res>, req: Req, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<Res>;
  stream<Req, Msg>(m: StreamMethod<Req, Msg>, req: Req, onMessage: (msg: Msg) => void): RpcStream;
  pipe<Req, Res>(m: UnaryMethod<Req, Res>): RpcPipe<Req, Res>;
  close(): void;
}

// How a channel finds that its peer is gone: an HTTP/2 ping every timeMs
// while connected; none answered within timeoutMs closes the connection
// (its calls and streams fail as 'unavailable').
export interface ChannelKeepalive { timeMs: number; timeoutMs: number }

// Unary calls of one method carried one after another on one long-lived
// stream: each request is answered in turn, without the new HTTP/2 stream,
// headers, deadline and trailers a unary call costs. For the small calls
// every node makes all the time (heartbeats: 1,000 a second at 5,000 nodes).
// A call on an open pipe takes a fifth of a unary call's CPU, client and
// server together (bench/pipe.ts, mutual TLS: 91 µs against 458 µs).
// The stream is opened by the first call and again after it ends; a call's
// timeout, a lost connection or the handler's error end it (failing the
// calls still waiting), so an answer can never be taken for another call's.
export interface RpcPipe<Req, Res> {
  call(req: Req, opts: { timeoutMs: number }): Promise<Res>;
  close(): void;
}

export interface RpcStream {
  // Settles when the stream ends: resolves on a clean end, rejects with the
  // error (an RpcError of kind 'unavailable' when the connection is lost).
  done: Promise<void>;
  cancel(): void;
}

// Errors cross the wire with their kind and message, so a ShoalError raised
// by a handler on a manager is the same ShoalError for the caller (and so
// reaches the docker CLI with Docker's text). Transport failures (no route,
// TLS refused, deadline) are 'unavailable'; a refused certificate or role is
// 'permission'.
export type RpcErrorKind = ErrorKind | 'permission';

export class RpcError extends ShoalError {
  // `answered`: the peer's handler said it, so the connection to the peer
  // works (a caller may keep it); false for transport failures and deadlines.
  readonly answered: boolean;
  // `stillConnecting`: the call gave up waiting for a connection that was
  // still being set up (TCP or TLS under way), not one that failed: the
  // caller may keep the channel and come back to it, rather than throw the
  // handshake away and start another (see agent/remote-control-plane.ts).
  readonly stillConnecting: boolean;
  constructor(readonly rpcKind: RpcErrorKind, message: string, options?: { cause?: unknown; answered?: boolean; stillConnecting?: boolean }) {
    super(rpcKind === 'permission' ? 'invalid' : rpcKind, message, options);
    this.name = 'RpcError';
    this.answered = options?.answered ?? false;
    this.stillConnecting = options?.stillConnecting ?? false;
  }
}

// The peer answered with this error (see RpcError.answered).
export const answeredByPeer = (err: unknown): boolean => err instanceof RpcError && err.answered;
// The connection was still being set up when the call gave up (see RpcError.stillConnecting).
export const stillConnecting = (err: unknown): boolean => err instanceof RpcError && err.stillConnecting;

// The one access rule, shared by every transport.
export function accessAllowed(access: Access, peer: Peer | undefined, clusterId: string | undefined): boolean {
  if (access === 'anyone') return true;
  if (!peer || clusterId === undefined || peer.clusterId !== clusterId) return false;
  return access === 'node' || peer.role === 'manager';
}
