import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../../../src/common/log';
import { EngineClient } from '../../../../src/engine/client';
import { Overlay, type NodeCommands } from '../../../../src/agent/network/overlay/overlay';
import type { NodeNetworkView } from '../../../../src/protocol/network-view';

// A node with nothing on it: the kernel's lists and the engine's networks are empty.
function harness() {
  const reads: string[] = [];
  const commands: NodeCommands = {
    readJson: async (cmd, args) => { reads.push(`${cmd} ${args.join(' ')}`); return []; },
    runBatch: async () => [],
  };
  const engine = new EngineClient('unix:///nonexistent.sock');
  (engine as unknown as { getJson: () => Promise<unknown> }).getJson = async () => [];
  const overlay = new Overlay({ nodeId: 'me', nodeAddr: '10.0.0.1', engine, log: silentLogger, commands });
  return { overlay, reads };
}

const empty = (): NodeNetworkView => ({ Networks: [], Services: [], Endpoints: [], LoadBalancers: [] });

test('a view that asks nothing new of the overlays reads nothing; the periodic resync and a real change do', async () => {
  const { overlay, reads } = harness();
  await overlay.update(empty());
  assert.equal(reads.length, 4, 'the first view: one round, four reads');

  // Another node's load balancer and a service on a network this node does
  // not carry change nothing here.
  const other = empty();
  other.LoadBalancers.push({ NetworkID: 'nx', NodeID: 'n2', NodeAddr: '10.0.0.2', Addr: '10.1.0.2' });
  other.Services.push({ ID: 's', Name: 's', EndpointMode: 'vip', VIPs: [{ NetworkID: 'nx', Addr: '10.1.0.9/24' }], Ports: [], Aliases: [], KeepClientIP: false });
  await overlay.update(other);
  assert.equal(reads.length, 4, 'no round');

  await overlay.update(other); // the same view again: the host's resync
  assert.equal(reads.length, 8, 'a resync looks at the node again');

  const withNet = empty();
  withNet.Networks.push({ ID: 'n1', Name: 'backend', Subnet: '10.2.0.0/24', Gateway: '10.2.0.1', VNI: 4097, Internal: false, Attachable: false, Ingress: false, Encrypted: false } as NodeNetworkView['Networks'][number]);
  await overlay.update(withNet);
  assert.ok(reads.length >= 12, 'a network to carry: a round');
  await overlay.close();
});

test('after a round that failed, the next view gets a round even when it asks nothing new', async () => {
  const { overlay, reads } = harness();
  let fail = true;
  const inner = (overlay as unknown as { cmd: NodeCommands }).cmd;
  (overlay as unknown as { cmd: NodeCommands }).cmd = {
    readJson: async (cmd, args) => { if (fail) { reads.push('failed'); throw new Error('ip: busy'); } return inner.readJson(cmd, args); },
    runBatch: inner.runBatch,
  };
  await overlay.update(empty());
  assert.ok(reads.includes('failed'));
  fail = false;
  const n = reads.length;
  await overlay.update(empty());
  assert.equal(reads.length, n + 4, 'not settled: a round');
  await overlay.update(empty());
  assert.equal(reads.length, n + 4, 'settled now: nothing new, no round');
  await overlay.close();
});
