import { test } from 'node:test';
import assert from 'node:assert/strict';
import { invalid, notFound } from '../../../src/common/errors';
import { MemoryNetwork } from '../../../src/rpc/memory';
import { Passed, passedOn, RpcError, type Peer, type StreamMethod, type UnaryMethod } from '../../../src/rpc/transport';

const isObj = (v: unknown): { n: number } => {
  if (typeof v !== 'object' || v === null || typeof (v as { n?: unknown }).n !== 'number') throw invalid('want {n: number}');
  return v as { n: number };
};
const Double: UnaryMethod<{ n: number }, { n: number }> = { name: 'test.Double', access: 'manager', request: isObj, response: isObj };
const DoublePipe: UnaryMethod<{ n: number }, { n: number }> = { ...Double, name: 'test.DoublePipe' };
const Count: StreamMethod<{ n: number }, { n: number }> = { name: 'test.Count', access: 'node', request: isObj, message: isObj };
const mgr: Peer = { nodeId: 'm1', role: 'manager', clusterId: 'c1', address: 'm1:2377' };
const wkr: Peer = { nodeId: 'w1', role: 'worker', clusterId: 'c1', address: 'w1:2377' };

function setup(): MemoryNetwork {
  const net = new MemoryNetwork();
  const s = net.listen('m1:2377', () => 'c1');
  s.unary(Double, async (req, ctx) => {
    if (req.n < 0) throw notFound('no such number');
    return { n: req.n * 2 + (ctx.peer?.nodeId === 'm1' ? 0 : 1000) };
  });
  s.pipe(DoublePipe, async (req) => {
    if (req.n < 0) throw notFound('no such number');
    return { n: req.n * 2 };
  });
  s.stream(Count, async (req, ctx, send) => {
    for (let i = 0; i < req.n; i++) send({ n: i });
    if (req.n === -1) send(new Passed(Buffer.from('{ "n" : 7 }'))); // bytes passed on: their value arrives
    if (req.n === -2) send(new Passed(Buffer.from('not JSON')));
    await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
  });
  return net;
}

test('a unary call checks access, round-trips JSON and carries error kinds', async () => {
  const net = setup();
  assert.deepEqual(await net.channel(mgr, 'm1:2377').unary(Double, { n: 2 }, { timeoutMs: 1000 }), { n: 4 });
  await assert.rejects(net.channel(wkr, 'm1:2377').unary(Double, { n: 2 }, { timeoutMs: 1000 }), (e: RpcError) => e.rpcKind === 'permission');
  await assert.rejects(net.channel(undefined, 'm1:2377').unary(Double, { n: 2 }, { timeoutMs: 1000 }), (e: RpcError) => e.rpcKind === 'permission');
  await assert.rejects(net.channel({ ...mgr, clusterId: 'other' }, 'm1:2377').unary(Double, { n: 2 }, { timeoutMs: 1000 }), (e: RpcError) => e.rpcKind === 'permission');
  await assert.rejects(net.channel(mgr, 'm1:2377').unary(Double, { n: -1 }, { timeoutMs: 1000 }), (e: RpcError) => e.kind === 'not_found' && e.message === 'no such number');
  await assert.rejects(net.channel(mgr, 'm1:2377').unary(Double, { n: 'x' } as never, { timeoutMs: 1000 }), (e: RpcError) => e.kind === 'invalid');
  await assert.rejects(net.channel(mgr, 'nowhere:2377').unary(Double, { n: 1 }, { timeoutMs: 1000 }), (e: RpcError) => e.kind === 'unavailable');
});

test('a pipe answers as its handler does, with the same access rules; a unary method is no pipe, nor a pipe unary', async () => {
  const net = setup();
  const pipe = net.channel(mgr, 'm1:2377').pipe(DoublePipe);
  assert.deepEqual(await pipe.call({ n: 2 }, { timeoutMs: 1000 }), { n: 4 });
  await assert.rejects(pipe.call({ n: -1 }, { timeoutMs: 1000 }), (e: RpcError) => e.kind === 'not_found' && e.answered);
  assert.deepEqual(await pipe.call({ n: 3 }, { timeoutMs: 1000 }), { n: 6 });
  await assert.rejects(net.channel(wkr, 'm1:2377').pipe(DoublePipe).call({ n: 2 }, { timeoutMs: 1000 }), (e: RpcError) => e.rpcKind === 'permission');
  await assert.rejects(net.channel(mgr, 'm1:2377').pipe(Double).call({ n: 2 }, { timeoutMs: 1000 }), (e: RpcError) => /is not served as a pipe/.test(e.message));
  await assert.rejects(net.channel(mgr, 'm1:2377').unary(DoublePipe, { n: 2 }, { timeoutMs: 1000 }), (e: RpcError) => /is not served as a unary/.test(e.message));
  pipe.close();
  await assert.rejects(pipe.call({ n: 2 }, { timeoutMs: 1000 }), (e: RpcError) => e.rpcKind === 'unavailable');
});

test('a stream delivers in order and ends with unavailable when the server is cut off', async () => {
  const net = setup();
  const got: number[] = [];
  const s = net.channel(wkr, 'm1:2377').stream(Count, { n: 3 }, (m) => got.push(m.n));
  const deadline = Date.now() + 2000;
  while (got.length < 3 && Date.now() < deadline) await new Promise((r) => setImmediate(r));
  assert.deepEqual(got, [0, 1, 2]);
  net.partition('m1:2377');
  await assert.rejects(s.done, (e: RpcError) => e.kind === 'unavailable');
  await assert.rejects(net.channel(wkr, 'm1:2377').unary(Double, { n: 1 }, { timeoutMs: 1000 }), (e: RpcError) => e.kind === 'unavailable');
  net.heal('m1:2377');
  const again = net.channel(wkr, 'm1:2377').stream(Count, { n: 1 }, () => undefined);
  again.cancel();
  await assert.rejects(again.done, (e: RpcError) => e.kind === 'unavailable');
});

test('passed-on messages: a passedOn() reader gets the JSON bytes, bytes sent on arrive as their checked value, bytes that are not JSON end the stream as invalid', async () => {
  const net = setup();
  const ch = net.channel(mgr, 'm1:2377');
  const CountPassed: StreamMethod<{ n: number }, Passed<{ n: number }>> = { ...Count, message: passedOn<{ n: number }>() };
  const bytes: string[] = [];
  const a = ch.stream(CountPassed, { n: 2 }, (m) => bytes.push(m.bytes.toString('utf8')));
  const got: number[] = [];
  const b = ch.stream(Count, { n: -1 }, (m) => got.push(m.n));
  const c = ch.stream(Count, { n: -2 }, () => assert.fail('not JSON reached the reader'));
  await assert.rejects(c.done, (e: RpcError) => e.rpcKind === 'invalid');
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(bytes, ['{"n":0}', '{"n":1}']);
  assert.deepEqual(got, [7]);
  a.cancel(); b.cancel();
});
