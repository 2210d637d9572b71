import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../../src/common/log';
import { MemoryBackend } from '../../../src/store/memory-backend';
import { Store } from '../../../src/store/store';
import { startAllocator } from '../../../src/manager/allocator/loop';
import { AllocatorCore } from '../../../src/manager/allocator/core';
import { makeNode } from '../orchestrator/fixtures';
import { untilStore as until } from '../../helpers/store-wait';
import { addrs, makeNetwork, svc, task } from './fixtures';

test('loop: networks, VIPs and task addresses written; a full /29 leaves tasks new with the reason until an address is released; a new leader goes on without duplicates', async () => {
  const store = await Store.open(new MemoryBackend(), silentLogger);
  let alloc = startAllocator({ store, log: silentLogger });
  try {
    await store.txn().create('networks', makeNetwork('small', { subnet: '10.9.0.0/29', name: 'tiny' })).create('nodes', makeNode('n1')).commit();
    await until(store, () => !!store.get('networks', 'small')?.IPAM, 'the network allocated');
    const s = svc('web', { networks: ['tiny'], dnsrr: true });
    await store.txn().create('services', s).commit();
    const tasks = Array.from({ length: 6 }, () => task(s));
    const txn = store.txn();
    for (const t of tasks) txn.create('tasks', t);
    await txn.commit();
    await alloc.settled();
    await until(store, () => tasks.every((t) => { const cur = store.get('tasks', t.ID)!; return cur.Status.State === 'pending' || !!cur.Status.Err; }), 'every task decided');
    const pending = tasks.map((t) => store.get('tasks', t.ID)!).filter((t) => t.Status.State === 'pending');
    const waiting = tasks.map((t) => store.get('tasks', t.ID)!).filter((t) => t.Status.State === 'new');
    assert.equal(pending.length, 5);
    assert.equal(waiting.length, 1);
    assert.match(waiting[0]!.Status.Err ?? '', /network tiny: could not find an available IP$/);
    assert.equal(new Set(pending.flatMap(addrs)).size, 5);

    // The leader changes: a new allocator rebuilds from the store.
    alloc.stop();
    alloc = startAllocator({ store, log: silentLogger });
    await alloc.settled();
    assert.equal(store.get('tasks', waiting[0]!.ID)!.Status.State, 'new', 'still no address');
    // A task ends: the waiting one gets its address.
    const done = pending[2]!;
    await store.mutate('tasks', done.ID, (t) => { t.Status = { ...t.Status, State: 'failed' }; return t; });
    await until(store, () => store.get('tasks', waiting[0]!.ID)!.Status.State === 'pending', 'the waiting task allocated');
    const now = store.get('tasks', waiting[0]!.ID)!;
    assert.deepEqual(addrs(now), addrs(done));
    assert.equal(now.Status.Err, undefined);
    const live = store.list('tasks').filter((t) => t.Status.State === 'pending').flatMap(addrs);
    assert.equal(new Set(live).size, live.length, 'no address held twice');
  } finally {
    alloc.stop();
    await store.close();
  }
});

test('loop: the ingress network gives every node a load-balancer address, and a published port is chosen', async () => {
  const store = await Store.open(new MemoryBackend(), silentLogger);
  const alloc = startAllocator({ store, log: silentLogger });
  try {
    await store.txn().create('nodes', makeNode('n1')).create('nodes', makeNode('n2')).commit();
    await store.txn().create('networks', makeNetwork('ing', { ingress: true, name: 'ingress' })).commit();
    await until(store, () => ['n1', 'n2'].every((id) => store.get('nodes', id)!.Attachments?.[0]?.Network.ID === 'ing'), 'LB addresses on ingress');
    const lbs = ['n1', 'n2'].map((id) => store.get('nodes', id)!.Attachments![0]!.Addresses[0]);
    assert.notEqual(lbs[0], lbs[1]);
    await store.txn().create('services', svc('web', { ports: [{ target: 80 }] })).commit();
    await until(store, () => !!store.get('services', 'web')?.Endpoint.VirtualIPs, 'VIP on ingress');
    const web = store.get('services', 'web')!;
    assert.equal(web.Endpoint.Ports?.[0]?.PublishedPort, 30000);
    assert.equal(web.Endpoint.VirtualIPs?.[0]?.NetworkID, 'ing');
    assert.match(web.Endpoint.VirtualIPs?.[0]?.Addr ?? '', /^10\.0\.0\.\d+\/24$/);
  } finally {
    alloc.stop();
    await store.close();
  }
});

test('loop: tasks holding no network address never send their node to be decided again; a task on a network sends its node', async () => {
  const store = await Store.open(new MemoryBackend(), silentLogger);
  // Which nodes the allocator decides, by a spy on its core.
  const decided: string[] = [];
  const allocateNode = AllocatorCore.prototype.allocateNode;
  AllocatorCore.prototype.allocateNode = function (this: AllocatorCore, n) { decided.push(n.ID); return allocateNode.call(this, n); };
  const alloc = startAllocator({ store, log: silentLogger });
  try {
    // An ingress of one address: n1 takes it, n2 gets none (parked, as at
    // 5,000 nodes on Docker's /24).
    await store.txn().create('networks', makeNetwork('ing', { ingress: true, name: 'ingress', subnet: '10.9.0.0/30' })).create('networks', makeNetwork('app', { subnet: '10.8.0.0/24' })).commit();
    await store.txn().create('nodes', makeNode('n1')).commit();
    await until(store, () => store.get('nodes', 'n1')!.Attachments?.length === 1, 'n1 on ingress');
    await store.txn().create('nodes', makeNode('n2')).commit();
    await alloc.settled();
    assert.equal(store.get('nodes', 'n2')!.Attachments, undefined, 'the ingress is full');
    decided.length = 0;

    const plain = svc('plain');
    await store.txn().create('services', plain).commit();
    for (let round = 0; round < 3; round++) {
      const txn = store.txn();
      for (const node of ['n1', 'n2']) for (let i = 0; i < 5; i++) txn.create('tasks', task(plain, { node, state: 'assigned' }));
      await txn.commit();
      await alloc.settled();
    }
    for (const t of store.list('tasks')) await store.mutate('tasks', t.ID, (x) => { x.Status = { ...x.Status, State: 'running' }; return x; });
    await alloc.settled();
    assert.equal(decided.length, 0, `no node decided again for tasks without networks: ${decided.join(' ')}`);

    const onApp = svc('onapp', { networks: ['app'] });
    await store.txn().create('services', onApp).commit();
    const t = task(onApp, { node: 'n1' });
    await store.txn().create('tasks', t).commit();
    await until(store, () => store.get('nodes', 'n1')!.Attachments?.some((a) => a.Network.ID === 'app') ?? false, 'n1 given an address on app');
    assert.ok(decided.includes('n1'));
    assert.ok(!decided.includes('n2'), 'n2 has no task on app');
  } finally {
    AllocatorCore.prototype.allocateNode = allocateNode;
    alloc.stop();
    await store.close();
  }
});
