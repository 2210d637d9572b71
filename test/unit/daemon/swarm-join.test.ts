import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JOIN_TIMEOUT } from '../../../src/common/errors';
import { silentLogger } from '../../../src/common/log';
import { SwarmNode, type RunningComponents } from '../../../src/daemon/swarm-node';
import { startCAServer, type CAServerFixture } from '../../helpers/ca-server-fixture';
import { waitFor } from '../../helpers/daemon';

// `swarm join` of a worker answers once the node's agent has registered with
// the leader's dispatcher, as Docker's does; one that has not within the
// bound fails with dockerd's words, the node staying in the swarm. The agent
// is a stand-in that says whether (and when) it registered; the CA is a real
// one on loopback.

let manager: CAServerFixture;
const dirs: string[] = [];

before(async () => { manager = await startCAServer('clus0000000000000000000001'); });
after(async () => {
  await manager?.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

// A node whose agent answers `registered` as told.
function workerNode(registered: (ms: number) => Promise<boolean>): SwarmNode {
  const dataRoot = mkdtempSync(join(tmpdir(), 'shoal-join-'));
  dirs.push(dataRoot);
  const components: RunningComponents = { registered, stop: async () => undefined };
  const unused = (): never => { throw new Error('a worker runs no manager components'); };
  return new SwarmNode({
    dataRoot, etcdBinary: '/nonexistent', etcdClientUrl: 'https://127.0.0.1:1', etcdPeerUrl: 'https://127.0.0.1:2', hostname: 'w1', log: silentLogger,
    describeNode: async () => unused(), startComponents: async () => unused(), startLeaderComponents: async () => unused(),
    startWorkerComponents: async () => components, removeTaskContainers: async () => undefined, removeNodeNetworks: async () => undefined,
  });
}

const joinRequest = () => ({ RemoteAddrs: [manager.address], JoinToken: manager.tokens().Worker, AdvertiseAddr: '127.0.0.1', ListenAddr: '127.0.0.1:2377' });

test('a worker\'s join answers only after its agent has registered', async () => {
  let register!: (ok: boolean) => void;
  let asked = 0;
  const node = workerNode(() => { asked++; return new Promise((resolve) => { register = resolve; }); });
  let answered = false;
  const joined = node.join(joinRequest()).then(() => { answered = true; });
  await waitFor('the join to ask the agent', async () => asked === 1, 10_000, 10);
  // Registration pending: the join has not answered (the rest of join is synchronous from here).
  await new Promise((r) => setImmediate(r));
  assert.equal(answered, false);
  register(true);
  await joined;
  assert.equal(node.info().LocalNodeState, 'active');
  await node.stop();
});

test('a worker\'s join not registered within the bound fails with dockerd\'s words; the node stays in the swarm', async () => {
  let waitedMs = 0;
  const node = workerNode(async (ms) => { waitedMs = ms; return false; });
  await assert.rejects(node.join(joinRequest()), (e: Error) => e.message === JOIN_TIMEOUT);
  assert.equal(waitedMs, 20_000, 'Docker\'s join gives up after 20 s');
  const info = node.info();
  assert.equal(info.LocalNodeState, 'active');
  assert.equal(info.ControlAvailable, false);
  // As Docker's: the join goes on in the background, so another is refused.
  await assert.rejects(node.join(joinRequest()), /already part of a swarm/);
  await node.stop();
});
