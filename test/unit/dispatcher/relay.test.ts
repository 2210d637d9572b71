import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../../src/common/log';
import { ShoalError } from '../../../src/common/errors';
import type { CallContext, RpcChannel, RpcStream, StreamMethod, UnaryMethod } from '../../../src/rpc/transport';
import { notLeader, type RelayHeartbeatsRequest, type RelayUpdateTaskStatusRequest, type StatusUpdate } from '../../../src/protocol/dispatcher';
import { LeaderRelay, RELAY_LEADER_CHANGED } from '../../../src/manager/dispatcher/relay';

// The follower's half of the relay against a fake leader channel: what it
// sends in one call, and how each answer reaches its own node.

interface Call { method: string; req: unknown }

function fakeLeader(answer: (method: string, req: unknown) => unknown) {
  const calls: Call[] = [];
  const opened: string[] = [];
  const closed: string[] = [];
  // Relayed session streams by session ID; each ends (rejects) when cancelled.
  const streams = new Map<string, { cancelled: boolean }>();
  const connect = (address: string): RpcChannel => {
    opened.push(address);
    return {
      address,
      async unary<Req, Res>(m: UnaryMethod<Req, Res>, req: Req): Promise<Res> {
        calls.push({ method: m.name, req });
        return m.response(answer(m.name, req));
      },
      stream<Req, Msg>(_m: StreamMethod<Req, Msg>, req: Req): RpcStream {
        const state = { cancelled: false };
        streams.set((req as { Req: { SessionID: string } }).Req.SessionID, state);
        let fail!: (e: Error) => void;
        const done = new Promise<void>((_resolve, reject) => { fail = reject; });
        done.catch(() => undefined);
        return { done, cancel: () => { state.cancelled = true; fail(new Error('cancelled')); } };
      },
      close: () => { closed.push(address); },
    };
  };
  return { calls, opened, closed, streams, connect };
}

