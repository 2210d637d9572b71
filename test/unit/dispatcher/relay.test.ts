import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../../src/common/log';
import { ShoalError } from '../../../src/common/errors';
import { RpcError, type CallContext, type Passed, type RpcChannel, type RpcStream, type StreamMethod, type UnaryMethod } from '../../../src/rpc/transport';
import { isNotLeader, isRelayedBeatMissed, leaderFromError, notLeader, type RelayHeartbeatsRequest, type RelayUpdateTaskStatusRequest, type SessionMessage, type StatusUpdate } from '../../../src/protocol/dispatcher';
import { LeaderRelay, RELAY_CONNECTION_LOST, RELAY_LEADER_CHANGED } from '../../../src/manager/dispatcher/relay';

// The follower's half of the relay against a fake leader channel: what it
// sends in one call, and how each answer reaches its own node.

interface Call { method: string; req: unknown; channel: number }

// A relayed session the test drives: `first` is the leader's first message,
// `end` ends the stream as the transport would.
interface FakeStream { req: unknown; first(msg: unknown): void; end(err?: Error): void }

// `answer` may return a promise (a call the leader holds).
function fakeLeader(answer: (method: string, req: unknown) => unknown) {
  const streams: FakeStream[] = [];
  const calls: Call[] = [];
  const opened: string[] = [];
  const closed: string[] = [];
  const connect = (address: string): RpcChannel => {
    const channel = opened.push(address) - 1;
    return {
      address,
      async unary<Req, Res>(m: UnaryMethod<Req, Res>, req: Req): Promise<Res> {
        calls.push({ method: m.name, req, channel });
        return m.response(await answer(m.name, req));
      },
      stream<Req, Msg>(m: StreamMethod<Req, Msg>, req: Req, onMessage: (msg: Msg) => void): RpcStream {
        let settle!: (err?: Error) => void;
        const done = new Promise<void>((resolve, reject) => { settle = (err) => (err ? reject(err) : resolve()); });
        // Through the method's check, as a transport would.
        streams.push({ req, first: (msg) => onMessage(m.message(msg)), end: settle });
        return { done, cancel: () => settle(new RpcError('unavailable', 'call cancelled')) };
      },
      pipe: () => { throw new Error('the relay opens no pipe'); },
      close: () => { closed.push(address); },
    };
  };
  return { calls, opened, closed, connect, streams };
}

const ctxOf = (nodeId: string): CallContext => ({ peer: { nodeId, role: 'worker', clusterId: 'c', address: `${nodeId}:1` }, signal: new AbortController().signal });
const update = (i: number): StatusUpdate => ({ TaskID: `task${i}`, Status: { Timestamp: 't', State: 'running', Message: 'running' } });

test('heartbeats of many nodes go in one call; each node gets its own answer, a stale session fails alone, and "not the leader" becomes "open the session again"', async () => {
  const leader = fakeLeader((_m, req) => ({
    Results: (req as RelayHeartbeatsRequest).Beats.map((b) => (b.SessionID === 'stale'
      ? { Error: { Kind: 'not_found', Message: 'dispatcher: session invalid' } }
      : b.SessionID === 'moved' ? { Error: { Kind: 'unavailable', Message: notLeader('m3:2377').message } } : { PeriodMs: 2500 })),
  }));
  const relay = new LeaderRelay({ connect: leader.connect, leaderAddr: () => 'm1:2377', log: silentLogger, batchMs: 5 });
  const answers = await Promise.allSettled([
    relay.heartbeat({ SessionID: 'a' }, ctxOf('n1')),
    relay.heartbeat({ SessionID: 'stale' }, ctxOf('n2')),
    relay.heartbeat({ SessionID: 'moved' }, ctxOf('n3')),
    relay.heartbeat({ SessionID: 'b' }, ctxOf('n4')),
  ]);
  assert.equal(leader.calls.length, 1, 'one call for the four');
  assert.deepEqual((leader.calls[0]!.req as RelayHeartbeatsRequest).Beats.map((b) => [b.For.NodeID, b.For.Addr, b.SessionID]),
    [['n1', 'n1:1', 'a'], ['n2', 'n2:1', 'stale'], ['n3', 'n3:1', 'moved'], ['n4', 'n4:1', 'b']]);
  assert.deepEqual(answers[0], { status: 'fulfilled', value: { PeriodMs: 2500 } });
  assert.deepEqual(answers[3], { status: 'fulfilled', value: { PeriodMs: 2500 } });
  const stale = (answers[1] as PromiseRejectedResult).reason as ShoalError;
  assert.equal(stale.kind, 'not_found');
  assert.match(stale.message, /session invalid/);
  const moved = (answers[2] as PromiseRejectedResult).reason as ShoalError;
  assert.equal(moved.message, RELAY_LEADER_CHANGED, 'the node is not sent to the leader');
  relay.close();
});

