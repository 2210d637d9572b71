import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { connect } from 'node:net';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { EngineProxy } from '../../../src/api/proxy';
import { inject } from 'light-my-request';
import { controlFixture, NODE_ID } from '../../helpers/control-fixture';
import { tempSocketPath } from '../../helpers/fake-engine';
import { createApiHandler, createApiServer, type ApiServerOptions } from '../../../src/api/server';
import { MAX_BODY, Router, readJsonBody } from '../../../src/api/router';
import { PassThrough } from 'node:stream';
import { parseTarget, isOwnedPath } from '../../../src/api/target';
import { EngineClient } from '../../../src/engine/client';
import { silentLogger, type Logger } from '../../../src/common/log';
import { invalid } from '../../../src/common/errors';

async function listenOn(opts: ApiServerOptions): Promise<{ path: string; server: Server; close: () => Promise<void> }> {
  const server = createApiServer(opts);
  const sock = tempSocketPath();
  await new Promise<void>((resolve) => server.listen(sock.path, resolve));
  return {
    path: sock.path,
    server,
    close: async () => { server.closeAllConnections(); await new Promise<void>((r) => server.close(() => r())); sock.cleanup(); },
  };
}

// Sends raw bytes and collects everything the server answers until it closes
// (or `ms` passes); `reset` tells whether the connection was reset.
function rawExchange(path: string, data: string | Buffer, ms = 3000): Promise<{ text: string; reset: boolean }> {
  return new Promise((resolve) => {
    const s = connect(path);
    let text = '';
    let reset = false;
    const timer = setTimeout(() => s.destroy(), ms);
    s.on('data', (d: Buffer) => { text += d.toString('latin1'); });
    s.on('error', () => { reset = true; });
    s.on('close', () => { clearTimeout(timer); resolve({ text, reset }); });
    s.write(data);
  });
}

test('request targets: absolute form reduced to its path, versions as dockerd reads them, escapes decoded for ownership', () => {
  const t = parseTarget('http://x/v1.41/swarm/init?a=1');
  assert.equal(t.path, '/swarm/init');
  assert.equal(t.origin, '/v1.41/swarm/init?a=1');
  assert.equal(t.query.get('a'), '1');
  for (const url of ['/v1.41/swa%72m/init', '/v1.41/swarm%2Finit', '/v1.41//swarm/init', '/v1.41/containers/../swarm/init',
    '/v1%2e41/swarm/init', '/v1.41/containers/..%2f..%2fswarm/init', '/v1.12/swarm', '/swarm', '/v1.41/./nodes', '/v1.30.0/services']) {
    assert.ok(isOwnedPath(parseTarget(url).canonical), url);
  }
  assert.equal(parseTarget('/v1.41/containers/json').canonical, '/containers/json');
  assert.throws(() => parseTarget('/v1.42/containers/json'), /client version 1.42 is too new/);
  assert.throws(() => parseTarget('/v1/swarm/init'), /client version 1 is too old. Minimum supported API version is 1.12/);
  assert.throws(() => parseTarget('/v1.41.1/swarm/init'), /too new/);
  assert.throws(() => parseTarget('/v1.41/containers/%zz/json'), /invalid URL escape/);
  assert.throws(() => parseTarget('/v1.41/containers/a%00b/json'), /invalid character/);
  assert.throws(() => parseTarget('*'), /malformed request target/);
  assert.throws(() => parseTarget('example.com:443'), /malformed request target/);
});

