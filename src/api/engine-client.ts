import { Agent, request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders, type RequestOptions } from 'node:http';
import { ShoalError, invalid, unavailable, type ErrorKind } from '../common/errors';
import { API_VERSION } from './headers';

// Where the host's dockerd listens: unix:///var/run/docker.sock or tcp://host:port
// (http:// is accepted as a synonym of tcp://).
export type EngineEndpoint = { socketPath: string } | { host: string; port: number };

export function parseEngineAddress(address: string): EngineEndpoint {
  if (address.startsWith('unix://')) {
    const socketPath = address.slice('unix://'.length);
    if (!socketPath) throw invalid(`invalid engine address ${address}`);
    return { socketPath };
  }
  const m = /^(?:tcp|http):\/\/(\[[^\]]+\]|[^:/]+):(\d+)\/?$/.exec(address);
  if (!m) throw invalid(`invalid engine address ${address}: use unix:///path or tcp://host:port`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}

// A keep-alive agent with no socket limit: long-lived streams (logs -f,
// events) must never queue the short requests behind them.
export function engineAgent(): Agent {
  return new Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 16 });
}

const STATUS_KIND: Record<number, ErrorKind> = { 400: 'invalid', 404: 'not_found', 409: 'conflict', 503: 'unavailable' };

// An engine answer that was not 2xx, carried with the engine's own message so
// that the API edge can relay it (the status maps back through http-errors.ts).
export class EngineError extends ShoalError {
  constructor(readonly status: number, message: string) {
    super(STATUS_KIND[status] ?? 'internal', message);
    this.name = 'EngineError';
  }
}

export function engineUnreachable(address: string, err: Error): ShoalError {
  return unavailable(`Cannot connect to the Docker engine at ${address}: ${err.message}`);
}

// Shoal's own engine calls are short (/info, the start of an event stream):
// an engine that accepts but does not answer must not hold a request forever.
export const ENGINE_TIMEOUT_MS = 30_000;

class EngineTimeout extends Error {
  constructor(ms: number) { super(`no answer within ${ms} ms`); }
}

// A tiny typed JSON client for the host's dockerd, for the few calls Shoal
// makes itself (/info, and streams for the event merger). Paths without a
// /vN.NN prefix are pinned to the API version Shoal speaks.
export class EngineClient {
  private readonly endpoint: EngineEndpoint;
  readonly agent: Agent;

  private readonly timeoutMs: number;

  constructor(readonly address: string, agent?: Agent, opts: { timeoutMs?: number } = {}) {
    this.endpoint = parseEngineAddress(address);
    this.agent = agent ?? engineAgent();
    this.timeoutMs = opts.timeoutMs ?? ENGINE_TIMEOUT_MS;
  }

  requestOptions(method: string, path: string, headers: OutgoingHttpHeaders = {}): RequestOptions {
    return { ...this.endpoint, agent: this.agent, method, path: /^\/v\d+\.\d+\//.test(path) ? path : `/v${API_VERSION}${path}`, headers };
  }

  // Opens a request and resolves with the response once its headers arrive
  // (within the time-out), whatever the status; the caller consumes or
  // destroys it, and the stream itself may then last as long as it needs.
  stream(method: string, path: string, opts: { body?: Buffer | string; headers?: OutgoingHttpHeaders; signal?: AbortSignal } = {}): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const headers: OutgoingHttpHeaders = { ...opts.headers };
      if (opts.body !== undefined) headers['Content-Length'] = Buffer.byteLength(opts.body);
      const req = httpRequest({ ...this.requestOptions(method, path, headers), signal: opts.signal });
      const timer = setTimeout(() => req.destroy(new EngineTimeout(this.timeoutMs)), this.timeoutMs);
      req.on('response', (res) => { clearTimeout(timer); resolve(res); });
      req.on('error', (err) => { clearTimeout(timer); reject(err.name === 'AbortError' ? err : engineUnreachable(this.address, err)); });
      req.end(opts.body);
    });
  }

  // One whole exchange, answer body included, within the time-out.
  async request(method: string, path: string, body?: unknown): Promise<{ status: number; headers: IncomingMessage['headers']; body: Buffer }> {
    const started = Date.now();
    const text = body === undefined ? undefined : JSON.stringify(body);
    const res = await this.stream(method, path, { body: text, headers: text === undefined ? {} : { 'Content-Type': 'application/json' } });
    const timer = setTimeout(() => res.destroy(new EngineTimeout(this.timeoutMs)), Math.max(0, this.timeoutMs - (Date.now() - started)));
    const chunks: Buffer[] = [];
    try {
      for await (const c of res) chunks.push(c as Buffer);
    } catch (err) {
      throw engineUnreachable(this.address, err as Error);
    } finally {
      clearTimeout(timer);
    }
    return { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) };
  }

  async getJson<T>(path: string): Promise<T> {
    return decode<T>(await this.request('GET', path));
  }

  async postJson<T>(path: string, body?: unknown): Promise<T> {
    return decode<T>(await this.request('POST', path, body));
  }

  close(): void { this.agent.destroy(); }
}

function decode<T>(r: { status: number; body: Buffer }): T {
  const text = r.body.toString('utf8');
  if (r.status < 200 || r.status >= 300) {
    let message = text.trim();
    try { message = (JSON.parse(text) as { message?: string }).message ?? message; } catch { /* not JSON: keep the text */ }
    throw new EngineError(r.status, message || `engine answered ${r.status}`);
  }
  if (!text.trim()) return undefined as T;
  return JSON.parse(text) as T;
}
