import { createServer, ServerResponse, type IncomingMessage, type Server } from 'node:http';
import { createServer as createTlsServer, type ServerOptions as TlsServerOptions } from 'node:https';
import type { Socket } from 'node:net';
import { PassThrough, type Duplex, type Readable } from 'node:stream';
import { invalid, isShoalError, notFound } from '../common/errors';
import type { Logger } from '../common/log';
import { daemonHeaders } from './headers';
import { writeError, writeJson } from './http-errors';
import { MAX_BODY, bodyTooLarge, readJsonBody, type Router } from './router';
import { isOwnedTarget, parseTarget, type RequestTarget } from './target';

// Forwards what Shoal does not own to the host's dockerd (api/proxy.ts).
// req.url is the origin-form target by then.
export interface EngineForwarder {
  forward(req: IncomingMessage, res: ServerResponse): void;
  forwardUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
}

export interface ApiServerOptions {
  router: Router;
  engine: EngineForwarder;
  engineVersion: () => string;
  log: Logger;
  tls?: TlsServerOptions; // HTTPS (tcp listeners with --tls/--tlsverify)
}

// After an early answer (a body over the limit), what the client still sends
// is read and dropped so that closing does not reset the connection under the
// answer; bounded, since nobody needs the rest.
const DRAIN_MAX_BYTES = 64 * 1024 * 1024;
const DRAIN_MAX_MS = 10_000;

export const pageNotFound = (): Error => notFound('page not found');

// What to do with a request: Shoal's route, Shoal's 404 for an owned path no
// route matches, or dockerd. Throws (400) for targets that do not fit the API.
type Decision =
  | { kind: 'route'; target: RequestTarget; found: NonNullable<ReturnType<Router['find']>> }
  | { kind: 'owned'; target: RequestTarget }
  | { kind: 'forward'; target: RequestTarget };

function decide(router: Router, method: string, url: string): Decision {
  const target = parseTarget(url);
  const found = router.find(method, target.path);
  if (found) return { kind: 'route', target, found };
  if (isOwnedTarget(target) || router.owns(target.canonical) || router.owns(target.path)) return { kind: 'owned', target };
  return { kind: 'forward', target };
}

function isClientError(err: unknown): boolean {
  return isShoalError(err) && err.kind !== 'internal';
}

// The request handler, usable without a socket (tests drive it with light-my-request).
export function createApiHandler(opts: ApiServerOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const serve = createServe(opts);
  return (req, res) => { serve(req, res, req); };
}

// Serves one request whose body comes from `body` (the request itself, or
// what follows the head of an upgrade request). Never throws; every failure
// is an answer (or, once an answer has started, a cut connection).
function createServe(opts: ApiServerOptions): (req: IncomingMessage, res: ServerResponse, body: Readable) => 'forwarded' | 'answered' {
  const fail = (req: IncomingMessage, res: ServerResponse, err: unknown): void => {
    if (!isClientError(err)) opts.log.error({ err, method: req.method, url: req.url }, 'request failed');
    if (res.headersSent) { res.destroy(); return; }
    writeError(res, err);
  };

  return (req, res, body) => {
    req.on('error', () => undefined); // a client going away mid-body is not our error
    res.on('error', () => undefined);
    const method = req.method ?? 'GET';
    try {
      for (const [k, v] of Object.entries(daemonHeaders(opts.engineVersion()))) res.setHeader(k, v);
      const d = decide(opts.router, method, req.url ?? '/');
      if (d.kind === 'owned') { writeError(res, pageNotFound()); return 'answered'; }
      if (d.kind === 'forward') { req.url = d.target.origin; opts.engine.forward(req, res); return 'forwarded'; }
      const { target, found } = d;
      const apiReq = {
        method,
        path: target.path,
        params: found.params,
        query: target.query,
        headers: req.headers,
        raw: req,
        json: <T>() => readJsonBody<T>(body, req.headers['content-length']),
      };
      Promise.resolve().then(() => found.handler(apiReq, res)).then((result) => {
        if (!result) return; // the handler wrote the response itself
        if (result.body === undefined) {
          res.writeHead(result.status, { 'Content-Length': '0' });
          res.end();
        } else if (typeof result.body === 'string' && result.status === 200 && target.path === '/_ping') {
          res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(result.body) });
          res.end(method === 'HEAD' ? undefined : result.body);
        } else {
          writeJson(res, result.status, result.body);
        }
      }).catch((err: unknown) => fail(req, res, err));
    } catch (err) {
      fail(req, res, err);
    }
    return 'answered';
  };
}

