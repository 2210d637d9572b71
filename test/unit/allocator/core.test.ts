import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Network, Service, Task } from '../../../src/model/types';
import { VXLAN_ID_OPTION } from '../../../src/model/types';
import { AllocatorCore, NO_IP, NO_VIP } from '../../../src/manager/allocator/core';
import { POOL_OVERLAPS } from '../../../src/manager/allocator/subnets';
import { portConflict } from '../../../src/manager/allocator/ports';
import { makeNode } from '../orchestrator/fixtures';
import { addrs, makeNetwork, svc, task } from './fixtures';

const NOW = '2026-12-02T00:00:00.000Z';

// Allocates a network and records it as stored.
function net(core: AllocatorCore, n: Network): Network {
  const d = core.allocateNetwork(n);
  assert.ok(d.ok && d.next, `network ${n.ID} allocated`);
  core.observeNetwork(n.ID, d.next);
  return d.next;
}
function service(core: AllocatorCore, s: Service): Service {
  core.observeService(s.ID, s);
  const d = core.allocateService(s);
  assert.ok(d.ok, d.ok ? '' : d.error);
  const out = d.next ?? s;
  core.observeService(s.ID, out);
  return out;
}
function alloc(core: AllocatorCore, t: Task, s: Service): Task {
  const d = core.allocateTask(t, s, NOW);
  assert.ok(d.ok && d.next, d.ok ? 'no decision' : d.error);
  core.observeTask(t.ID, d.next);
  return d.next;
}

test('networks: the next free /24 of the default pool, gateway .1, VNIs from 4097; user subnets never overlapped', () => {
  const core = new AllocatorCore();
  core.setSettings({ defaultAddrPool: ['10.0.0.0/8'], subnetSize: 24 });
  const a = net(core, makeNetwork('a'));
  assert.deepEqual(a.IPAM?.Configs, [{ Subnet: '10.0.0.0/24', Gateway: '10.0.0.1' }]);
  assert.deepEqual(a.DriverState, { Name: 'overlay', Options: { [VXLAN_ID_OPTION]: '4097' } });
  const u = net(core, makeNetwork('u', { subnet: '10.0.1.0/24', gateway: '10.0.1.254' }));
  assert.equal(u.IPAM?.Configs?.[0]?.Gateway, '10.0.1.254');
  assert.equal(u.DriverState?.Options?.[VXLAN_ID_OPTION], '4098');
  const b = net(core, makeNetwork('b'));
  assert.equal(b.IPAM?.Configs?.[0]?.Subnet, '10.0.2.0/24', 'skips the user subnet');
  const clash = core.allocateNetwork(makeNetwork('c', { subnet: '10.0.2.128/25' }));
  assert.deepEqual(clash, { ok: false, error: POOL_OVERLAPS });
  // A removed network gives back its subnet at once, its VNI after the others (next-fit).
  core.observeNetwork('a', undefined);
  const d = net(core, makeNetwork('d'));
  assert.equal(d.IPAM?.Configs?.[0]?.Subnet, '10.0.0.0/24');
  assert.equal(d.DriverState?.Options?.[VXLAN_ID_OPTION], '4100');
});

test('a /29 runs out: the task stays new with the network named; a released address is handed out again', () => {
  const core = new AllocatorCore();
  net(core, makeNetwork('small', { subnet: '10.9.0.0/29', name: 'tiny' }));
  const s = service(core, svc('web', { networks: ['small'] })); // a VIP: .2
  assert.deepEqual(s.Endpoint.VirtualIPs, [{ NetworkID: 'small', Addr: '10.9.0.2/29' }]);
  // .0 network, .1 gateway, .7 broadcast, .2 the VIP: four left.
  const tasks = [1, 2, 3, 4].map(() => alloc(core, task(s), s));
  assert.deepEqual(tasks.flatMap(addrs), ['10.9.0.3/29', '10.9.0.4/29', '10.9.0.5/29', '10.9.0.6/29']);
  assert.equal(tasks[0]!.Status.State, 'pending');
  assert.equal(tasks[0]!.Status.Message, 'pending task scheduling');
  assert.equal(tasks[0]!.NetworksAttachments![0]!.Network.ID, 'small');
  const fifth = task(s);
  const d = core.allocateTask(fifth, s, NOW);
  assert.ok(!d.ok);
  assert.match(d.error, /network tiny: could not find an available IP$/);
  assert.ok(d.error.endsWith(NO_IP));
  // The second task fails: its address is free again once it is over.
  core.observeTask(tasks[1]!.ID, { ...tasks[1]!, Status: { ...tasks[1]!.Status, State: 'failed' } });
  assert.deepEqual(addrs(alloc(core, fifth, s)), ['10.9.0.4/29']);
  assert.deepEqual(core.usage('small'), { inUse: 5, capacity: 5 });
  // A service that cannot get a VIP: its error, and its tasks wait with it.
  const s2 = svc('api', { networks: ['small'] });
  core.observeService(s2.ID, s2);
  const v = core.allocateService(s2);
  assert.ok(!v.ok && v.error.endsWith(NO_VIP) && v.error.includes('network tiny'));
  const t2 = core.allocateTask(task(s2), s2, NOW);
  assert.ok(!t2.ok && t2.error.endsWith(NO_VIP));
  // Removing the first service frees its VIP.
  core.observeService('web', undefined);
  assert.ok(core.allocateService(s2).ok);
});

