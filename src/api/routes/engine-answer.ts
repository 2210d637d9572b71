import type { ServerResponse } from 'node:http';
import type { ApiRequest } from '../router';
import type { EngineAnswer } from '../../engine/client';

// Relaying a call to the engine from a Shoal route (networks.ts, containers.ts).

// The request target as received (version prefix and query kept).
export function originalTarget(req: ApiRequest): string {
  const url = req.raw.url ?? '';
  if (url.startsWith('/')) return url;
  const q = req.query.toString();
  return q ? `${req.path}?${q}` : req.path;
}

// The engine's answer, status and body as it gave them.
export function writeAnswer(res: ServerResponse, a: EngineAnswer): void {
  const headers: Record<string, string | number> = { 'Content-Length': a.body.length };
  const type = a.headers['content-type'];
  if (type) headers['Content-Type'] = type;
  res.writeHead(a.status, headers);
  res.end(a.body);
}
