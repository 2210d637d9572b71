import { request as httpRequest, type Agent, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { EngineForwarder } from './server';
import { engineAgent, parseEngineAddress, type EngineEndpoint } from '../engine/address';

// Hop-by-hop headers (RFC 9110 §7.6.1) belong to one connection, not to the
// request; Node frames each side itself. Expect is answered by our server.
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade',
  'proxy-authorization', 'proxy-authenticate', 'expect',
]);

// rawHeaders minus hop-by-hop ones (and those named by Connection), keeping
// order, case and duplicates, as a flat [name, value, ...] list.
export function endToEndHeaders(raw: string[]): string[] {
  const drop = new Set(HOP_BY_HOP);
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() === 'connection') for (const t of raw[i + 1]!.split(',')) drop.add(t.trim().toLowerCase());
  }
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (!drop.has(raw[i]!.toLowerCase())) out.push(raw[i]!, raw[i + 1]!);
  return out;
}

// Node adds no Host of its own to a raw header list, and dockerd (Go)
// refuses an HTTP/1.1 request without one; an HTTP/1.0 client may omit it.
function withHost(headers: string[]): string[] {
  for (let i = 0; i < headers.length; i += 2) if (headers[i]!.toLowerCase() === 'host') return headers;
  return [...headers, 'Host', 'docker'];
}

// Forwarded calls may stream for hours (logs -f, attach); only reaching the
// engine is bounded.
export const ENGINE_CONNECT_TIMEOUT_MS = 10_000;

function connectTimeout(socket: Socket, onTimeout: () => void, ms: number): void {
  if (!socket.connecting) return;
  const timer = setTimeout(onTimeout, ms);
  socket.once('connect', () => clearTimeout(timer));
  socket.once('close', () => clearTimeout(timer));
}

function badGateway(address: string, err: Error): string {
  return JSON.stringify({ message: `Cannot connect to the Docker engine at ${address}: ${err.message}` }) + '\n';
}

// Everything Shoal does not own goes to the host's dockerd byte for byte:
// the URL (with its /v1.41 prefix), the body and the answer are streamed, never
// buffered, so logs -f, events, pull progress, build contexts and cp/export
// flow as they would against dockerd itself.
export class EngineProxy implements EngineForwarder {
  private readonly endpoint: EngineEndpoint;
  private readonly agent: Agent;
  // Hijacked connections in progress, so close() can end them: server.close()
  // does not (they are no longer HTTP connections) and would wait for them.
  private readonly hijacked = new Set<Duplex>();

  private readonly connectTimeoutMs: number;

  constructor(readonly address: string, agent?: Agent, opts: { connectTimeoutMs?: number } = {}) {
    this.endpoint = parseEngineAddress(address);
    this.agent = agent ?? engineAgent();
    this.connectTimeoutMs = opts.connectTimeoutMs ?? ENGINE_CONNECT_TIMEOUT_MS;
  }

  forward(req: IncomingMessage, res: ServerResponse): void {
    const upstream = httpRequest({
      ...this.endpoint,
      agent: this.agent,
      method: req.method,
      path: req.url,
      headers: withHost(endToEndHeaders(req.rawHeaders)),
      // keep-alive on the engine side is the agent's business
    });
    upstream.setNoDelay?.(true);
    upstream.on('socket', (s: Socket) => connectTimeout(s, () => upstream.destroy(new Error(`no connection within ${this.connectTimeoutMs} ms`)), this.connectTimeoutMs));
    let done = false;

    upstream.on('response', (up) => {
      // The engine's headers override those server.ts set (same Docker
      // headers anyway); repeated ones (Set-Cookie…) stay repeated.
      const raw = endToEndHeaders(up.rawHeaders);
      const grouped = new Map<string, { name: string; values: string[] }>();
      for (let i = 0; i < raw.length; i += 2) {
        const key = raw[i]!.toLowerCase();
        const g = grouped.get(key) ?? { name: raw[i]!, values: [] };
        g.values.push(raw[i + 1]!);
        grouped.set(key, g);
      }
      for (const { name, values } of grouped.values()) res.setHeader(name, values.length === 1 ? values[0]! : values);
      res.writeHead(up.statusCode ?? 502, up.statusMessage);
      // Send the status line now: a stream (events, logs -f) may stay silent for long.
      res.flushHeaders();
      up.on('end', () => { done = true; });
      up.pipe(res);
      // The engine died mid-answer: cut the client off too, so it sees a
      // truncated stream rather than a clean end.
      up.on('error', () => res.destroy());
    });

    upstream.on('error', (err) => {
      if (done) return;
      if (!res.headersSent) {
        const body = badGateway(this.address, err);
        res.writeHead(502, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
        res.end(body);
      } else {
        res.destroy();
      }
      req.resume(); // drain what the client still sends
    });

    // The client went away before the answer was complete: abort the engine
    // side, which ends its logs -f / events / attach work.
    res.on('close', () => { if (!res.writableFinished && !done) upstream.destroy(); });
    req.on('error', () => upstream.destroy());

    // The body streams while the answer may already be streaming back (the
    // engine's old non-upgrade attach); headers go out at once so the engine
    // can start answering before the body ends.
    upstream.flushHeaders();
    req.pipe(upstream);
  }

  // Hijacked connections (attach, exec start, docker run -i/-t): re-send the
  // request head on a raw connection to the engine, then the socket carries
  // raw bytes both ways. Each direction ends on its own (half-close), so
  // `docker run -i` sees the output that follows the end of its stdin.
  forwardUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const ep = this.endpoint;
    const engine: Socket = connect('socketPath' in ep
      ? { path: ep.socketPath, allowHalfOpen: true }
      : { host: ep.host, port: ep.port, allowHalfOpen: true });
    engine.setNoDelay(true);
    connectTimeout(engine, () => engine.destroy(new Error(`no connection within ${this.connectTimeoutMs} ms`)), this.connectTimeoutMs);
    (socket as Partial<Socket>).setNoDelay?.(true);
    let connected = false;
    this.hijacked.add(socket);
    socket.once('close', () => this.hijacked.delete(socket));

    const lines = [`${req.method} ${req.url} HTTP/${req.httpVersion}`];
    for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
    engine.write(lines.join('\r\n') + '\r\n\r\n');
    if (head.length) engine.write(head);

    engine.once('connect', () => { connected = true; });
    engine.pipe(socket); // engine EOF → end() on the client's side only
    socket.pipe(engine); // client EOF (stdin closed) → end() towards the engine

    engine.on('error', (err) => {
      if (!connected && socket.writable) {
        const body = badGateway(this.address, err);
        socket.end(`HTTP/1.1 502 Bad Gateway\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
      } else {
        socket.destroy();
      }
    });
    socket.on('error', () => engine.destroy());
    // Fully closed on one side: finish the other once what is queued is sent.
    engine.on('close', () => { if (!socket.destroyed) { socket.unpipe?.(engine); socket.end(() => socket.destroy()); } });
    socket.on('close', () => { if (!engine.destroyed) engine.destroy(); });
  }

  // Ends everything in flight (forwarded requests and hijacked streams).
  close(): void {
    for (const s of this.hijacked) s.destroy();
    this.hijacked.clear();
    this.agent.destroy();
  }
}