test('a new leader rebuilds the pools from the store and never hands out an address twice', () => {
  const first = new AllocatorCore();
  const stored: { networks: Network[]; services: Service[]; tasks: Task[] } = { networks: [], services: [], tasks: [] };
  stored.networks.push(net(first, makeNetwork('ing', { ingress: true })), net(first, makeNetwork('back')));
  const s = service(first, svc('web', { networks: [{ Target: 'back', Aliases: ['www'] }], ports: [{ target: 80 }] }));
  stored.services.push(s);
  for (let i = 0; i < 20; i++) stored.tasks.push(alloc(first, task(s), s));
  // Some finished tasks still carry addresses in the store: those are free.
  stored.tasks[3] = { ...stored.tasks[3]!, Status: { ...stored.tasks[3]!.Status, State: 'shutdown' } };
  const node = makeNode('n1');
  first.observeNode('n1', node);
  const lb = first.allocateNode(node).next!;

  const second = new AllocatorCore();
  for (const n of stored.networks) assert.deepEqual(second.observeNetwork(n.ID, n), []);
  for (const x of stored.services) assert.deepEqual(second.observeService(x.ID, x), []);
  assert.deepEqual(second.observeNode('n1', lb), []);
  for (const t of stored.tasks) assert.deepEqual(second.observeTask(t.ID, t), []);
  assert.deepEqual(second.allocateService(s), { ok: true }, 'the service is as it was');
  const used = new Set([...stored.tasks.filter((t) => t.Status.State !== 'shutdown').flatMap(addrs), ...s.Endpoint.VirtualIPs!.map((v) => v.Addr), ...lb.Attachments!.flatMap((a) => a.Addresses)]);
  const fresh = Array.from({ length: 30 }, () => alloc(second, task(s), s));
  const taken = new Set(used);
  for (const a of fresh.slice(1).flatMap(addrs)) { assert.ok(!taken.has(a), `${a} handed out twice`); taken.add(a); }
  // Only the finished task's addresses are given out again (first, as the pools start over).
  assert.deepEqual(addrs(fresh[0]), addrs(stored.tasks[3]));
  const stillUsed = new Set(stored.tasks.filter((t) => t.Status.State !== 'shutdown').flatMap(addrs));
  for (const a of fresh.flatMap(addrs)) assert.ok(!stillUsed.has(a));
  // The next network does not reuse a subnet or VNI.
  const third = net(second, makeNetwork('more'));
  assert.equal(third.IPAM?.Configs?.[0]?.Subnet, '10.0.2.0/24');
  assert.equal(third.DriverState?.Options?.[VXLAN_ID_OPTION], '4099');
});

test('ingress: a service with an ingress port gets a VIP there and its tasks an ingress address first; every node an LB address', () => {
  const core = new AllocatorCore();
  const ing = net(core, makeNetwork('ing', { ingress: true, name: 'ingress' }));
  net(core, makeNetwork('back'));
  const s = service(core, svc('web', { networks: [{ Target: 'back', Aliases: ['www', 'w'] }], ports: [{ target: 80, published: 8080 }] }));
  assert.deepEqual(s.Endpoint.VirtualIPs?.map((v) => v.NetworkID), ['ing', 'back']);
  assert.deepEqual(s.Endpoint.Ports, [{ Protocol: 'tcp', TargetPort: 80, PublishedPort: 8080, PublishMode: 'ingress' }]);
  const t = alloc(core, task(s, { node: 'n1' }), s);
  assert.deepEqual(t.NetworksAttachments?.map((a) => [a.Network.ID, a.Aliases]), [['ing', undefined], ['back', ['www', 'w']]]);
  assert.equal(t.NetworksAttachments![0]!.Network.Spec.Name, ing.Spec.Name);
  // Node n1 runs the task: LB addresses on ingress and back; n2 only on ingress.
  const n1 = makeNode('n1');
  const n2 = makeNode('n2');
  const a1 = core.allocateNode(n1).next!;
  const a2 = core.allocateNode(n2).next!;
  assert.deepEqual(a1.Attachments?.map((a) => a.Network.ID), ['ing', 'back']);
  assert.deepEqual(a2.Attachments?.map((a) => a.Network.ID), ['ing']);
  core.observeNode('n1', a1);
  assert.equal(core.allocateNode(a1).next, undefined, 'unchanged');
  // The task ends: n1 gives back its address on back.
  core.observeTask(t.ID, { ...t, Status: { ...t.Status, State: 'complete' } });
  assert.deepEqual(core.allocateNode(a1).next!.Attachments?.map((a) => a.Network.ID), ['ing']);
});

