import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect as netConnect, createServer as netServer, type Server as NetServer, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { connect as h2Connect, createSecureServer as h2SecureServer, type ServerHttp2Session } from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { conflict, invalid, notFound } from '../../../src/common/errors';
import { silentLogger } from '../../../src/common/log';
import { createRootCA, issueNodeCert, type RootCA } from '../../../src/manager/ca/ca';
import { nodeTlsFrom } from '../../helpers/node-tls';
import { fetchRootCA, GrpcServer, grpcChannel, MANAGER_CHANNEL, type ChannelTuning, type NodeTls } from '../../../src/rpc/grpc';
import { Passed, passedOn, RpcError, type RpcChannel, type StreamMethod, type UnaryMethod } from '../../../src/rpc/transport';

const isN = (v: unknown): { n: number } => {
  if (typeof v !== 'object' || v === null || typeof (v as { n?: unknown }).n !== 'number') throw invalid('want {n: number}');
  return { n: (v as { n: number }).n };
};
const anyObj = (v: unknown): Record<string, unknown> => {
  if (typeof v !== 'object' || v === null) throw invalid('want an object');
  return v as Record<string, unknown>;
};
const Double: UnaryMethod<{ n: number }, { n: number }> = { name: 'test.Double', access: 'manager', request: isN, response: isN };
const WhoAmI: UnaryMethod<Record<string, unknown>, Record<string, unknown>> = { name: 'test.WhoAmI', access: 'node', request: anyObj, response: anyObj };
const Hello: UnaryMethod<Record<string, unknown>, Record<string, unknown>> = { name: 'test.Hello', access: 'anyone', request: anyObj, response: anyObj };
const Slow: UnaryMethod<{ n: number }, { n: number }> = { name: 'test.Slow', access: 'node', request: isN, response: isN };
const Count: StreamMethod<{ n: number }, { n: number }> = { name: 'test.Count', access: 'node', request: isN, message: isN };
// Count as a relaying manager reads it (messages as bytes), and the stream
// that relays it: the dispatcher's RelaySession and Session in small.
const CountPassed: StreamMethod<{ n: number }, Passed<{ n: number }>> = { ...Count, message: passedOn<{ n: number }>() };
const Relay: StreamMethod<{ n: number }, { n: number }> = { ...Count, name: 'test.Relay' };
// Pipes (unary calls on one stream): the contexts their handler saw, one per stream.
const DoublePipe: UnaryMethod<{ n: number }, { n: number }> = { ...Double, name: 'test.DoublePipe' };
const SlowPipe: UnaryMethod<{ n: number }, { n: number }> = { ...Slow, name: 'test.SlowPipe' };
const WhoAmIPipe: UnaryMethod<Record<string, unknown>, Record<string, unknown>> = { ...WhoAmI, name: 'test.WhoAmIPipe' };
const pipeStreams = new Set<unknown>();
let slowPipeAborted = 0;
const GetRoot: UnaryMethod<Record<string, unknown>, { Certificate: string }> = {
  name: 'ca.GetRootCACertificate', access: 'anyone', request: anyObj, response: (v) => anyObj(v) as { Certificate: string },
};

const CLUSTER = 'cluster000000000000000000';
const DAY_NS = 24 * 3600e9;
let ca: RootCA;
let serverTls: NodeTls;
let managerTls: NodeTls;
let workerTls: NodeTls;
let server: GrpcServer;
let address: string;
let slowAborted = 0;
const warnings: Error[] = [];
const onWarning = (w: Error): void => { warnings.push(w); };

const nodeTls = (root: RootCA, id: string, role: 'manager' | 'worker', cluster = CLUSTER): Promise<NodeTls> => nodeTlsFrom(root, id, role, cluster);

