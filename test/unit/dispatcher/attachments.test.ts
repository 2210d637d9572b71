import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Network, Task } from '../../../src/model/types';
import { AllocatorCore } from '../../../src/manager/allocator/core';
import { requestedAddressProblem, resolveNetwork } from '../../../src/manager/dispatcher/attachments';
import { listSnapshot, networkViewFor } from '../../../src/manager/dispatcher/network-view';
import { checkNodeNetworkView } from '../../../src/protocol/network-view';
import { isAttachmentTask } from '../../../src/protocol/attachments';
import { NetworkIndex } from '../../../src/manager/dispatcher/network-index';
import { Store } from '../../../src/store/store';
import { MemoryBackend } from '../../../src/store/memory-backend';
import { silentLogger } from '../../../src/common/log';
import { needsScheduling } from '../../../src/manager/scheduler/scheduler';
import { makeNode } from '../orchestrator/fixtures';
import { makeNetwork } from '../allocator/fixtures';
import { buildRecords } from '../../../src/agent/network/dns/records';
import { resolve } from '../../../src/agent/network/dns/resolver';

function attachment(id: string, net: string, node: string, container = 'c1'): Task {
  return {
    ID: id, Version: { Index: 1 }, CreatedAt: 't', UpdatedAt: 't', Labels: {},
    Spec: { NetworkAttachmentSpec: { ContainerID: container }, Networks: [{ Target: net }] },
    ServiceID: '', NodeID: node, DesiredState: 'running', Status: { Timestamp: 't', State: 'new', Message: 'created' },
  };
}

function allocated(core: AllocatorCore, n: Network): Network {
  const d = core.allocateNetwork(n);
  assert.ok(d.ok && d.next);
  core.observeNetwork(n.ID, d.next);
  return d.next;
}

test('an attachment task gets an address like a task, is never scheduled, and shows in every node\'s view under its container\'s name', () => {
  const core = new AllocatorCore();
  const base = makeNetwork('att1', { subnet: '10.9.0.0/24' });
  const net = allocated(core, { ...base, Spec: { ...base.Spec, Attachable: true } });
  const t = attachment('a1', 'att1', 'n2');
  assert.ok(isAttachmentTask(t));
  const d = core.allocateTask(t, undefined, 't');
  assert.ok(d.ok && d.next);
  assert.equal(d.next.Status.State, 'pending');
  assert.deepEqual(d.next.NetworksAttachments?.map((a) => a.Addresses[0]), ['10.9.0.2/24']);
  assert.equal(needsScheduling(d.next), false);
  const nodes = [makeNode('n1', { addr: '192.168.0.1' }), makeNode('n2', { addr: '192.168.0.2' })];
  const snap = listSnapshot({ networks: [net], services: [], tasks: [d.next], nodes });
  // Its node carries the network; the view passes the agent's checks (no service ID).
  const mine = checkNodeNetworkView(JSON.parse(JSON.stringify(networkViewFor('n2', snap))));
  assert.deepEqual(mine.Networks.map((n) => n.ID), ['att1']);
  assert.deepEqual(mine.Endpoints.map((e) => [e.TaskName, e.ServiceID, e.Addr, e.Running]), [['c1', '', '10.9.0.2', false]]);
  // A node without it has no reason to carry the network.
  assert.deepEqual(networkViewFor('n1', snap).Networks, []);
});

test('a container\'s network aliases reach every node\'s view and answer in its DNS with the container\'s name', () => {
  const core = new AllocatorCore();
  const base = makeNetwork('att3', { subnet: '10.7.0.0/24' });
  const net = allocated(core, { ...base, Spec: { ...base.Spec, Attachable: true } });
  const t = attachment('a3', 'att3', 'n2', 'db1');
  t.Spec.Networks = [{ Target: 'att3', Aliases: ['database', 'pg', 'database'] }];
  const d = core.allocateTask(t, undefined, 't');
  assert.ok(d.ok && d.next);
  const svcTask = { ...attachment('s1', 'att3', 'n1'), ServiceID: 'svc1', Spec: { Networks: [{ Target: 'att3', Aliases: ['svc-alias'] }] } } as Task;
  const d2 = core.allocateTask(svcTask, undefined, 't');
  assert.ok(d2.ok && d2.next);
  const nodes = [makeNode('n1', { addr: '192.168.0.1' }), makeNode('n2', { addr: '192.168.0.2' })];
  const snap = listSnapshot({ networks: [net], services: [], tasks: [d.next, d2.next], nodes });
  const view = checkNodeNetworkView(JSON.parse(JSON.stringify(networkViewFor('n1', snap))));
  const e = view.Endpoints.find((x) => x.TaskID === 'a3')!;
  assert.deepEqual(e.Aliases, ['database', 'pg']);
  // A service task's aliases are the service's (ViewService.Aliases), not the endpoint's.
  assert.equal(view.Endpoints.find((x) => x.TaskID === 's1')!.Aliases, undefined);
  const records = buildRecords(view);
  for (const name of ['db1', 'database', 'PG.']) {
    assert.deepEqual(resolve(records, '10.7.0.99', { name, type: 'A' }), { kind: 'a', addrs: [e.Addr] }, name);
  }
  assert.throws(() => checkNodeNetworkView({ ...view, Endpoints: [{ ...e, Aliases: [7] }] }), /Aliases\[0\]/);
});

