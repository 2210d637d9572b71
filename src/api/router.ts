import type { IncomingMessage, ServerResponse } from 'node:http';
import FindMyWay from 'find-my-way';
import { invalid } from '../common/errors';

// What a Shoal-owned endpoint sees: the path without its /v1.NN prefix, the
// path parameters, the query, and the body parsed as JSON on demand.
export interface ApiRequest {
  method: string;
  path: string;
  params: Record<string, string>;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  raw: IncomingMessage;
  json<T = unknown>(): Promise<T>;
}

// A handler returns what to send, or writes `res` itself (streams) and returns undefined.
export type ApiResult = { status: number; body?: unknown } | undefined;
export type Handler = (req: ApiRequest, res: ServerResponse) => Promise<ApiResult>;

export type Method = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE';

export class Router {
  private readonly fmw = FindMyWay({ ignoreTrailingSlash: true, caseSensitive: true });
  private readonly table: Array<{ method: Method; path: string }> = [];

  on(method: Method | Method[], path: string, handler: Handler): this {
    this.fmw.on(method, path, handler as never);
    for (const m of Array.isArray(method) ? method : [method]) this.table.push({ method: m, path });
    return this;
  }

  find(method: string, path: string): { handler: Handler; params: Record<string, string> } | undefined {
    const found = this.fmw.find(method as Method, path);
    if (!found) return undefined;
    return { handler: found.handler as unknown as Handler, params: found.params as Record<string, string> };
  }

  // Whether some method of this path is Shoal's: then no method of it is forwarded.
  owns(path: string): boolean {
    return METHODS.some((m) => this.fmw.find(m, path) !== null);
  }

  // Every registered (method, path pattern), for tests that must cover them all.
  routes(): ReadonlyArray<{ method: Method; path: string }> { return this.table; }
}

const METHODS: Method[] = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE'];

// Shoal's own bodies are small JSON specs (Docker caps secret and config data
// at 500 KiB); forwarded bodies (build contexts, image loads) stream to the
// engine unbounded and never pass here.
export const MAX_BODY = 4 * 1024 * 1024;

// A client that stops sending mid-body must not hold a request open forever
// (the server has no overall request time-out: streams stay open for hours).
export const BODY_TIMEOUT_MS = 60_000;

export const bodyTooLarge = (): Error => invalid(`request body too large: the limit is ${MAX_BODY / (1024 * 1024)} MiB`);

// Reads a JSON body. Over the limit it stops keeping data but neither destroys
// the stream nor stops reading: the connection must survive until the 400 is
// sent (server.ts drains what follows, within bounds).
export function readJsonBody<T>(body: NodeJS.ReadableStream, declaredLength?: string, timeoutMs = BODY_TIMEOUT_MS): Promise<T> {
  if (declaredLength !== undefined && Number(declaredLength) > MAX_BODY) return Promise.reject(bodyTooLarge());
  return new Promise<T>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer): void => {
      size += c.length;
      if (size > MAX_BODY) { cleanup(); reject(bodyTooLarge()); return; }
      chunks.push(c);
    };
    const onEnd = (): void => {
      cleanup();
      const text = Buffer.concat(chunks).toString('utf8').trim();
      if (!text) { resolve(undefined as T); return; }
      try {
        resolve(JSON.parse(text) as T);
      } catch (e) {
        reject(invalid(`invalid JSON: ${(e as Error).message}`));
      }
    };
    const onError = (err: Error): void => { cleanup(); reject(invalid(`reading the request body: ${err.message}`)); };
    const timer = setTimeout(() => { cleanup(); reject(invalid(`the request body did not arrive within ${timeoutMs / 1000} s`)); }, timeoutMs);
    const cleanup = (): void => { clearTimeout(timer); body.off('data', onData); body.off('end', onEnd); body.off('error', onError); };
    body.on('data', onData);
    body.on('end', onEnd);
    body.on('error', onError);
    body.resume();
  });
}
