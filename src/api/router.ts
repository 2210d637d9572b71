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

  on(method: Method | Method[], path: string, handler: Handler): this {
    this.fmw.on(method, path, handler as never);
    return this;
  }

  find(method: string, path: string): { handler: Handler; params: Record<string, string> } | undefined {
    const found = this.fmw.find(method as Method, path);
    if (!found) return undefined;
    return { handler: found.handler as unknown as Handler, params: found.params as Record<string, string> };
  }
}

const MAX_BODY = 16 * 1024 * 1024;

export async function readJsonBody<T>(req: IncomingMessage): Promise<T> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) throw invalid('request body too large');
    chunks.push(c as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (!text) return undefined as T;
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw invalid(`invalid JSON: ${(e as Error).message}`);
  }
}