function serve(s: GrpcServer): void {
  s.unary(Double, async (req) => {
    if (req.n < 0) throw notFound(`no such number ${req.n}`);
    if (req.n === 13) throw conflict('unlucky');
    return { n: req.n * 2 };
  });
  s.unary(WhoAmI, async (_req, ctx) => ({ ...ctx.peer }));
  s.unary(GetRoot, async () => ({ Certificate: ca.certPem }));
  s.unary(Slow, async (req, ctx) => {
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, req.n);
      ctx.signal.addEventListener('abort', () => { slowAborted++; clearTimeout(t); resolve(); }, { once: true });
    });
    return req;
  });
  s.pipe(DoublePipe, async (req, ctx) => {
    pipeStreams.add(ctx);
    if (req.n < 0) throw notFound(`no such number ${req.n}`);
    // Later calls answered sooner if the pipe did not take them in turn.
    await new Promise((r) => setTimeout(r, Math.max(0, 30 - req.n)));
    return { n: req.n * 2 };
  });
  s.pipe(WhoAmIPipe, async (_req, ctx) => ({ ...ctx.peer }));
  s.pipe(SlowPipe, async (req, ctx) => {
    pipeStreams.add(ctx);
    // The signal is the stream's, shared by its calls: each call drops its listener.
    const onAbort = (): void => { slowPipeAborted++; clearTimeout(t); done(); };
    let done!: () => void;
    let t: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      done = resolve;
      t = setTimeout(resolve, req.n);
      ctx.signal.addEventListener('abort', onAbort, { once: true });
    });
    ctx.signal.removeEventListener('abort', onAbort);
    return req;
  });
  s.stream(Count, async (req, ctx, send) => {
    for (let i = 0; i < req.n; i++) send({ n: i });
    if (req.n === 0) throw notFound('nothing to count');
    // Bytes of the handler's own, written as they are: not JSON at all, and JSON as no encoder writes it.
    if (req.n === -1) send(new Passed(Buffer.from('not JSON')));
    if (req.n === -2) send(new Passed(Buffer.from('{ "n" : 7 }')));
    await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
  });
  s.stream(Relay, async (req, ctx, send) => {
    const up = grpcChannel(address, managerTls);
    try {
      const st = up.stream(CountPassed, req, (m) => send(m));
      ctx.signal.addEventListener('abort', () => st.cancel(), { once: true });
      await st.done.catch(() => undefined);
    } finally { up.close(); }
  });
}

before(async () => {
  process.on('warning', onWarning);
  ca = await createRootCA();
  serverTls = await nodeTls(ca, 'server000000000000000000a', 'manager');
  managerTls = await nodeTls(ca, 'manager00000000000000000a', 'manager');
  workerTls = await nodeTls(ca, 'worker000000000000000000a', 'worker');
  server = new GrpcServer({ tls: () => serverTls, clusterId: () => CLUSTER, log: silentLogger });
  serve(server);
  // Registered after listen: must work too.
  const port = await server.listen('127.0.0.1', 0);
  server.unary(Hello, async (_req, ctx) => (ctx.peer ? { hello: ctx.peer.nodeId } : { hello: 'stranger', from: ctx.remoteAddress }));
  address = `127.0.0.1:${port}`;
});

after(async () => {
  await server.close();
  process.off('warning', onWarning);
});

const kindOf = (k: string) => (e: unknown): boolean => e instanceof RpcError && e.rpcKind === k;

async function withChannel<T>(ch: RpcChannel, fn: (ch: RpcChannel) => Promise<T>): Promise<T> {
  try { return await fn(ch); } finally { ch.close(); }
}

