import { test, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { inject } from 'light-my-request';
import { Router } from '../../../src/api/router';
import { createApiHandler, createApiServer } from '../../../src/api/server';
import { EngineProxy, endToEndHeaders } from '../../../src/api/proxy';
import { registerPingRoutes } from '../../../src/api/routes/ping';
import { silentLogger } from '../../../src/common/log';
import { parseEngineAddress } from '../../../src/engine/address';
import { startFakeEngine, tempSocketPath, waitUntil, type FakeEngine } from '../../helpers/fake-engine';

const proxies: EngineProxy[] = [];
function handlerFor(address: string) {
  const router = new Router();
  registerPingRoutes(router);
  const engine = new EngineProxy(address);
  proxies.push(engine);
  return { router, engine, handler: createApiHandler({ router, engine, engineVersion: () => '20.10.24', log: silentLogger }) };
}

let fake: FakeEngine;
let echo: FakeEngine['handle'];
const started = startFakeEngine().then((f) => { fake = f; echo = f.handle; });
// Each test starts from the echoing engine.
beforeEach(async () => { await started; fake.handle = echo; });
after(async () => { for (const p of proxies) p.close(); await fake?.close(); });

// A real Shoal API server on a temp unix socket (inject cannot do upgrades
// nor client disconnects).
async function realServer(address: string, tcp = false): Promise<{ path: string; port: number; server: Server; close: () => Promise<void> }> {
  const { router, engine } = handlerFor(address);
  const server = createApiServer({ router, engine, engineVersion: () => '20.10.24', log: silentLogger });
  const conns = new Set<Socket>();
  server.on('connection', (c: Socket) => { conns.add(c); c.on('close', () => conns.delete(c)); });
  const sock = tempSocketPath();
  if (tcp) await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  else await new Promise<void>((resolve) => server.listen(sock.path, resolve));
  const addr = server.address();
  return {
    path: sock.path,
    port: typeof addr === 'object' && addr ? addr.port : 0,
    server,
    close: async () => {
      for (const c of conns) c.destroy(); // hijacked ones too
      await new Promise<void>((resolve) => server.close(() => resolve()));
      sock.cleanup();
    },
  };
}

test('hop-by-hop headers are dropped, end-to-end ones kept in order and case', () => {
  assert.deepEqual(
    endToEndHeaders(['Host', 'docker', 'Connection', 'keep-alive, X-Drop', 'X-Drop', '1', 'Transfer-Encoding', 'chunked', 'X-Registry-Auth', 'abc', 'x-dup', '1', 'x-dup', '2']),
    ['Host', 'docker', 'X-Registry-Auth', 'abc', 'x-dup', '1', 'x-dup', '2'],
  );
});

test('an unknown path is forwarded unchanged: method, /v1.41 prefix, query, headers, body', async () => {
  await started;
  const { handler } = handlerFor(fake.address);
  const res = await inject(handler, {
    method: 'POST', url: '/v1.41/containers/create?name=web&x=%2F', payload: '{"Image":"busybox"}',
    headers: { 'content-type': 'application/json', 'x-registry-auth': 'tok', connection: 'keep-alive' },
  });
  assert.equal(res.statusCode, 200);
  const seen = res.json();
  assert.equal(seen.method, 'POST');
  assert.equal(seen.url, '/v1.41/containers/create?name=web&x=%2F');
  assert.equal(seen.headers['x-registry-auth'], 'tok');
  assert.equal(seen.headers['content-type'], 'application/json');
  assert.equal(seen.body, '{"Image":"busybox"}');
  // the engine's own Docker headers pass through as they are
  assert.equal(res.headers['api-version'], '1.41');
  assert.equal(res.headers.server, 'Docker/20.10.24 (linux)');
});

test('engine addresses: unix://, tcp://, http://, [ipv6]; anything else refused', () => {
  assert.deepEqual(parseEngineAddress('unix:///var/run/docker.sock'), { socketPath: '/var/run/docker.sock' });
  assert.deepEqual(parseEngineAddress('tcp://10.0.0.2:2375'), { host: '10.0.0.2', port: 2375 });
  assert.deepEqual(parseEngineAddress('http://localhost:2375/'), { host: 'localhost', port: 2375 });
  assert.deepEqual(parseEngineAddress('tcp://[::1]:2375'), { host: '::1', port: 2375 });
  assert.throws(() => parseEngineAddress('ssh://host'), /invalid engine address/);
  assert.throws(() => parseEngineAddress('tcp://host'), /invalid engine address/);
});

test('forwarding over tcp:// works the same', async () => {
  await started;
  const tcp = createServer((req, res) => fake.handle(req, res));
  await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
  try {
    fake.handle = (req, res) => { res.writeHead(200, { 'Content-Type': 'application/json' }); res.end(JSON.stringify({ url: req.url })); };
    const { handler } = handlerFor(`tcp://127.0.0.1:${(tcp.address() as { port: number }).port}`);
    const res = await inject(handler, { method: 'GET', url: '/v1.41/images/json?all=1' });
    assert.equal(res.json().url, '/v1.41/images/json?all=1');
  } finally {
    tcp.closeAllConnections();
    await new Promise<void>((resolve) => tcp.close(() => resolve()));
  }
});

test('an HTTP/1.0 request without Host still reaches the engine with one', async () => {
  await started;
  fake.handle = (req, res) => { res.writeHead(200, { 'Content-Type': 'application/json' }); res.end(JSON.stringify({ host: req.headers.host ?? null })); };
  const srv = await realServer(fake.address);
  const client = connect({ path: srv.path });
  try {
    client.write('GET /v1.41/containers/json HTTP/1.0\r\n\r\n');
    const all = await readUntil(client, (x) => x.includes('}'));
    assert.match(all, /^HTTP\/1\.1 200/);
    assert.equal(JSON.parse(all.slice(all.indexOf('\r\n\r\n') + 4)).host, 'docker');
  } finally {
    client.destroy();
    await srv.close();
  }
});

test('an unversioned unknown path is forwarded too', async () => {
  await started;
  const { handler } = handlerFor(fake.address);
  const res = await inject(handler, { method: 'GET', url: '/version' });
  assert.equal(res.json().url, '/version');
});

test('status, status text and headers of the engine pass through', async () => {
  await started;
  fake.handle = (_req, res) => {
    res.writeHead(404, 'Not Found Here', { 'Content-Type': 'application/json', 'X-Docker-Thing': 'yes', 'Set-Cookie': ['a=1', 'b=2'] });
    res.end('{"message":"No such container: nope"}\n');
  };
  const { handler } = handlerFor(fake.address);
  const res = await inject(handler, { method: 'GET', url: '/v1.41/containers/nope/json' });
  assert.equal(res.statusCode, 404);
  assert.equal(res.statusMessage, 'Not Found Here');
  assert.equal(res.headers['content-type'], 'application/json');
  assert.equal(res.headers['x-docker-thing'], 'yes');
  assert.deepEqual(res.headers['set-cookie'], ['a=1', 'b=2']);
  assert.equal(res.json().message, 'No such container: nope');
});

test('the answer streams: the first chunk arrives before the engine ends', async () => {
  await started;
  let release!: () => void;
  const released = new Promise<void>((r) => { release = r; });
  fake.handle = (_req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/vnd.docker.raw-stream' });
    res.write('first\n');
    void released.then(() => res.end('second\n'));
  };
  const { handler } = handlerFor(fake.address);
  const res = await inject(handler, { method: 'GET', url: '/v1.41/containers/x/logs?follow=1', payloadAsStream: true });
  assert.equal(res.statusCode, 200);
  const stream = res.stream();
  const first = await new Promise<string>((resolve) => stream.once('data', (c: Buffer) => resolve(c.toString())));
  assert.equal(first, 'first\n');
  release();
  let rest = '';
  for await (const c of stream) rest += (c as Buffer).toString();
  assert.equal(rest, 'second\n');
});

test('the request body streams both ways: the engine answers each chunk while the body is still open', async () => {
  await started;
  fake.handle = (req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/vnd.docker.raw-stream' });
    res.flushHeaders();
    req.on('data', (c: Buffer) => res.write(c.toString().toUpperCase()));
    req.on('end', () => res.end('EOF'));
  };
  const { handler } = handlerFor(fake.address);
  const body = new PassThrough();
  const pending = inject(handler, { method: 'POST', url: '/v1.41/containers/x/attach?stream=1&stdin=1', payload: body, payloadAsStream: true });
  body.write('ping');
  const res = await pending;
  const stream = res.stream();
  const echoed = await new Promise<string>((resolve) => stream.once('data', (c: Buffer) => resolve(c.toString())));
  assert.equal(echoed, 'PING', 'the engine answered the first chunk before the body ended');
  body.end('pong');
  let rest = '';
  for await (const c of stream) rest += (c as Buffer).toString();
  assert.equal(rest, 'PONGEOF');
});

test('a large binary body (build context, cp) arrives intact', async () => {
  await started;
  fake.handle = (req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
    req.pipe(res);
  };
  const { handler } = handlerFor(fake.address);
  const data = Buffer.alloc(5 * 1024 * 1024);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7919) & 0xff;
  const res = await inject(handler, { method: 'POST', url: '/v1.41/build?t=x', payload: data, headers: { 'content-type': 'application/x-tar' } });
  assert.equal(res.statusCode, 200);
  assert.ok(res.rawPayload.equals(data));
});