// Drops what is left of a request body after its answer, within bounds, then
// lets the connection go on (keep-alive) or cuts it.
function drainAfterAnswer(req: IncomingMessage, res: ServerResponse): void {
  res.once('finish', () => {
    if (req.complete || req.destroyed) return;
    let seen = 0;
    const timer = setTimeout(() => req.socket?.destroy(), DRAIN_MAX_MS);
    timer.unref();
    req.on('data', (c: Buffer) => { seen += c.length; if (seen > DRAIN_MAX_BYTES) req.socket?.destroy(); });
    req.once('end', () => clearTimeout(timer));
    req.once('close', () => clearTimeout(timer));
    req.resume();
  });
}

// The body of an upgrade request (Node stops parsing at its head): the
// Content-Length bytes that follow it on the socket. Chunked bodies are not
// accepted there.
function upgradeBody(req: IncomingMessage, socket: Duplex, head: Buffer): Readable {
  if (req.headers['transfer-encoding']) throw invalid('a chunked body is not accepted on an upgrade request to this endpoint');
  const length = Number(req.headers['content-length'] ?? 0);
  if (!Number.isSafeInteger(length) || length < 0) throw invalid('invalid Content-Length');
  if (length > MAX_BODY) throw bodyTooLarge();
  const out = new PassThrough();
  let left = length;
  const take = (c: Buffer): void => {
    const part = c.subarray(0, left);
    left -= part.length;
    out.write(part);
    if (left === 0) { socket.off('data', take); out.end(); }
  };
  if (left === 0) out.end();
  else {
    if (head.length) take(head);
    if (left > 0) socket.on('data', take);
  }
  return out;
}

function rawError(socket: Duplex, status: number, reason: string, message: string): void {
  if (!socket.writable) { socket.destroy(); return; }
  const body = JSON.stringify({ message }) + '\n';
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

export function createApiServer(opts: ApiServerOptions): Server {
  const serve = createServe(opts);
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    // A forwarded body is the engine's business, however long it streams.
    if (serve(req, res, req) === 'answered') drainAfterAnswer(req, res);
  };
  const server: Server = opts.tls ? createTlsServer(opts.tls, handle) : createServer(handle);

  // Hijacked streams (attach, exec start, docker run -it) arrive as upgrades
  // and go to the engine as raw byte pipes. An upgrade to one of Shoal's own
  // paths is answered by Shoal's route like any request.
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => undefined);
    try {
      const d = decide(opts.router, req.method ?? 'GET', req.url ?? '/');
      if (d.kind === 'forward') {
        req.url = d.target.origin;
        opts.engine.forwardUpgrade(req, socket, head);
        return;
      }
      const res = new ServerResponse(req);
      res.shouldKeepAlive = false;
      res.assignSocket(socket as Socket);
      res.once('finish', () => socket.end());
      res.once('close', () => socket.destroy());
      serve(req, res, upgradeBody(req, socket, head));
    } catch (err) {
      if (!isClientError(err)) opts.log.error({ err, method: req.method, url: req.url }, 'upgrade request failed');
      rawError(socket, isClientError(err) ? 400 : 500, isClientError(err) ? 'Bad Request' : 'Internal Server Error', (err as Error).message);
    }
  });

  // CONNECT is no Docker API call.
  server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
    socket.on('error', () => undefined);
    rawError(socket, 400, 'Bad Request', 'CONNECT is not supported');
  });

  // Requests Node's parser refuses (bad characters, oversized heads) get
  // Docker's JSON error rather than a bare status line.
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (err.code === 'ECONNRESET' || !socket.writable) { socket.destroy(); return; }
    if (err.code === 'HPE_HEADER_OVERFLOW') rawError(socket, 431, 'Request Header Fields Too Large', 'request header fields too large');
    else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') rawError(socket, 408, 'Request Timeout', 'request timeout');
    else rawError(socket, 400, 'Bad Request', `bad request: ${err.message}`);
  });

  server.keepAliveTimeout = 65_000;
  server.requestTimeout = 0; // logs -f, events and attach streams stay open
  server.headersTimeout = 60_000;
  return server;
}