test('unary and stream round trip with the peer taken from the certificate', async () => {
  await withChannel(grpcChannel(address, managerTls), async (ch) => {
    assert.deepEqual(await ch.unary(Double, { n: 21 }, { timeoutMs: 5000 }), { n: 42 });
    const me = await ch.unary(WhoAmI, {}, { timeoutMs: 5000 });
    assert.equal(me.nodeId, 'manager00000000000000000a');
    assert.equal(me.role, 'manager');
    assert.equal(me.clusterId, CLUSTER);
    assert.equal(me.address, '127.0.0.1');
    assert.deepEqual(await ch.unary(Hello, {}, { timeoutMs: 5000 }), { hello: 'manager00000000000000000a' });
    const got: number[] = [];
    let resolveThree!: () => void;
    const three = new Promise<void>((r) => { resolveThree = r; });
    const s = ch.stream(Count, { n: 3 }, (m) => { got.push(m.n); if (got.length === 3) resolveThree(); });
    await three;
    assert.deepEqual(got, [0, 1, 2]);
    s.cancel();
    await assert.rejects(s.done, kindOf('unavailable'));
  });
});

test('a stream read as bytes (passedOn) gets the bytes the server wrote, and sending them on writes them unchanged: the reader at the end checks them', { timeout: 15_000 }, async () => {
  await withChannel(grpcChannel(address, managerTls), async (ch) => {
    const passed: string[] = [];
    let two!: () => void;
    const twoCame = new Promise<void>((r) => { two = r; });
    const direct = ch.stream(CountPassed, { n: 2 }, (m) => { passed.push(m.bytes.toString('utf8')); if (passed.length === 2) two(); });
    await twoCame;
    direct.cancel();
    assert.deepEqual(passed, ['{"n":0}', '{"n":1}']);
    let odd!: (s: string) => void;
    const oddCame = new Promise<string>((r) => { odd = r; });
    const verbatim = ch.stream(CountPassed, { n: -2 }, (m) => odd(m.bytes.toString('utf8')));
    assert.equal(await oddCame, '{ "n" : 7 }', 'the bytes as written, not decoded and encoded again');
    verbatim.cancel();

    const got: number[] = [];
    let three!: () => void;
    const threeCame = new Promise<void>((r) => { three = r; });
    const relayed = ch.stream(Relay, { n: 3 }, (m) => { got.push(m.n); if (got.length === 3) three(); });
    await threeCame;
    assert.deepEqual(got, [0, 1, 2], 'relayed as they came, checked here');
    relayed.cancel();
    await assert.rejects(relayed.done, kindOf('unavailable'));

    // The relay does not read what it passes on: bytes that are not JSON fail only at the end.
    const bad = ch.stream(Relay, { n: -1 }, () => assert.fail('a bad message reached the handler'));
    await assert.rejects(bad.done, (e: unknown) => kindOf('invalid')(e) && /bad message .* on test\.Relay: message is not JSON/.test((e as Error).message));
  });
});

test('each connection\'s calls carry its own certificate\'s peer, with several nodes calling at once from one address', async () => {
  const others = await Promise.all(['node000000000000000000001', 'node000000000000000000002', 'node000000000000000000003'].map((id, i) => nodeTls(ca, id, i % 2 ? 'worker' : 'manager')));
  const channels = [grpcChannel(address, managerTls), grpcChannel(address, workerTls), ...others.map((t) => grpcChannel(address, t))];
  try {
    const want = ['manager00000000000000000a', 'worker000000000000000000a', 'node000000000000000000001', 'node000000000000000000002', 'node000000000000000000003'];
    for (let round = 0; round < 3; round++) {
      const got = await Promise.all(channels.flatMap((ch) => [0, 1].map(() => ch.unary(WhoAmI, {}, { timeoutMs: 5000 }))));
      assert.deepEqual(got.map((p) => p.nodeId), want.flatMap((id) => [id, id]));
      assert.deepEqual(got.map((p) => p.role), ['manager', 'manager', 'worker', 'worker', 'manager', 'manager', 'worker', 'worker', 'manager', 'manager']);
    }
  } finally {
    for (const ch of channels) ch.close();
  }
});