test('engine down: 502 with a Docker-format JSON error', async () => {
  const { handler } = handlerFor('unix:///nonexistent/shoal-test/docker.sock');
  const res = await inject(handler, { method: 'GET', url: '/v1.41/containers/json' });
  assert.equal(res.statusCode, 502);
  assert.equal(res.headers['content-type'], 'application/json');
  assert.match(res.json().message, /^Cannot connect to the Docker engine at unix:\/\/\/nonexistent\/shoal-test\/docker\.sock: .*ENOENT/);
});

test('a client version above 1.41 is 400 with Docker\'s message and is not forwarded', async () => {
  await started;
  const before = fake.requests.length;
  const { handler } = handlerFor(fake.address);
  const res = await inject(handler, { method: 'GET', url: '/v1.99/containers/json' });
  assert.equal(res.statusCode, 400);
  assert.equal(res.headers['content-type'], 'application/json');
  assert.equal(res.json().message, 'client version 1.99 is too new. Maximum supported API version is 1.41');
  assert.equal(fake.requests.length, before);
});

test('/_ping: GET OK, HEAD empty, no-cache, Docker headers, no Swarm header', async () => {
  const { handler } = handlerFor('unix:///nonexistent/shoal-test/docker.sock'); // never asks the engine
  const get = await inject(handler, { method: 'GET', url: '/_ping' });
  assert.equal(get.statusCode, 200);
  assert.equal(get.payload, 'OK');
  assert.equal(get.headers['content-type'], 'text/plain; charset=utf-8');
  assert.equal(get.headers['cache-control'], 'no-cache, no-store, must-revalidate');
  assert.equal(get.headers.pragma, 'no-cache');
  assert.equal(get.headers['api-version'], '1.41');
  assert.equal(get.headers.ostype, 'linux');
  assert.equal(get.headers['docker-experimental'], 'false');
  assert.equal(get.headers.server, 'Docker/20.10.24 (linux)');
  assert.equal(get.headers.swarm, undefined);
  const head = await inject(handler, { method: 'HEAD', url: '/_ping' });
  assert.equal(head.statusCode, 200);
  assert.equal(head.payload, '');
  assert.equal(head.headers['content-length'], '0');
  assert.equal(head.headers['cache-control'], 'no-cache, no-store, must-revalidate');
  assert.equal((await inject(handler, { method: 'GET', url: '/v1.41/_ping' })).payload, 'OK');
});

