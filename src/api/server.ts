import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { invalid, notFound } from '../common/errors';
import type { Logger } from '../common/log';
import { daemonHeaders, API_VERSION } from './headers';
import { writeError, writeJson } from './http-errors';
import { readJsonBody, type Router } from './router';

// Forwards what Shoal does not own to the host's dockerd (api/proxy.ts).
export interface EngineForwarder {
  forward(req: IncomingMessage, res: ServerResponse): void;
  forwardUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
}

export interface ApiServerOptions {
  router: Router;
  engine: EngineForwarder;
  engineVersion: () => string;
  log: Logger;
}

const VERSIONED = /^\/v(\d+)\.(\d+)(\/.*)$/;

// Splits "/v1.41/services?x" into the version and the unversioned path; refuses
// versions above ours the way dockerd does.
export function splitVersion(url: string): { path: string; query: URLSearchParams; version?: string } {
  const q = url.indexOf('?');
  let path = q < 0 ? url : url.slice(0, q);
  const query = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
  const m = VERSIONED.exec(path);
  let version: string | undefined;
  if (m) {
    version = `${m[1]}.${m[2]}`;
    path = m[3]!;
    const [maj, min] = API_VERSION.split('.').map(Number) as [number, number];
    if (Number(m[1]) > maj || (Number(m[1]) === maj && Number(m[2]) > min)) {
      throw invalid(`client version ${version} is too new. Maximum supported API version is ${API_VERSION}`);
    }
  }
  return { path, query, version };
}

// The request handler, usable without a socket (tests drive it with light-my-request).
export function createApiHandler(opts: ApiServerOptions): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const method = req.method ?? 'GET';
    for (const [k, v] of Object.entries(daemonHeaders(opts.engineVersion()))) res.setHeader(k, v);
    let split;
    try { split = splitVersion(req.url ?? '/'); } catch (e) { writeError(res, e); return; }
    const found = opts.router.find(method, split.path);
    if (!found) { opts.engine.forward(req, res); return; }
    const apiReq = {
      method,
      path: split.path,
      params: found.params,
      query: split.query,
      headers: req.headers,
      raw: req,
      json: <T>() => readJsonBody<T>(req),
    };
    found.handler(apiReq, res).then((result) => {
      if (!result) return; // the handler wrote the response itself
      if (result.body === undefined) {
        res.writeHead(result.status, { 'Content-Length': '0' });
        res.end();
      } else if (typeof result.body === 'string' && result.status === 200 && split.path === '/_ping') {
        res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(result.body) });
        res.end(method === 'HEAD' ? undefined : result.body);
      } else {
        writeJson(res, result.status, result.body);
      }
    }).catch((err: unknown) => {
      if (!(err instanceof Error) || !('kind' in err)) opts.log.error({ err, method, url: req.url }, 'request failed');
      writeError(res, err);
    });
  };
}

export function createApiServer(opts: ApiServerOptions): Server {
  const server = createServer(createApiHandler(opts));
  // Hijacked streams (attach, exec start, docker run -it) arrive as upgrades:
  // Shoal owns none of them, so all go to the engine as raw byte pipes.
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => opts.engine.forwardUpgrade(req, socket, head));
  server.keepAliveTimeout = 65_000;
  server.requestTimeout = 0; // logs -f, events and attach streams stay open
  server.headersTimeout = 60_000;
  return server;
}

export const pageNotFound = (): Error => notFound('page not found');