test('no form of a swarm-owned request is forwarded to the engine; each gets a Docker JSON answer', async () => {
  const { handler, forwarded } = await controlFixture();
  const cases: Array<[string, string]> = [
    ['GET', 'http://x/v1.41/swarm'], ['POST', 'http://x/v1.41/swarm/init'], ['POST', '/v1/swarm/init'], ['POST', '/v1.41.0/swarm/init'],
    ['POST', '/v1.41/swa%72m/init'], ['POST', '/v1.41/swarm%2Finit'], ['POST', '/v1.41//swarm/init'], ['POST', '/v1.41/containers/../swarm/init'],
    ['POST', '/v1%2e41/swarm/init'], ['POST', '/v1.41/containers/..%2f..%2fswarm/init'], ['PUT', '/v1.41/services/x'], ['POST', '/v1.41/swarm/init/'],
    ['GET', '/v1.41/nodes%3Fx'], ['PATCH', '/v1.41/secrets'], ['OPTIONS', '/v1.41/configs/create'], ['GET', '/v1.41/tasks/../../tasks'],
  ];
  for (const [method, url] of cases) {
    const res = await inject(handler, { method: method as 'GET', url, payload: method === 'POST' ? '{}' : undefined });
    assert.ok([200, 400, 404, 409, 503].includes(res.statusCode), `${method} ${url}: ${res.statusCode} ${res.payload}`);
    assert.equal(res.headers['content-type'], 'application/json', `${method} ${url}`);
    assert.equal(typeof JSON.parse(res.payload), res.statusCode >= 400 ? 'object' : typeof JSON.parse(res.payload));
  }
  assert.deepEqual(forwarded, []);
});

test('an absolute-form target to an owned route is answered by Shoal\'s route', async () => {
  const { handler } = await controlFixture();
  const res = await inject(handler, { method: 'GET', url: 'http://x/v1.41/swarm' });
  assert.equal(res.statusCode, 200);
  assert.equal(JSON.parse(res.payload).ID, 'clus0000000000000000000001');
});

test('other calls are forwarded in origin form; bad escapes and characters are 400 and not forwarded', async () => {
  const { handler, forwarded } = await controlFixture();
  await inject(handler, { method: 'GET', url: 'http://x/v1.41/containers/json?all=1' });
  assert.deepEqual(forwarded, [{ method: 'GET', url: '/v1.41/containers/json?all=1', upgrade: false }]);
  for (const url of ['/v1.41/containers/%zz/json', '/v1.41/containers/a%0ab/json', '/v1.41/x%7']) {
    const res = await inject(handler, { method: 'GET', url });
    assert.equal(res.statusCode, 400, url);
    assert.equal(res.headers['content-type'], 'application/json');
    assert.match(JSON.parse(res.payload).message, /invalid (URL escape|character)/);
  }
  assert.equal(forwarded.length, 1);
});