test('a client that disconnects aborts the engine request', async () => {
  await started;
  let engineSawClose = false;
  fake.handle = (req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.write('{"status":"start"}\n');
    res.on('close', () => { engineSawClose = true; });
    void req;
  };
  const srv = await realServer(fake.address);
  try {
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const r = httpRequest({ socketPath: srv.path, path: '/v1.41/events', method: 'GET' }, resolve);
      r.on('error', reject);
      r.end();
    });
    assert.equal(res.statusCode, 200);
    await new Promise<void>((resolve) => res.once('data', () => resolve()));
    res.destroy();
    await waitUntil(() => engineSawClose, 5000, 'the engine to see the request closed');
  } finally {
    await srv.close();
  }
});

test('the engine dying mid-stream cuts the client stream (no clean end)', async () => {
  await started;
  fake.handle = (req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.write('{"a":1}\n');
    setImmediate(() => req.socket.destroy());
  };
  const srv = await realServer(fake.address);
  try {
    const outcome = await new Promise<string>((resolve) => {
      const r = httpRequest({ socketPath: srv.path, path: '/v1.41/events', method: 'GET' }, (res) => {
        res.on('data', () => undefined);
        res.on('end', () => resolve('end'));
        res.on('error', () => resolve('error'));
        res.on('aborted', () => resolve('error'));
      });
      r.on('error', () => resolve('error'));
      r.end();
    });
    assert.equal(outcome, 'error');
  } finally {
    await srv.close();
  }
});

