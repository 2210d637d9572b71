import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../../../src/common/log';
import { startAgent } from '../../../../src/agent/agent';
import { NetworkHost } from '../../../../src/agent/network/network-host';
import type { NetworkComponent } from '../../../../src/agent/network/component';
import type { NodeNetworkView } from '../../../../src/protocol/network-view';
import { EngineClient } from '../../../../src/engine/client';
import type { Task } from '../../../../src/model/types';
import { FakeControlPlane, FakeExecutor, makeTask, NODE_ID, waitFor } from '../fakes';

const view = (n: number): NodeNetworkView => ({ Networks: [], Services: [], Endpoints: [], LoadBalancers: [{ NetworkID: 'x', NodeID: String(n), NodeAddr: '10.0.0.1', Addr: '10.0.0.2' }] });

// A component that records the views it got and holds each update until released.
class SlowComponent implements NetworkComponent {
  readonly name = 'slow';
  readonly seen: string[] = [];
  private release?: () => void;
  running = 0;
  maxRunning = 0;
  update(v: NodeNetworkView): Promise<void> {
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    this.seen.push(v.LoadBalancers[0]!.NodeID);
    return new Promise((resolve) => { this.release = () => { this.running--; resolve(); }; });
  }
  next(): void { const r = this.release; this.release = undefined; r?.(); }
  get waiting(): boolean { return this.release !== undefined; }
  async close(): Promise<void> {}
}

test('views are applied one at a time and the latest wins over those that waited', async () => {
  const slow = new SlowComponent();
  // The overlay comes first; an engine nobody answers is fine: an empty view never reaches it.
  const host = new NetworkHost({ nodeId: NODE_ID, engine: new EngineClient('unix:///nonexistent.sock'), log: silentLogger, resyncMs: 3_600_000 }, () => [slow]);
  (host.overlay as unknown as { update: () => Promise<void> }).update = async () => {};
  try {
    const first = host.setView(view(1));
    await waitFor('the first view to reach the component', () => slow.waiting);
    void host.setView(view(2));
    void host.setView(view(3));
    slow.next();
    await waitFor('the latest view', () => slow.waiting && slow.seen.length === 2);
    slow.next();
    await first;
    assert.deepEqual(slow.seen, ['1', '3']);
    assert.equal(slow.maxRunning, 1);
  } finally { await host.close(); }
});

test('a task with networks: its networks are made before its container; a network that cannot be made rejects it with the reason', async () => {
  const cp = new FakeControlPlane();
  const ex = new FakeExecutor();
  const ensured: string[] = [];
  const networks = {
    ensure: async (t: Task): Promise<void> => {
      ensured.push(`${t.ID}: ${ex.byTask(t.ID).length} containers`);
      if (t.ID === 'bad') throw new Error('network app could not be made on this node: links: boom');
    },
  };
  const att = [{ Network: { ID: 'net0000000000000000000001a', Version: { Index: 1 }, CreatedAt: '', UpdatedAt: '', Spec: { Name: 'app' } }, Addresses: ['10.0.1.5/24'] }];
  cp.put(makeTask('good', { NetworksAttachments: att }));
  cp.put(makeTask('bad', { Slot: 2, NetworksAttachments: att }));
  const agent = startAgent({ nodeId: NODE_ID, controlPlane: cp, executor: ex, log: silentLogger, retry: { minMs: 5, maxMs: 20 }, networks });
  try {
    await agent.ready;
    await waitFor('good running', () => cp.state('good') === 'running');
    await waitFor('bad rejected', () => cp.state('bad') === 'rejected');
    assert.match(cp.status('bad')!.Err ?? '', /network app could not be made on this node: links: boom/);
    assert.equal(ex.byTask('bad').length, 0, 'no container for a task whose network is missing');
    assert.equal(ensured.filter((e) => e.startsWith('good'))[0], 'good: 0 containers', 'made before the create');
  } finally { await agent.stop(); }
  const noNet = new FakeControlPlane();
  noNet.put(makeTask('t', { NetworksAttachments: att }));
  const a2 = startAgent({ nodeId: NODE_ID, controlPlane: noNet, executor: new FakeExecutor(), log: silentLogger, retry: { minMs: 5, maxMs: 20 } });
  try {
    await a2.ready;
    await waitFor('rejected without networks', () => noNet.state('t') === 'rejected');
    assert.match(noNet.status('t')!.Err ?? '', /overlay networks are not available/);
  } finally { await a2.stop(); }
});

test('a running task reports its host-mode ports as the engine bound them (PortStatus)', async () => {
  const cp = new FakeControlPlane();
  const ex = new FakeExecutor();
  ex.startHook = (c) => { c.ports = [{ Protocol: 'tcp', TargetPort: 80, PublishedPort: 32768, PublishMode: 'host' }]; };
  cp.put(makeTask('p1'));
  const agent = startAgent({ nodeId: NODE_ID, controlPlane: cp, executor: ex, log: silentLogger, retry: { minMs: 5, maxMs: 20 } });
  try {
    await agent.ready;
    await waitFor('p1 running', () => cp.state('p1') === 'running');
    assert.deepEqual(cp.status('p1')!.PortStatus, { Ports: [{ Protocol: 'tcp', TargetPort: 80, PublishedPort: 32768, PublishMode: 'host' }] });
    ex.exit(ex.byTask('p1')[0]!.id, 0);
    await waitFor('p1 complete', () => cp.state('p1') === 'complete');
    assert.deepEqual(cp.status('p1')!.PortStatus, {});
  } finally { await agent.stop(); }
});