test('access: a worker is refused a manager method, no certificate is refused a node method but may call anyone methods', async () => {
  await withChannel(grpcChannel(address, workerTls), async (ch) => {
    await assert.rejects(ch.unary(Double, { n: 1 }, { timeoutMs: 5000 }), kindOf('permission'));
    assert.equal((await ch.unary(WhoAmI, {}, { timeoutMs: 5000 })).role, 'worker');
  });
  await withChannel(grpcChannel(address, { caPem: ca.certPem }), async (ch) => {
    await assert.rejects(ch.unary(WhoAmI, {}, { timeoutMs: 5000 }), kindOf('permission'));
    const s = ch.stream(Count, { n: 1 }, () => undefined);
    await assert.rejects(s.done, kindOf('permission'));
    assert.deepEqual(await ch.unary(Hello, {}, { timeoutMs: 5000 }), { hello: 'stranger', from: '127.0.0.1' });
  });
});

test('a certificate of another cluster (same CA) is refused; one from another CA gets no connection at all', async () => {
  const other = await nodeTls(ca, 'othercluster0000000000000', 'manager', 'clusterB00000000000000000');
  await withChannel(grpcChannel(address, other), async (ch) => {
    await assert.rejects(ch.unary(WhoAmI, {}, { timeoutMs: 5000 }), kindOf('permission'));
  });
  const otherCA = await createRootCA();
  const foreign = await issueNodeCert(otherCA, 'manager00000000000000000a', 'manager', CLUSTER, DAY_NS);
  await withChannel(grpcChannel(address, { caPem: ca.certPem, certPem: foreign.certPem, keyPem: foreign.keyPem }), async (ch) => {
    await assert.rejects(ch.unary(Hello, {}, { timeoutMs: 3000 }), kindOf('unavailable'));
  });
  // And a client that does not trust the server's CA refuses the server.
  await withChannel(grpcChannel(address, { caPem: otherCA.certPem }), async (ch) => {
    await assert.rejects(ch.unary(Hello, {}, { timeoutMs: 3000 }), kindOf('unavailable'));
  });
});

test('a raw TLS client with a forged self-signed manager certificate gets no answer', async () => {
  // A self-signed certificate claiming to be a manager of this cluster.
  const forgedCA = await createRootCA();
  const forged = await issueNodeCert(forgedCA, 'manager00000000000000000a', 'manager', CLUSTER, DAY_NS);
  const [host, port] = address.split(':');
  const outcome = await new Promise<string>((resolve) => {
    const timer = setTimeout(() => resolve('timeout'), 5000);
    const session = h2Connect(`https://${host}:${port}`, {
      createConnection: () => tlsConnect({ host, port: Number(port), cert: forged.certPem, key: forged.keyPem, ca: forgedCA.certPem, rejectUnauthorized: false, servername: 'swarm-node', ALPNProtocols: ['h2'] }),
    });
    session.on('error', () => undefined);
    const req = session.request({ ':method': 'POST', ':path': '/shoal.test/Hello', 'content-type': 'application/grpc', te: 'trailers' });
    req.on('response', (h) => { clearTimeout(timer); session.destroy(); resolve(`answered ${h[':status']} ${h['grpc-status'] ?? ''}`); });
    req.on('error', () => undefined);
    req.on('close', () => { clearTimeout(timer); session.destroy(); resolve('closed'); });
    const body = Buffer.from('{}');
    const frame = Buffer.alloc(5 + body.length);
    frame.writeUInt32BE(body.length, 1);
    body.copy(frame, 5);
    req.end(frame);
  });
  assert.equal(outcome, 'closed');
});