// ---------- upgrades (hijacked attach / exec) ----------

function readUntil(sock: Socket, pred: (all: string) => boolean, ms = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    let all = '';
    const timer = setTimeout(() => { cleanup(); reject(new Error(`timed out; got ${JSON.stringify(all)}`)); }, ms);
    const onData = (c: Buffer): void => { all += c.toString('latin1'); if (pred(all)) { cleanup(); resolve(all); } };
    const onEnd = (): void => { cleanup(); pred(all) ? resolve(all) : reject(new Error(`ended; got ${JSON.stringify(all)}`)); };
    const cleanup = (): void => { clearTimeout(timer); sock.off('data', onData); sock.off('end', onEnd); };
    sock.on('data', onData);
    sock.on('end', onEnd);
  });
}

const UPGRADE_REQ = (body: string) =>
  `POST /v1.41/exec/abc/start HTTP/1.1\r\nHost: api.moby.localhost\r\nUser-Agent: Docker-Client/28.2.2 (linux)\r\n` +
  `Content-Length: ${body.length}\r\nContent-Type: application/json\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n${body}`;

test('upgrade: request head, body and raw bytes reach the engine; half-close works each way', async () => {
  await started;
  let engineGotEnd = false;
  let seenHead = '';
  fake.onUpgrade = (req, socket, head) => {
    seenHead = `${req.method} ${req.url} ${req.headers.upgrade} ${req.headers['user-agent']}`;
    socket.write('HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n');
    let body = head.toString();
    socket.on('data', (c: Buffer) => { body += c.toString(); socket.write(c.toString().toUpperCase()); });
    socket.on('end', () => {
      engineGotEnd = true;
      // stdin closed: the "container" still has output to send, then ends.
      setTimeout(() => socket.end(`BYE after ${body.length} bytes\n`), 20);
    });
  };
  const srv = await realServer(fake.address);
  const client = connect({ path: srv.path, allowHalfOpen: true });
  try {
    client.write(UPGRADE_REQ('{"Detach":false,"Tty":false}'));
    const head = await readUntil(client, (s) => s.includes('\r\n\r\n'));
    assert.match(head, /^HTTP\/1\.1 101 UPGRADED\r\n/);
    assert.equal(seenHead, 'POST /v1.41/exec/abc/start tcp Docker-Client/28.2.2 (linux)');
    client.write('hello');
    await readUntil(client, (s) => s.includes('HELLO'));
    client.end(); // like docker run -i when stdin reaches EOF: CloseWrite only
    const tail = await readUntil(client, (s) => s.includes('BYE'));
    assert.match(tail, /BYE after \d+ bytes\n/);
    assert.ok(engineGotEnd, 'the engine saw the client half-close');
    await new Promise<void>((resolve) => (client.readableEnded ? resolve() : client.once('end', () => resolve())));
  } finally {
    client.destroy();
    await srv.close();
  }
});

