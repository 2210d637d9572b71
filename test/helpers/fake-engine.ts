import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// A stand-in for dockerd on a temporary unix socket, for the proxy and the
// streaming routes: every request is recorded, `handle` answers it (default:
// echo of method, URL, headers and body as JSON), upgrades get dockerd's
// "101 UPGRADED" and then whatever `onUpgrade` does with the raw socket.
export interface FakeEngine {
  socketPath: string;
  address: string; // unix://…
  server: Server;
  requests: Array<{ method: string; url: string; headers: IncomingMessage['headers'] }>;
  handle: (req: IncomingMessage, res: ServerResponse) => void;
  onUpgrade: (req: IncomingMessage, socket: Socket, head: Buffer) => void;
  close(): Promise<void>;
}

export async function startFakeEngine(): Promise<FakeEngine> {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-fake-engine-'));
  const socketPath = join(dir, 'docker.sock');
  const sockets = new Set<Socket>();
  const fake: FakeEngine = {
    socketPath,
    address: `unix://${socketPath}`,
    server: undefined as unknown as Server,
    requests: [],
    handle: (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
        res.writeHead(200, { 'Content-Type': 'application/json', 'Api-Version': '1.41', Server: 'Docker/20.10.24 (linux)' });
        res.end(body);
      });
    },
    onUpgrade: (_req, socket) => socket.destroy(),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => fake.server.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
  fake.server = createServer((req, res) => {
    fake.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    fake.handle(req, res);
  });
  fake.server.on('connection', (s: Socket) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  fake.server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    fake.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    fake.onUpgrade(req, socket, head);
  });
  await new Promise<void>((resolve) => fake.server.listen(socketPath, resolve));
  return fake;
}

// Resolves once `cond` holds, polling briefly; fails after `ms`.
export async function waitUntil(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export function tempSocketPath(name = 'shoal.sock'): { path: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-api-'));
  return { path: join(dir, name), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