test('a requested address: refused when outside the subnet, the gateway or held; else kept by the allocator', () => {
  const core = new AllocatorCore();
  const net = allocated(core, makeNetwork('att2', { subnet: '10.8.0.0/29' }));
  const none = { tasks: [], vips: [], lbs: [] };
  assert.match(requestedAddressProblem(net, '10.8.1.3', none)!, /not in the usable range/);
  assert.match(requestedAddressProblem(net, '10.8.0.7', none)!, /not in the usable range/);
  assert.match(requestedAddressProblem(net, '10.8.0.1', none)!, /gateway/);
  assert.match(requestedAddressProblem(net, '10.8.0.3', { ...none, lbs: [{ NetworkID: 'att2', Addr: '10.8.0.3/29' }] })!, /already in use/);
  assert.equal(requestedAddressProblem(net, '10.8.0.5', none), undefined);
  const t = { ...attachment('a2', 'att2', 'n1'), NetworksAttachments: [{ Network: net, Addresses: ['10.8.0.5/29'] }] };
  core.observeTask(t.ID, t);
  const d = core.allocateTask(t, undefined, 't');
  assert.ok(d.ok && d.next);
  assert.deepEqual(d.next.NetworksAttachments?.map((a) => a.Addresses[0]), ['10.8.0.5/29']);
  assert.match(requestedAddressProblem(net, '10.8.0.5', { ...none, tasks: [d.next] })!, /already in use/);
});

test('networks resolve by ID, name and unique ID prefix', () => {
  const a = makeNetwork('abc123'); const b = makeNetwork('abd456', { name: 'front' });
  assert.equal(resolveNetwork([a, b], 'abc123')?.ID, 'abc123');
  assert.equal(resolveNetwork([a, b], 'front')?.ID, 'abd456');
  assert.equal(resolveNetwork([a, b], 'abd')?.ID, 'abd456');
  assert.throws(() => resolveNetwork([a, b], 'ab'), /ambiguous/);
  assert.equal(resolveNetwork([a, b], 'zzz'), undefined);
});

test('naming an attachment (its container\'s name and short ID, set after the engine made it) changes the views of the nodes on its network', async () => {
  const store = await Store.open(new MemoryBackend(), silentLogger);
  const net: Network = { ...makeNetwork('netapp', { subnet: '10.0.1.0/24', name: 'app' }), IPAM: { Configs: [{ Subnet: '10.0.1.0/24', Gateway: '10.0.1.1' }] } };
  const t = { ...attachment('att1', 'netapp', 'n1', ''), NetworksAttachments: [{ Network: net, Addresses: ['10.0.1.7/24'] }] };
  await store.txn().create('networks', net).create('tasks', t).commit();
  const index = new NetworkIndex(store);
  const named: Task = { ...t, Spec: { ...t.Spec, NetworkAttachmentSpec: { ContainerID: 'eager_turing' }, Networks: [{ Target: 'netapp', Aliases: ['0123456789ab'] }] } };
  const touched = index.apply([{ kind: 'tasks', action: 'update', id: 'att1', object: named, previous: t, revision: 2 }]);
  assert.deepEqual([...touched.networks], ['netapp']);
  // The same task again: no view changes.
  const quiet = index.apply([{ kind: 'tasks', action: 'update', id: 'att1', object: named, previous: named, revision: 3 }]);
  assert.equal(quiet.networks.size, 0);
  await store.close();
});

test('a task on no network, before and after, touches no view; one that leaves its network does', async () => {
  const store = await Store.open(new MemoryBackend(), silentLogger);
  const net: Network = { ...makeNetwork('netapp', { subnet: '10.0.1.0/24', name: 'app' }), IPAM: { Configs: [{ Subnet: '10.0.1.0/24', Gateway: '10.0.1.1' }] } };
  const bare: Task = { ...attachment('t1', 'netapp', 'n1'), NetworksAttachments: undefined, Status: { Timestamp: 't', State: 'running', Message: '' } };
  const onNet: Task = { ...bare, ID: 't2', NetworksAttachments: [{ Network: net, Addresses: ['10.0.1.7/24'] }] };
  await store.txn().create('networks', net).create('tasks', bare).create('tasks', onNet).commit();
  const index = new NetworkIndex(store);
  assert.deepEqual([...index.tasksOnNetwork('netapp')].map((t) => t.ID), ['t2']);
  // A status report of a task on no network (most reports): nothing to compute again.
  const quiet = index.apply([{ kind: 'tasks', action: 'update', id: 't1', object: { ...bare, Status: { ...bare.Status, State: 'complete' } }, previous: bare, revision: 2 }]);
  assert.deepEqual([quiet.networks.size, quiet.nodes.size, quiet.all], [0, 0, false]);
  // A task whose attachments are gone is no longer on its network (the shortcut looks at both sides).
  const left = index.apply([{ kind: 'tasks', action: 'update', id: 't2', object: { ...onNet, NetworksAttachments: [] }, previous: onNet, revision: 3 }]);
  assert.deepEqual([...left.networks], ['netapp']);
  assert.deepEqual([...left.nodes], ['n1']);
  assert.deepEqual([...index.tasksOnNetwork('netapp')], []);
  await store.close();
});