// The relay of 1,700 nodes' sessions moved some 64 KiB per turn of a loaded
// event loop with HTTP/2's default windows (bench/scale.ts, 5,000 nodes).
test('the server lets a verified peer send 16 MiB before it must acknowledge, per stream and per connection', async () => {
  const [host, port] = address.split(':');
  const windows = await new Promise<{ stream: number; connection: number }>((resolve, reject) => {
    const timer = setTimeout(() => { session.destroy(); reject(new Error('no settings, or no wider connection window, within 5 s')); }, 5000);
    const session = h2Connect(`https://${host}:${port}`, {
      createConnection: () => tlsConnect({ host, port: Number(port), cert: managerTls.certPem, key: managerTls.keyPem, ca: ca.certPem, rejectUnauthorized: false, servername: 'swarm-node', ALPNProtocols: ['h2'] }),
    });
    session.on('error', () => undefined);
    session.once('remoteSettings', (settings) => {
      // The connection's window comes in a WINDOW_UPDATE after the settings:
      // wait (within the deadline above) until it is past the default.
      const check = (): void => {
        if (session.destroyed) return;
        const connection = session.state.remoteWindowSize ?? 0;
        if (connection <= 65_535) { setTimeout(check, 10); return; }
        clearTimeout(timer);
        resolve({ stream: settings.initialWindowSize ?? 0, connection });
        session.destroy();
      };
      check();
    });
  });
  assert.equal(windows.stream, 16 * 1024 * 1024);
  assert.equal(windows.connection, 16 * 1024 * 1024);
});

// The window a channel asks its server for, read by a bare HTTP/2 server from
// the channel's SETTINGS (the call itself fails: nobody answers it).
async function askedWindow(tuning: ChannelTuning): Promise<number> {
  const h2 = h2SecureServer({ cert: serverTls.certPem, key: serverTls.keyPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: false });
  await new Promise<void>((resolve) => h2.listen(0, '127.0.0.1', resolve));
  const { port } = h2.address() as { port: number };
  const ch = grpcChannel(`127.0.0.1:${port}`, workerTls, undefined, tuning);
  const sessions: ServerHttp2Session[] = [];
  try {
    const asked = new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no SETTINGS from the channel within 5 s')), 5000);
      h2.once('session', (session: ServerHttp2Session) => {
        sessions.push(session);
        session.once('remoteSettings', (settings) => { clearTimeout(timer); resolve(settings.initialWindowSize ?? 65_535); });
      });
    });
    void ch.unary(Double, { n: 1 }, { timeoutMs: 5000 }).catch(() => undefined);
    return await asked;
  } finally {
    ch.close();
    // close() waits for open sessions: end ours rather than wait on the channel.
    for (const s of sessions) s.destroy();
    await new Promise<void>((resolve) => h2.close(() => resolve()));
  }
}

// A node's channel keeps HTTP/2's window: with 16 MiB the manager pushed each
// big assignment into its buffers at once and kept the memory (about 200 KB
// per node). A relay between managers carries a crowd and keeps 16 MiB.
test('a node\'s channel asks for HTTP/2\'s default window, a manager\'s channel to another for 16 MiB', async () => {
  assert.equal(await askedWindow({}), 65_535);
  assert.equal(await askedWindow(MANAGER_CHANNEL), 16 * 1024 * 1024);
});

test('error kinds and messages round-trip; a bad request is invalid', async () => {
  await withChannel(grpcChannel(address, managerTls), async (ch) => {
    await assert.rejects(ch.unary(Double, { n: -1 }, { timeoutMs: 5000 }), (e: RpcError) => e.rpcKind === 'not_found' && e.kind === 'not_found' && e.message === 'no such number -1');
    await assert.rejects(ch.unary(Double, { n: 13 }, { timeoutMs: 5000 }), (e: RpcError) => e.kind === 'conflict' && e.message === 'unlucky');
    await assert.rejects(ch.unary(Double, { n: 'x' } as never, { timeoutMs: 5000 }), (e: RpcError) => e.kind === 'invalid' && e.message === 'want {n: number}');
    const s = ch.stream(Count, { n: 0 }, () => undefined);
    await assert.rejects(s.done, (e: RpcError) => e.kind === 'not_found' && e.message === 'nothing to count');
  });
});