test('published ports: chosen from 30000 and kept across updates; a port taken by another service is refused with Docker\'s text', () => {
  const core = new AllocatorCore();
  const a = service(core, svc('a', { ports: [{ target: 80 }, { target: 53, protocol: 'udp' }, { target: 22, published: 2222, mode: 'host' }] }));
  assert.deepEqual(a.Endpoint.Ports, [
    { Protocol: 'tcp', TargetPort: 80, PublishedPort: 30000, PublishMode: 'ingress' },
    { Protocol: 'udp', TargetPort: 53, PublishedPort: 30000, PublishMode: 'ingress' },
    { Protocol: 'tcp', TargetPort: 22, PublishedPort: 2222, PublishMode: 'host' },
  ]);
  const b = service(core, svc('b', { ports: [{ target: 80 }] }));
  assert.equal(b.Endpoint.Ports?.[0]?.PublishedPort, 30001);
  // An update that adds a port keeps the chosen one.
  const upd: Service = { ...a, Spec: svc('a', { ports: [{ target: 443 }, { target: 80 }, { target: 53, protocol: 'udp' }] }).Spec };
  core.observeService('a', upd);
  const a2 = core.allocateService(upd);
  assert.ok(a2.ok && a2.next);
  assert.deepEqual(a2.next.Endpoint.Ports?.map((p) => p.PublishedPort), [30002, 30000, 30000]);
  // Another service asking for b's port (a create that raced the API's check).
  const c = svc('c', { ports: [{ target: 80, published: 30001 }] });
  core.observeService('c', c);
  assert.deepEqual(core.allocateService(c), { ok: false, error: "port '30001' is already in use by service 'b' (b) as an ingress port" });
  // The API's check, with Docker's texts.
  assert.equal(portConflict(c.Spec, undefined, [a2.next, b]), "port '30001' is already in use by service 'b' (b) as an ingress port");
  assert.equal(portConflict(svc('d', { ports: [{ target: 1, published: 2222 }] }).Spec, undefined, [a]), "port '2222' is already in use by service 'a' (a) as a host-published port");
  assert.equal(portConflict(svc('d', { ports: [{ target: 1, published: 2222, mode: 'host' }] }).Spec, undefined, [a]), undefined, 'host ports may be shared');
  assert.equal(portConflict(b.Spec, 'b', [b]), undefined, 'an update of the same service');
  // Removing b frees its port.
  core.observeService('b', undefined);
  assert.ok(core.allocateService(c).ok);
});

test('dnsrr: no VIP, tasks still get addresses; a service without networks goes straight to pending', () => {
  const core = new AllocatorCore();
  net(core, makeNetwork('ing', { ingress: true }));
  net(core, makeNetwork('back'));
  const s = service(core, svc('dns', { networks: ['back'], dnsrr: true, ports: [{ target: 80, published: 8080, mode: 'host' }] }));
  assert.equal(s.Endpoint.VirtualIPs, undefined);
  assert.deepEqual(s.Endpoint.Ports, [{ Protocol: 'tcp', TargetPort: 80, PublishedPort: 8080, PublishMode: 'host' }]);
  const t = alloc(core, task(s), s);
  assert.deepEqual(t.NetworksAttachments?.map((a) => a.Network.ID), ['back']);
  const plain = service(core, svc('plain'));
  const p = alloc(core, task(plain), plain);
  assert.equal(p.NetworksAttachments, undefined);
  assert.equal(p.Status.State, 'pending');
  // Not for tasks that are not wanted or already past new.
  assert.deepEqual(core.allocateTask(task(plain, { desired: 'shutdown' }), plain, NOW), { ok: true });
  assert.deepEqual(core.allocateTask(task(plain, { state: 'pending' }), plain, NOW), { ok: true });
  // A task on a network not allocated yet waits, naming it.
  const n = makeNetwork('later', { name: 'later' });
  core.observeNetwork('later', n);
  const w = svc('w', { networks: ['later'], dnsrr: true });
  const d = core.allocateTask(task(w), w, NOW);
  assert.ok(!d.ok && /network later attached to task \S+ not allocated yet/.test(d.error));
});