const ctxOf = (nodeId: string): CallContext => ({ peer: { nodeId, role: 'worker', clusterId: 'c', address: `${nodeId}:1` }, signal: new AbortController().signal });
const update = (i: number): StatusUpdate => ({ TaskID: `task${i}`, Status: { Timestamp: 't', State: 'running', Message: 'running' } });
const description = { Hostname: 'h', Platform: { Architecture: 'x86_64', OS: 'linux' }, Resources: {}, Engine: { EngineVersion: '1', Plugins: [] }, TLSInfo: {} };
const until = async (what: string, cond: () => boolean): Promise<void> => {
  const deadline = Date.now() + 2000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

test('heartbeats are answered by the relaying manager at once and go to the leader in one call, the latest per node; a beat the leader refuses ends that session alone', async () => {
  const leader = fakeLeader((_m, req) => ({
    Results: (req as RelayHeartbeatsRequest).Beats.map((b) => (b.SessionID === 'stale'
      ? { Error: { Kind: 'not_found', Message: 'dispatcher: session invalid' } }
      : b.SessionID === 'moved' ? { Error: { Kind: 'unavailable', Message: notLeader('m3:2377').message } } : { PeriodMs: 2500 })),
  }));
  const relay = new LeaderRelay({ connect: leader.connect, leaderAddr: () => 'm1:2377', intervalMs: () => 1234, log: silentLogger, batchMs: 5 });
  const sessions = new Map<string, Promise<void>>();
  for (const [node, id] of [['n1', 'a'], ['n2', 'stale'], ['n3', 'moved'], ['n4', 'b']] as const) {
    const p = relay.session({ SessionID: id, Description: description }, ctxOf(node), () => undefined);
    p.catch(() => undefined);
    sessions.set(node, p);
  }
  // Only a session relayed here is answered.
  assert.throws(() => relay.heartbeat({ SessionID: 'other' }, ctxOf('n1')), (e: ShoalError) => e.kind === 'not_found' && /session invalid/.test(e.message));
  assert.throws(() => relay.heartbeat({ SessionID: 'a' }, ctxOf('n9')), /session invalid/);
  assert.deepEqual(relay.heartbeat({ SessionID: 'a' }, ctxOf('n1')), { PeriodMs: 1234 }, 'answered at once, with the cluster\'s interval');
  relay.heartbeat({ SessionID: 'a' }, ctxOf('n1'));
  for (const [node, id] of [['n2', 'stale'], ['n3', 'moved'], ['n4', 'b']] as const) relay.heartbeat({ SessionID: id }, ctxOf(node));
  await until('the beats sent', () => leader.calls.length > 0);
  assert.equal(leader.calls.length, 1, 'one call');
  assert.deepEqual((leader.calls[0]!.req as RelayHeartbeatsRequest).Beats.map((b) => [b.For.NodeID, b.For.Addr, b.SessionID]),
    [['n1', 'n1:1', 'a'], ['n2', 'n2:1', 'stale'], ['n3', 'n3:1', 'moved'], ['n4', 'n4:1', 'b']], 'one beat per node');
  await assert.rejects(sessions.get('n2')!, (e: ShoalError) => e.kind === 'not_found' && /session invalid/.test(e.message));
  await assert.rejects(sessions.get('n3')!, (e: ShoalError) => e.message === RELAY_LEADER_CHANGED, 'the node is not sent to the leader');
  assert.equal(leader.streams.get('a')!.cancelled, false);
  assert.equal(leader.streams.get('b')!.cancelled, false);
  assert.throws(() => relay.heartbeat({ SessionID: 'stale' }, ctxOf('n2')), /session invalid/, 'an ended session is no longer answered');
  relay.close();
  await assert.rejects(sessions.get('n1')!);
});

test('status reports are batched up to a bound on the updates per call, each answered on its own; a new leader gets a new channel', async () => {
  const leader = fakeLeader((_m, req) => ({
    Results: (req as RelayUpdateTaskStatusRequest).Reports.map((r) => (r.SessionID === 's2' ? { Error: { Kind: 'not_found', Message: 'dispatcher: session invalid' } } : {})),
  }));
  let addr = 'm1:2377';
  const relay = new LeaderRelay({ connect: leader.connect, leaderAddr: () => addr, intervalMs: () => 1000, log: silentLogger, batchMs: 5 });
  const many = (n: number, from: number): StatusUpdate[] => Array.from({ length: n }, (_, i) => update(from + i));
  const answers = await Promise.allSettled([
    relay.updateTaskStatus({ SessionID: 's1', Updates: many(1500, 0) }, ctxOf('n1')),
    relay.updateTaskStatus({ SessionID: 's2', Updates: many(1500, 2000) }, ctxOf('n2')),
    relay.updateTaskStatus({ SessionID: 's3', Updates: many(10, 4000) }, ctxOf('n3')),
  ]);
  assert.deepEqual(answers.map((a) => a.status), ['fulfilled', 'rejected', 'fulfilled']);
  const sizes = leader.calls.map((c) => (c.req as RelayUpdateTaskStatusRequest).Reports.map((r) => r.Updates.length));
  assert.deepEqual(sizes, [[1500], [1500, 10]], 'no call over 2,000 updates; nothing lost or split');
  assert.deepEqual(leader.opened, ['m1:2377']);

  addr = 'm2:2377';
  await relay.updateTaskStatus({ SessionID: 's1', Updates: many(1, 0) }, ctxOf('n1'));
  assert.deepEqual(leader.opened, ['m1:2377', 'm2:2377']);
  assert.deepEqual(leader.closed, ['m1:2377'], 'the old leader\'s channel closed');
  relay.close();
  await assert.rejects(relay.updateTaskStatus({ SessionID: 's1', Updates: many(1, 0) }, ctxOf('n1')), /no leader to relay to|stopped/);
});