test('a pipe answers its calls in turn on one stream, as the certificate\'s peer; an error fails that call and the next one opens a new stream', async () => {
  await withChannel(grpcChannel(address, managerTls), async (ch) => {
    const pipe = ch.pipe(DoublePipe);
    pipeStreams.clear();
    for (let n = 1; n <= 5; n++) assert.deepEqual(await pipe.call({ n }, { timeoutMs: 5000 }), { n: 2 * n });
    assert.deepEqual(await Promise.all([1, 10, 20].map((n) => pipe.call({ n }, { timeoutMs: 5000 }))), [{ n: 2 }, { n: 20 }, { n: 40 }]);
    assert.equal(pipeStreams.size, 1, 'eight calls, one stream');
    await assert.rejects(pipe.call({ n: -1 }, { timeoutMs: 5000 }), (e: RpcError) => e.kind === 'not_found' && e.message === 'no such number -1' && e.answered);
    await assert.rejects(pipe.call({ n: 'x' } as never, { timeoutMs: 5000 }), (e: RpcError) => e.kind === 'invalid' && e.message === 'want {n: number}');
    assert.deepEqual(await pipe.call({ n: 4 }, { timeoutMs: 5000 }), { n: 8 });
    assert.equal(pipeStreams.size, 2, 'a new stream after the error');
    const me = await ch.pipe(WhoAmIPipe).call({}, { timeoutMs: 5000 });
    assert.equal(me.nodeId, 'manager00000000000000000a');
    assert.equal(me.role, 'manager');
    pipe.close();
    await assert.rejects(pipe.call({ n: 1 }, { timeoutMs: 5000 }), kindOf('unavailable'));
  });
  await withChannel(grpcChannel(address, workerTls), async (ch) => {
    await assert.rejects(ch.pipe(DoublePipe).call({ n: 1 }, { timeoutMs: 5000 }), kindOf('permission'));
    // A method the server does not serve (a manager of an earlier release): the words the agent falls back on.
    await assert.rejects(ch.pipe({ ...DoublePipe, name: 'test.Nowhere' }).call({ n: 1 }, { timeoutMs: 5000 }), (e: RpcError) => /does not implement the method/.test(e.message));
  });
});

test('a pipe whose caller half-closes still answers what it sent, then ends cleanly', async () => {
  // Raw grpc-js: Shoal's own client never half-closes a pipe (it cancels).
  const creds = grpc.credentials.createSsl(Buffer.from(managerTls.caPem), Buffer.from(managerTls.keyPem), Buffer.from(managerTls.certPem), { checkServerIdentity: () => undefined });
  const client = new grpc.Client(address, creds, { 'grpc.ssl_target_name_override': 'shoal-test' });
  try {
    const id = (b: Buffer): Buffer => b;
    const call = client.makeBidiStreamRequest('/shoal.test/DoublePipe', id, id, new grpc.Metadata(), { deadline: Date.now() + 5000 });
    const got: number[] = [];
    const status = new Promise<number>((resolve) => call.on('status', (st: grpc.StatusObject) => resolve(st.code)));
    call.on('data', (b: Buffer) => got.push((JSON.parse(b.toString()) as { n: number }).n));
    call.on('error', () => undefined); // the status says it
    call.write(Buffer.from('{"n":1}'));
    call.write(Buffer.from('{"n":2}'));
    call.end();
    assert.equal(await status, grpc.status.OK);
    assert.deepEqual(got, [2, 4]);
  } finally { client.close(); }
});