test('upgrade: the engine ending first ends the client side while the client may still write', async () => {
  await started;
  fake.onUpgrade = (_req, socket) => {
    socket.write('HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\nout');
    socket.end(); // the container exited
  };
  const srv = await realServer(fake.address);
  const client = connect({ path: srv.path, allowHalfOpen: true });
  try {
    client.write(UPGRADE_REQ(''));
    const all = await readUntil(client, (s) => s.endsWith('out'));
    assert.match(all, /101 UPGRADED/);
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no end')), 5000);
      if (client.readableEnded) { clearTimeout(t); resolve(); } else client.once('end', () => { clearTimeout(t); resolve(); });
    });
  } finally {
    client.destroy();
    await srv.close();
  }
});

// A FIN alone is a half-close (stdin EOF), so a vanished client is noticed as
// a direct dockerd connection would notice it: a reset, or output that can no
// longer be delivered.
for (const how of ['reset', 'closed while the engine writes'] as const) {
  test(`upgrade: a client that vanishes (${how}) closes the engine connection`, async () => {
    await started;
    let engineClosed = false;
    fake.onUpgrade = (_req, socket) => {
      socket.write('HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n');
      // reset: the proxy must destroy its engine connection (not just half-close
      // it), so a write after the FIN fails and the engine side closes.
      const tick = how === 'reset' ? undefined : setInterval(() => socket.write('tick'), 10);
      if (how === 'reset') socket.on('end', () => { setTimeout(() => socket.write('after-end'), 10); setTimeout(() => socket.write('again'), 30); });
      socket.on('close', () => { engineClosed = true; clearInterval(tick); });
      socket.on('error', () => undefined);
    };
    // resetAndDestroy needs TCP
    const srv = await realServer(fake.address, how === 'reset');
    const client = how === 'reset' ? connect({ port: srv.port, host: '127.0.0.1' }) : connect({ path: srv.path });
    client.on('error', () => undefined);
    try {
      client.write(UPGRADE_REQ(''));
      await readUntil(client, (s) => s.includes('\r\n\r\n'));
      if (how === 'reset') client.resetAndDestroy(); else client.destroy();
      await waitUntil(() => engineClosed, 5000, 'the engine connection to close');
    } finally {
      await srv.close();
    }
  });
}

test('EngineProxy.close() ends hijacked streams in flight', async () => {
  await started;
  fake.onUpgrade = (_req, socket) => {
    socket.write('HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n');
    socket.on('error', () => undefined);
  };
  const srv = await realServer(fake.address);
  const client = connect({ path: srv.path });
  try {
    client.write(UPGRADE_REQ(''));
    await readUntil(client, (s) => s.includes('\r\n\r\n'));
    let clientClosed = false;
    client.on('close', () => { clientClosed = true; });
    proxies[proxies.length - 1]!.close();
    await waitUntil(() => clientClosed, 5000, 'the hijacked client connection to close');
  } finally {
    client.destroy();
    await srv.close();
  }
});

test('upgrade with the engine down: 502 Docker-format error on the raw socket', async () => {
  const srv = await realServer('unix:///nonexistent/shoal-test/docker.sock');
  const client = connect({ path: srv.path });
  try {
    client.write(UPGRADE_REQ(''));
    const all = await readUntil(client, (s) => s.includes('}\n'));
    assert.match(all, /^HTTP\/1\.1 502 Bad Gateway\r\n/);
    assert.match(all, /\r\nContent-Type: application\/json\r\n/);
    const body = JSON.parse(all.slice(all.indexOf('\r\n\r\n') + 4));
    assert.match(body.message, /Cannot connect to the Docker engine/);
  } finally {
    client.destroy();
    await srv.close();
  }
});
