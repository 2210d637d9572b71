import { request as httpRequest, type Agent, type IncomingMessage, type OutgoingHttpHeaders, type RequestOptions } from 'node:http';
import { ShoalError, unavailable, type ErrorKind } from '../common/errors';
import { engineAgent, parseEngineAddress, type EngineEndpoint } from './address';

// The one client for the host's dockerd: JSON calls and streams over Node's
// http, on a unix socket or tcp. Every call has a deadline; a stream's
// deadline covers its answer's headers, after which it lasts as long as the
// caller needs (events, logs -f, pull progress).

// The Engine API version Shoal speaks to dockerd (paths without a /vN.NN
// prefix are pinned to it).
export const ENGINE_API_VERSION = '1.41';

// Shoal's own engine calls are short (/info, the start of an event stream):
// an engine that accepts but does not answer must not hold a request forever.
export const ENGINE_TIMEOUT_MS = 30_000;

const STATUS_KIND: Record<number, ErrorKind> = { 400: 'invalid', 404: 'not_found', 409: 'conflict', 503: 'unavailable' };

// An engine answer that was not 2xx, carried with the engine's own message so
// that the API edge can relay it (the status maps back through http-errors.ts)
// and the executor can tell a refusal (the task fails) from a hiccup.
export class EngineError extends ShoalError {
  constructor(readonly status: number, message: string) {
    super(STATUS_KIND[status] ?? 'internal', message);
    this.name = 'EngineError';
  }
}

// The engine accepted the request and gave no answer within the deadline.
export class EngineTimeoutError extends ShoalError {
  constructor(readonly ms: number) {
    super('unavailable', `no answer within ${ms} ms`);
    this.name = 'EngineTimeoutError';
  }
}

export function engineUnreachable(address: string, err: Error): ShoalError {
  return unavailable(`Cannot connect to the Docker engine at ${address}: ${err.message}`);
}

export interface CallOptions {
  body?: unknown;                 // sent as JSON
  rawBody?: Buffer | string;      // sent as is (with its own Content-Type header)
  query?: Record<string, string | undefined>;
  headers?: OutgoingHttpHeaders;
  timeoutMs?: number;             // this call's deadline instead of the client's
  signal?: AbortSignal;           // the caller gives up (the request is destroyed)
}

export interface EngineAnswer {
  status: number;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

export class EngineClient {
  readonly endpoint: EngineEndpoint;
  readonly agent: Agent;
  private readonly timeoutMs: number;

  constructor(readonly address: string, agent?: Agent, opts: { timeoutMs?: number } = {}) {
    this.endpoint = parseEngineAddress(address);
    this.agent = agent ?? engineAgent();
    this.timeoutMs = opts.timeoutMs ?? ENGINE_TIMEOUT_MS;
  }

  requestOptions(method: string, path: string, headers: OutgoingHttpHeaders = {}): RequestOptions {
    return { ...this.endpoint, agent: this.agent, method, path: /^\/v\d+\.\d+\//.test(path) ? path : `/v${ENGINE_API_VERSION}${path}`, headers };
  }

  // Opens a request and resolves with the response once its headers arrive
  // (within the deadline), whatever the status; the caller consumes or
  // destroys it.
  stream(method: string, path: string, opts: CallOptions = {}): Promise<IncomingMessage> {
    const ms = opts.timeoutMs ?? this.timeoutMs;
    return new Promise((resolve, reject) => {
      const headers: OutgoingHttpHeaders = { ...opts.headers };
      let body = opts.rawBody;
      if (opts.body !== undefined) {
        body = JSON.stringify(opts.body);
        headers['Content-Type'] = 'application/json';
      }
      if (body !== undefined) headers['Content-Length'] = Buffer.byteLength(body);
      const req = httpRequest({ ...this.requestOptions(method, withQuery(path, opts.query), headers), signal: opts.signal });
      const timer = setTimeout(() => req.destroy(new EngineTimeoutError(ms)), ms);
      req.on('response', (res) => { clearTimeout(timer); resolve(res); });
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(err instanceof EngineTimeoutError || err.name === 'AbortError' ? err : engineUnreachable(this.address, err));
      });
      req.end(body);
    });
  }

  // One whole exchange, answer body included, within the deadline.
  async request(method: string, path: string, opts: CallOptions = {}): Promise<EngineAnswer> {
    const ms = opts.timeoutMs ?? this.timeoutMs;
    const started = Date.now();
    const res = await this.stream(method, path, opts);
    const timer = setTimeout(() => res.destroy(new EngineTimeoutError(ms)), Math.max(0, ms - (Date.now() - started)));
    const chunks: Buffer[] = [];
    try {
      for await (const c of res) chunks.push(c as Buffer);
    } catch (err) {
      if (err instanceof EngineTimeoutError || (err as Error).name === 'AbortError') throw err;
      throw engineUnreachable(this.address, err as Error);
    } finally {
      clearTimeout(timer);
    }
    return { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) };
  }

  // A JSON call: the decoded answer, or an EngineError with the engine's message.
  async call<T>(method: string, path: string, opts: CallOptions = {}): Promise<T> {
    return decodeAnswer<T>(await this.request(method, path, opts));
  }

  getJson<T>(path: string, opts: CallOptions = {}): Promise<T> {
    return this.call<T>('GET', path, opts);
  }

  postJson<T>(path: string, body?: unknown, opts: CallOptions = {}): Promise<T> {
    return this.call<T>('POST', path, { ...opts, body });
  }

  close(): void { this.agent.destroy(); }
}

function withQuery(path: string, query: CallOptions['query']): string {
  if (!query) return path;
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined) q.set(k, v);
  const s = q.toString();
  return s ? `${path}${path.includes('?') ? '&' : '?'}${s}` : path;
}

// The engine's message from a non-2xx answer ({"message": …} or plain text).
export function engineMessage(status: number, body: Buffer): string {
  const text = body.toString('utf8').trim();
  try {
    const m = (JSON.parse(text) as { message?: unknown }).message;
    if (typeof m === 'string' && m) return m;
  } catch { /* not JSON: keep the text */ }
  return text || `engine answered ${status}`;
}

export function decodeAnswer<T>(r: { status: number; body: Buffer }): T {
  if (r.status < 200 || r.status >= 300) throw new EngineError(r.status, engineMessage(r.status, r.body));
  const text = r.body.toString('utf8');
  if (!text.trim()) return undefined as T;
  return JSON.parse(text) as T;
}

// Answers that stream until the engine is done (pull and import progress,
// events, logs): a non-2xx status is read whole and thrown as an EngineError.
export async function expectOk(res: IncomingMessage): Promise<IncomingMessage> {
  const status = res.statusCode ?? 0;
  if (status >= 200 && status < 300) return res;
  const chunks: Buffer[] = [];
  try { for await (const c of res) chunks.push(c as Buffer); } catch { /* what arrived is the message */ }
  throw new EngineError(status, engineMessage(status, Buffer.concat(chunks)));
}