test('a pipe call that times out fails in time, ends the stream (its handler sees the abort), and the pipe goes on', async () => {
  await withChannel(grpcChannel(address, managerTls), async (ch) => {
    const pipe = ch.pipe(SlowPipe);
    assert.deepEqual(await pipe.call({ n: 1 }, { timeoutMs: 5000 }), { n: 1 });
    const before = slowPipeAborted;
    const t0 = Date.now();
    const slow = pipe.call({ n: 10_000 }, { timeoutMs: 300 });
    const queued = pipe.call({ n: 2 }, { timeoutMs: 5000 }); // behind the slow one: fails with it
    await assert.rejects(slow, (e: RpcError) => e.rpcKind === 'unavailable' && /deadline exceeded/.test(e.message));
    await assert.rejects(queued, kindOf('unavailable'));
    assert.ok(Date.now() - t0 < 2000, `took ${Date.now() - t0} ms`);
    const deadline = Date.now() + 3000;
    while (slowPipeAborted === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(slowPipeAborted, before + 1);
    assert.deepEqual(await pipe.call({ n: 3 }, { timeoutMs: 5000 }), { n: 3 });
  });
});

test('a caller that piles calls onto a pipe without waiting for answers is cut off; the next pipe works', async () => {
  await withChannel(grpcChannel(address, managerTls), async (ch) => {
    const pipe = ch.pipe(SlowPipe);
    const all = await Promise.allSettled(Array.from({ length: 100 }, () => pipe.call({ n: 20 }, { timeoutMs: 10_000 })));
    const cut = all.filter((r) => r.status === 'rejected' && /more than 64 calls waiting on one pipe/.test((r.reason as Error).message));
    assert.ok(cut.length > 0, `${cut.length} calls cut off`);
    assert.deepEqual(await pipe.call({ n: 1 }, { timeoutMs: 5000 }), { n: 1 });
  });
});

test('deadline honoured: the caller gets unavailable in time and the handler sees the abort', async () => {
  await withChannel(grpcChannel(address, managerTls), async (ch) => {
    await ch.unary(Double, { n: 1 }, { timeoutMs: 5000 }); // connected
    const before = slowAborted;
    const t0 = Date.now();
    await assert.rejects(ch.unary(Slow, { n: 10_000 }, { timeoutMs: 300 }), kindOf('unavailable'));
    assert.ok(Date.now() - t0 < 2000, `took ${Date.now() - t0} ms`);
    const deadline = Date.now() + 3000;
    while (slowAborted === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(slowAborted, before + 1);
    // A caller's own abort cancels too.
    const ac = new AbortController();
    const p = ch.unary(Slow, { n: 10_000 }, { timeoutMs: 10_000, signal: ac.signal });
    setTimeout(() => ac.abort(), 50);
    await assert.rejects(p, kindOf('unavailable'));
  });
});

test('fetchRootCA trusts nothing yet and returns the PEM; nothing listening is unavailable', async () => {
  assert.equal(await fetchRootCA(address, 5000), ca.certPem);
  const closed = netServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
  const port = (closed.address() as { port: number }).port;
  await new Promise<void>((r) => closed.close(() => r()));
  await assert.rejects(fetchRootCA(`127.0.0.1:${port}`, 2000), kindOf('unavailable'));
});

test('the expected node ID and role are checked, and a renewed server certificate is used for new connections', async () => {
  await withChannel(grpcChannel(address, { ...managerTls, expectNodeId: 'server000000000000000000a' }), async (ch) => {
    assert.deepEqual(await ch.unary(Double, { n: 2 }, { timeoutMs: 5000 }), { n: 4 });
  });
  await withChannel(grpcChannel(address, { ...managerTls, expectNodeId: 'someoneelse00000000000000' }), async (ch) => {
    await assert.rejects(ch.unary(Double, { n: 2 }, { timeoutMs: 3000 }), kindOf('unavailable'));
  });
  await withChannel(grpcChannel(address, { ...managerTls, expectRole: 'manager' }), async (ch) => {
    assert.deepEqual(await ch.unary(Double, { n: 2 }, { timeoutMs: 5000 }), { n: 4 });
  });
  await withChannel(grpcChannel(address, { ...managerTls, expectRole: 'worker' }), async (ch) => {
    await assert.rejects(ch.unary(Double, { n: 2 }, { timeoutMs: 3000 }), kindOf('unavailable'));
  });
  const old = serverTls;
  serverTls = await nodeTls(ca, 'renamed0000000000000000aa', 'manager');
  try {
    await withChannel(grpcChannel(address, { ...managerTls, expectNodeId: 'renamed0000000000000000aa' }), async (ch) => {
      assert.deepEqual(await ch.unary(Double, { n: 3 }, { timeoutMs: 5000 }), { n: 6 });
    });
  } finally {
    serverTls = old;
  }
});

test('a stream ends with unavailable when the server closes', async () => {
  const s2 = new GrpcServer({ tls: () => serverTls, clusterId: () => CLUSTER, log: silentLogger });
  serve(s2);
  const port = await s2.listen('127.0.0.1', 0);
  await withChannel(grpcChannel(`127.0.0.1:${port}`, managerTls), async (ch) => {
    let first!: () => void;
    const got = new Promise<void>((r) => { first = r; });
    const s = ch.stream(Count, { n: 1 }, () => first());
    await got;
    await s2.close();
    await assert.rejects(s.done, kindOf('unavailable'));
  });
});

// A TCP relay that can go silent: packets dropped, no RST, as a host powered off.
async function blackholeRelay(target: number): Promise<{ port: number; freeze(): void; close(): void }> {
  const sockets = new Set<Socket>();
  let frozen = false;
  const relay: NetServer = netServer((down) => {
    const up = netConnect(target, '127.0.0.1');
    sockets.add(down); sockets.add(up);
    down.on('data', (d) => { if (!frozen) up.write(d); });
    up.on('data', (d) => { if (!frozen) down.write(d); });
    const end = (): void => { if (!frozen) { down.destroy(); up.destroy(); } };
    down.on('close', end); up.on('close', end);
    down.on('error', () => undefined); up.on('error', () => undefined);
  });
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', () => r()));
  return {
    port: (relay.address() as { port: number }).port,
    freeze: () => { frozen = true; },
    close: () => { for (const s of sockets) s.destroy(); relay.close(); },
  };
}

test('a peer that goes silent (no RST) fails an open stream with unavailable within about 3 s', async () => {
  const relay = await blackholeRelay(Number(address.split(':')[1]));
  try {
    await withChannel(grpcChannel(`127.0.0.1:${relay.port}`, managerTls), async (ch) => {
      let first!: () => void;
      const got = new Promise<void>((r) => { first = r; });
      const s = ch.stream(Count, { n: 1 }, () => first());
      await got;
      relay.freeze();
      const t0 = Date.now();
      await assert.rejects(s.done, kindOf('unavailable'));
      const took = Date.now() - t0;
      assert.ok(took < 4500, `took ${took} ms`);
      if (process.env.SHOAL_PRINT_FIGURES) console.log(`silent peer detected in ${took} ms`);
    });
  } finally {
    relay.close();
  }
});

test('a new stream to a host that accepts but never answers fails with unavailable, bounded', async () => {
  const sockets: Socket[] = [];
  const silent = netServer((s) => { sockets.push(s); s.on('error', () => undefined); });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
  const port = (silent.address() as { port: number }).port;
  try {
    await withChannel(grpcChannel(`127.0.0.1:${port}`, managerTls), async (ch) => {
      const t0 = Date.now();
      const s = ch.stream(Count, { n: 1 }, () => undefined);
      await assert.rejects(s.done, (e: RpcError) => e.rpcKind === 'unavailable' && /cannot reach/.test(e.message));
      assert.ok(Date.now() - t0 < 7000, `took ${Date.now() - t0} ms`);
      await assert.rejects(ch.unary(Double, { n: 1 }, { timeoutMs: 300 }), kindOf('unavailable'));
    });
  } finally {
    for (const s of sockets) s.destroy();
    silent.close();
  }
});

test('no DEP0123 (TLS server name set to an IP) or other warning was printed', () => {
  assert.deepEqual(warnings.map((w) => `${w.name}: ${w.message}`), []);
});