test('status reports are batched up to a bound on the updates per call; a new leader gets a new channel', async () => {
  const leader = fakeLeader((_m, req) => ({ Results: (req as RelayUpdateTaskStatusRequest).Reports.map(() => ({})) }));
  let addr = 'm1:2377';
  const relay = new LeaderRelay({ connect: leader.connect, leaderAddr: () => addr, log: silentLogger, batchMs: 5 });
  const many = (n: number, from: number): StatusUpdate[] => Array.from({ length: n }, (_, i) => update(from + i));
  await Promise.all([
    relay.updateTaskStatus({ SessionID: 's1', Updates: many(1500, 0) }, ctxOf('n1')),
    relay.updateTaskStatus({ SessionID: 's2', Updates: many(1500, 2000) }, ctxOf('n2')),
    relay.updateTaskStatus({ SessionID: 's3', Updates: many(10, 4000) }, ctxOf('n3')),
  ]);
  const sizes = leader.calls.map((c) => (c.req as RelayUpdateTaskStatusRequest).Reports.map((r) => r.Updates.length));
  assert.deepEqual(sizes, [[1500], [1500, 10]], 'no call over 2,000 updates; nothing lost or split');
  assert.deepEqual(leader.opened, ['m1:2377', 'm1:2377'], 'a channel for reports and sessions, one for heartbeats');

  addr = 'm2:2377';
  await relay.heartbeat({ SessionID: 'x' }, ctxOf('n1')).catch(() => undefined);
  assert.deepEqual(leader.opened, ['m1:2377', 'm1:2377', 'm2:2377', 'm2:2377']);
  assert.deepEqual(leader.closed, ['m1:2377', 'm1:2377'], 'the old leader\'s channels closed');
  relay.close();
  await assert.rejects(relay.heartbeat({ SessionID: 'y' }, ctxOf('n1')), /no leader is known|stopped/);
});

test('heartbeats go on a channel of their own: a beat is answered while status reports wait on the leader', async () => {
  let release!: () => void;
  const held = new Promise<void>((resolve) => { release = resolve; });
  const leader = fakeLeader(async (m, req) => {
    if (m === 'dispatcher.RelayUpdateTaskStatus') { await held; return { Results: (req as RelayUpdateTaskStatusRequest).Reports.map(() => ({})) }; }
    return { Results: (req as RelayHeartbeatsRequest).Beats.map(() => ({ PeriodMs: 2500 })) };
  });
  const relay = new LeaderRelay({ connect: leader.connect, leaderAddr: () => 'm1:2377', log: silentLogger, batchMs: 5 });
  const report = relay.updateTaskStatus({ SessionID: 's1', Updates: [update(1)] }, ctxOf('n1'));
  assert.deepEqual(await relay.heartbeat({ SessionID: 's2' }, ctxOf('n2')), { PeriodMs: 2500 });
  const channelOf = (method: string): number => leader.calls.find((c) => c.method === method)!.channel;
  assert.notEqual(channelOf('dispatcher.RelayHeartbeats'), channelOf('dispatcher.RelayUpdateTaskStatus'));
  release();
  await report;
  relay.close();
});

test('a lost connection to the same leader: a session it had taken is opened again here, one it never took goes elsewhere; unanswered beats are missed beats', async () => {
  const dropped = (): RpcError => new RpcError('unavailable', 'dispatcher.RelaySession on m1:2377: Connection dropped');
  const leader = fakeLeader(() => { throw new RpcError('unavailable', 'deadline exceeded calling dispatcher.RelayHeartbeats on m1:2377'); });
  let addr = 'm1:2377';
  const relay = new LeaderRelay({ connect: leader.connect, leaderAddr: () => addr, log: silentLogger, batchMs: 5 });
  const got: Array<Passed<SessionMessage>> = [];
  const msg = { SessionID: 's1' } as unknown as SessionMessage;
  const session = (id: string): Promise<void> => relay.session({ SessionID: id, Description: {} as never }, ctxOf(id), (m) => got.push(m));

  const taken = session('n1');
  const never = session('n2');
  leader.streams[0]!.first(msg);
  assert.equal(got.length, 1, 'the leader\'s message reaches the node');
  assert.deepEqual(JSON.parse(got[0]!.bytes.toString('utf8')), msg, 'as the bytes the leader sent, unread');
  leader.streams[0]!.end(dropped());
  leader.streams[1]!.end(dropped());
  const a = await taken.then(() => undefined, (e: unknown) => e as ShoalError);
  assert.equal(a?.message, RELAY_CONNECTION_LOST, 'a session the leader had: the node comes back here');
  assert.ok(!isNotLeader(a), 'not "not the leader": the node keeps this manager');
  const b = await never.then(() => undefined, (e: unknown) => e as ShoalError);
  assert.ok(isNotLeader(b) && leaderFromError(b) === undefined, `a session the leader never took: the node tries another manager (${b?.message})`);

  // The leader changed meanwhile: its old connection's loss says nothing of the new one.
  const old = session('n3');
  leader.streams[2]!.first(msg);
  addr = 'm2:2377';
  await relay.heartbeat({ SessionID: 'x' }, ctxOf('n9')).catch(() => undefined); // moves the relay to m2
  leader.streams[2]!.end(dropped());
  const c = await old.then(() => undefined, (e: unknown) => e as ShoalError);
  assert.notEqual(c?.message, RELAY_CONNECTION_LOST);

  const beat = await relay.heartbeat({ SessionID: 'y' }, ctxOf('n4')).then(() => undefined, (e: unknown) => e as ShoalError);
  assert.ok(isRelayedBeatMissed(beat), `a beat the leader left unanswered is a missed beat (${beat?.message})`);
  relay.close();
});
