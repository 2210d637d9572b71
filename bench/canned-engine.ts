// A stand-in Engine API on a unix socket that answers from recorded bytes and
// does nothing else: timing the real docker CLI against it gives what the CLI
// itself costs for an answer of that size (decoding, formatting, printing),
// the floor under any server's latency. bench/scale.ts records a manager's
// `GET /nodes` and `GET /info` and times `docker node ls` against both.
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface CannedEngine { dockerHost: string; close(): Promise<void> }

// The path the answers are keyed by: no API version prefix, no query.
export function cannedPath(url: string): string {
  return url.replace(/\?.*$/, '').replace(/^\/v\d+\.\d+(?=\/)/, '');
}

// `answers` maps a path (`/nodes`) to its JSON body; /_ping answers as an
// engine of API 1.41 does; anything else is a 404 in Docker's error format.
export async function startCannedEngine(answers: ReadonlyMap<string, Buffer>): Promise<CannedEngine> {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-canned-'));
  const socket = join(dir, 'engine.sock');
  const server: Server = createServer((req, res) => {
    const path = cannedPath(req.url ?? '/');
    const base = { 'Api-Version': '1.41', 'Ostype': 'linux' };
    if (path === '/_ping') { res.writeHead(200, { ...base, 'Content-Type': 'text/plain; charset=utf-8' }); res.end(req.method === 'HEAD' ? undefined : 'OK'); return; }
    const body = req.method === 'GET' ? answers.get(path) : undefined;
    if (!body) { res.writeHead(404, { ...base, 'Content-Type': 'application/json' }); res.end('{"message":"page not found"}\n'); return; }
    res.writeHead(200, { ...base, 'Content-Type': 'application/json', 'Content-Length': body.length });
    res.end(body);
  });
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(socket, resolve); });
  return {
    dockerHost: `unix://${socket}`,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => { rmSync(dir, { recursive: true, force: true }); resolve(); });
    }),
  };
}