test('upgrade requests: to an owned route Shoal\'s route answers; to others the engine gets them', async () => {
  const { serverOptions, forwarded } = await controlFixture();
  const srv = await listenOn(serverOptions);
  try {
    const body = JSON.stringify({ ListenAddr: '0.0.0.0:2377' });
    const init = await rawExchange(srv.path, `POST /v1.41/swarm/init HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    assert.match(init.text, /^HTTP\/1.1 200 /);
    assert.ok(init.text.includes(JSON.stringify(NODE_ID)), init.text);
    const get = await rawExchange(srv.path, 'GET http://x/v1.41/swarm HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n');
    assert.match(get.text, /^HTTP\/1.1 200 /);
    assert.match(get.text, /"ID":"clus0000000000000000000001"/);
    const chunked = await rawExchange(srv.path, 'POST /v1.41/secrets/create HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
    assert.match(chunked.text, /^HTTP\/1.1 400 [^]*application\/json[^]*chunked body/);
    assert.deepEqual(forwarded, []);
    await rawExchange(srv.path, 'POST /v1.41/containers/abc/attach?stream=1 HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n');
    assert.deepEqual(forwarded, [{ method: 'POST', url: '/v1.41/containers/abc/attach?stream=1', upgrade: true }]);
  } finally { await srv.close(); }
});

test('a body over the limit on an owned route is a 400 that reaches the client; the connection is not reset under it', async () => {
  const { serverOptions, store } = await controlFixture();
  const srv = await listenOn(serverOptions);
  try {
    const big = JSON.stringify({ Name: 'big', Data: Buffer.alloc(MAX_BODY + 1024, 1).toString('base64') });
    for (const chunked of [false, true]) {
      // Settles once the answer is read AND the whole body was written: a
      // connection reset under the upload would fail it.
      const res = await new Promise<{ status: number; body: string; type?: string }>((resolve, reject) => {
        let answer: { status: number; body: string; type?: string } | undefined;
        let sent = false;
        const settle = (): void => { if (answer && sent) resolve(answer); };
        const req = httpRequest({ socketPath: srv.path, method: 'POST', path: '/v1.41/secrets/create', headers: chunked ? { 'Content-Type': 'application/json' } : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(big) } }, (r) => {
          let b = '';
          r.on('data', (d: Buffer) => { b += d.toString(); });
          r.on('end', () => { answer = { status: r.statusCode ?? 0, body: b, type: r.headers['content-type'] }; settle(); });
        });
        req.on('finish', () => { sent = true; settle(); });
        req.on('error', reject);
        if (chunked) { for (let i = 0; i < big.length; i += 65536) req.write(big.slice(i, i + 65536)); req.end(); } else req.end(big);
      });
      assert.equal(res.status, 400, `chunked=${chunked}`);
      assert.equal(res.type, 'application/json');
      assert.match(JSON.parse(res.body).message, /request body too large: the limit is 4 MiB/);
    }
    assert.equal(store.count('secrets'), 0);
  } finally { await srv.close(); }
});

test('requests Node\'s parser refuses and CONNECT get a Docker JSON 400', async () => {
  const { serverOptions, forwarded } = await controlFixture();
  const srv = await listenOn(serverOptions);
  try {
    const bad = await rawExchange(srv.path, 'GET /v1.41/swarm\x01 HTTP/1.1\r\nHost: docker\r\n\r\n');
    assert.match(bad.text, /^HTTP\/1.1 400 Bad Request[^]*Content-Type: application\/json[^]*\{"message":"bad request/);
    const conn = await rawExchange(srv.path, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n');
    assert.match(conn.text, /^HTTP\/1.1 400 [^]*"CONNECT is not supported"/);
    assert.deepEqual(forwarded, []);
  } finally { await srv.close(); }
});

function recordingLog(): { log: Logger; errors: string[] } {
  const errors: string[] = [];
  const log = Object.assign(Object.create(silentLogger) as Logger, { error: (_o: unknown, msg?: string) => { errors.push(msg ?? ''); } });
  return { log, errors };
}

test('a bug in a handler or in forwarding is a 500 with a message and a log line, never a crash or a hang; a client mistake stays a 400', async () => {
  const router = new Router();
  router.on('GET', '/boom', async () => { throw new TypeError('x is not a function'); });
  router.on('GET', '/sync-boom', (() => { throw new Error('thrown before any promise'); }) as never);
  router.on('GET', '/half', async (_req, res) => { res.writeHead(200, { 'Content-Type': 'text/plain' }); res.write('partial'); await new Promise((r) => setTimeout(r, 20)); throw new Error('mid-stream'); });
  router.on('POST', '/bad-input', async (req) => { await req.json(); throw invalid('bad thing'); });
  const { log, errors } = recordingLog();
  const opts: ApiServerOptions = {
    router, log, engineVersion: () => '20.10.24',
    engine: { forward: () => { throw new Error('forwarder exploded'); }, forwardUpgrade: () => { throw new Error('upgrade exploded'); } },
  };
  const handler = createApiHandler(opts);
  for (const [path, msg] of [['/boom', 'x is not a function'], ['/sync-boom', 'thrown before any promise'], ['/v1.41/containers/json', 'forwarder exploded']]) {
    const res = await inject(handler, { method: 'GET', url: path! });
    assert.equal(res.statusCode, 500, path);
    assert.equal(res.headers['content-type'], 'application/json');
    assert.equal(JSON.parse(res.payload).message, msg);
  }
  assert.equal(errors.length, 3);
  const bad = await inject(handler, { method: 'POST', url: '/bad-input', payload: '{' });
  assert.equal(bad.statusCode, 400);
  assert.match(JSON.parse(bad.payload).message, /invalid JSON/);
  assert.equal(errors.length, 3, 'a client mistake is not logged as our error');

  const srv = await listenOn(opts);
  try {
    const half = await rawExchange(srv.path, 'GET /half HTTP/1.1\r\nHost: docker\r\n\r\n');
    assert.match(half.text, /^HTTP\/1.1 200 [^]*partial/);
    assert.ok(!/\r\n0\r\n\r\n$/.test(half.text), 'the cut stream must not look complete');
    const up = await rawExchange(srv.path, 'POST /v1.41/containers/x/attach HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n');
    assert.match(up.text, /^HTTP\/1.1 500 [^]*upgrade exploded/);
    const again = await rawExchange(srv.path, 'GET /boom HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n');
    assert.match(again.text, /^HTTP\/1.1 500 /, 'the server still answers');
  } finally { await srv.close(); }
});

test('engine calls have a deadline: an engine that accepts and never answers fails the call (503)', async () => {
  const sock = tempSocketPath('mute.sock');
  const mute = createServer(() => undefined); // never answers
  await new Promise<void>((r) => mute.listen(sock.path, r));
  const client = new EngineClient(`unix://${sock.path}`, undefined, { timeoutMs: 300 });
  try {
    const started = Date.now();
    await assert.rejects(client.getJson('/info'), (err: Error & { kind?: string }) => err.kind === 'unavailable' && /no answer within 300 ms/.test(err.message));
    assert.ok(Date.now() - started < 3000);
  } finally {
    client.close();
    mute.closeAllConnections();
    await new Promise<void>((r) => mute.close(() => r()));
    sock.cleanup();
  }
});

// A TCP listener whose accept queue is full: connecting to it hangs (the SYN
// is dropped), like an engine address that is firewalled away.
async function unreachableListener(): Promise<{ port: number; close: () => void }> {
  const py = spawn('python3', ['-c', [
    'import socket, time',
    "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(0); port = s.getsockname()[1]",
    'fill = []',
    'for i in range(3):',
    '    c = socket.socket(); c.setblocking(False)',
    "    try: c.connect(('127.0.0.1', port))",
    '    except BlockingIOError: pass',
    '    fill.append(c)',
    'print(port, flush=True)',
    'time.sleep(60)',
  ].join('\n')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    py.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    py.once('error', reject);
  });
  return { port, close: () => py.kill('SIGKILL') };
}

test('reaching the engine is bounded: forwarded calls and upgrades answer 502 when it cannot be reached in time', { skip: !existsSync('/usr/bin/python3') && 'no python3' }, async () => {
  const blackhole = await unreachableListener();
  const proxy = new EngineProxy(`tcp://127.0.0.1:${blackhole.port}`, undefined, { connectTimeoutMs: 300 });
  const srv = await listenOn({ router: new Router(), engine: proxy, engineVersion: () => '20.10.24', log: silentLogger });
  try {
    const started = Date.now();
    const res = await inject(createApiHandler({ router: new Router(), engine: proxy, engineVersion: () => '20.10.24', log: silentLogger }), { method: 'GET', url: '/v1.41/containers/json' });
    assert.equal(res.statusCode, 502);
    assert.match(JSON.parse(res.payload).message, /no connection within 300 ms/);
    const up = await rawExchange(srv.path, 'POST /v1.41/containers/x/attach HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n');
    assert.match(up.text, /^HTTP\/1.1 502 [^]*no connection within 300 ms/);
    assert.ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`);
  } finally {
    proxy.close();
    await srv.close();
    blackhole.close();
  }
});

test('a body that stops arriving fails the request after the body time-out (400), not never', async () => {
  const body = new PassThrough();
  body.write('{"Name":');
  await assert.rejects(readJsonBody(body, undefined, 200), (err: Error & { kind?: string }) => err.kind === 'invalid' && /did not arrive within 0.2 s/.test(err.message));
  const complete = new PassThrough();
  complete.end('{"a":1}');
  assert.deepEqual(await readJsonBody(complete, undefined, 200), { a: 1 });
});
