import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Network, Node, Service, Task, TaskState } from '../../../src/model/types';
import { KEEP_CLIENT_IP_LABEL } from '../../../src/model/types';
import { AllocatorCore } from '../../../src/manager/allocator/core';
import { listSnapshot, networkViewFor } from '../../../src/manager/dispatcher/network-view';
import { checkNodeNetworkView } from '../../../src/protocol/network-view';
import { checkSessionMessage } from '../../../src/protocol/dispatcher';
import { makeNode } from '../orchestrator/fixtures';
import { makeNetwork, svc, task } from '../allocator/fixtures';

// A small swarm allocated by the allocator's core: ingress, two overlays
// (front, back), nodes n1..n3; web (front+back, port 8080, keeps client IPs),
// db (back, dnsrr), other (an isolated network).
function swarm() {
  const core = new AllocatorCore();
  const networks: Network[] = [];
  const net = (n: Network): void => { const d = core.allocateNetwork(n); assert.ok(d.ok && d.next); core.observeNetwork(n.ID, d.next); networks.push(d.next); };
  net(makeNetwork('ing', { ingress: true, name: 'ingress' }));
  net(makeNetwork('front'));
  net(makeNetwork('back'));
  net(makeNetwork('iso', { name: 'isolated' }));
  const services: Service[] = [];
  const service = (s: Service): Service => { core.observeService(s.ID, s); const d = core.allocateService(s); assert.ok(d.ok); const out = d.next ?? s; core.observeService(s.ID, out); services.push(out); return out; };
  const web = service(svc('web', { networks: ['front', { Target: 'back', Aliases: ['www'] }], ports: [{ target: 80, published: 8080 }], labels: { [KEEP_CLIENT_IP_LABEL]: 'true' } }));
  const db = service(svc('db', { networks: ['back'], dnsrr: true }));
  const other = service(svc('other', { networks: ['isolated'] }));
  const tasks: Task[] = [];
  const place = (s: Service, node: string, state: TaskState = 'running', desired: TaskState = 'running'): Task => {
    const d = core.allocateTask(task(s, { node }), s, 't');
    assert.ok(d.ok && d.next);
    const t = { ...d.next, Status: { ...d.next.Status, State: state }, DesiredState: desired };
    core.observeTask(t.ID, t);
    tasks.push(t);
    return t;
  };
  const nodes: Node[] = [];
  const node = (id: string, addr: string): void => { const n = makeNode(id, { addr }); core.observeNode(id, n); nodes.push(n); };
  node('n1', '192.168.0.1'); node('n2', '192.168.0.2'); node('n3', '192.168.0.3');
  const w1 = place(web, 'n1');
  const w2 = place(web, 'n2', 'starting');
  const d1 = place(db, 'n2');
  const gone = place(db, 'n1', 'shutdown', 'shutdown');
  const o1 = place(other, 'n3');
  // LB addresses after the tasks (the allocator's order).
  for (let i = 0; i < nodes.length; i++) { const d = core.allocateNode(nodes[i]!); if (d.next) { nodes[i] = d.next; core.observeNode(d.next.ID, d.next); } }
  return { networks, services, tasks, nodes, web, db, other, w1, w2, d1, gone, o1, snap: () => listSnapshot({ networks, services, tasks, nodes }) };
}

test('network view: the node\'s networks (its tasks\' and ingress), their services, running endpoints everywhere, every node\'s LB address where it has endpoints', () => {
  const s = swarm();
  const v = networkViewFor('n1', s.snap());
  assert.deepEqual(v.Networks.map((n) => n.Name).sort(), ['back', 'front', 'ingress']);
  const ing = v.Networks.find((n) => n.Ingress)!;
  assert.equal(ing.Subnet, '10.0.0.0/24');
  assert.equal(ing.Gateway, '10.0.0.1');
  assert.equal(ing.VNI, 4097);
  assert.match(ing.LBAddr ?? '', /^10\.0\.0\.\d+$/);
  assert.deepEqual(v.Services.map((x) => x.Name), ['db', 'web']);
  const web = v.Services.find((x) => x.ID === 'web')!;
  assert.equal(web.EndpointMode, 'vip');
  assert.deepEqual(web.VIPs.map((x) => x.NetworkID), ['ing', 'front', 'back']);
  assert.ok(web.VIPs.every((x) => !x.Addr.includes('/')), 'plain addresses');
  assert.deepEqual(web.Ports, [{ Protocol: 'tcp', TargetPort: 80, PublishedPort: 8080, PublishMode: 'ingress' }]);
  assert.deepEqual(web.Aliases, [{ NetworkID: 'back', Aliases: ['www'] }]);
  assert.equal(web.KeepClientIP, true);
  const db = v.Services.find((x) => x.ID === 'db')!;
  assert.equal(db.EndpointMode, 'dnsrr');
  assert.deepEqual(db.VIPs, []);
  assert.equal(db.KeepClientIP, false);
  // Endpoints: web's two tasks on ingress, front and back; db's running one on back; not the shut-down one.
  const eps = v.Endpoints.map((e) => `${e.NetworkID} ${e.TaskID} ${e.NodeAddr} ${e.Running}`);
  assert.equal(eps.length, 7);
  assert.ok(eps.includes(`back ${s.w2.ID} 192.168.0.2 false`), 'a starting task is an endpoint, not running');
  assert.ok(eps.includes(`back ${s.d1.ID} 192.168.0.2 true`));
  assert.ok(!v.Endpoints.some((e) => e.TaskID === s.gone.ID || e.TaskID === s.o1.ID));
  const e1 = v.Endpoints.find((e) => e.TaskID === s.w1.ID && e.NetworkID === 'front')!;
  assert.equal(e1.TaskName, `web.${s.w1.Slot}.${s.w1.ID}`);
  assert.equal(e1.Addr, s.w1.NetworksAttachments!.find((a) => a.Network.ID === 'front')!.Addresses[0]!.split('/')[0]);
  // LB addresses: every node on ingress; n1 and n2 on front/back; n3 not (it only runs `other`).
  assert.deepEqual(v.LoadBalancers.map((l) => `${l.NetworkID} ${l.NodeID}`), ['back n1', 'back n2', 'front n1', 'front n2', 'ing n1', 'ing n2', 'ing n3']);
  // The whole view passes the agent's checks as it is.
  assert.deepEqual(checkNodeNetworkView(JSON.parse(JSON.stringify(v))), v);
});

test('network view: a node sees only its networks (isolation) and ingress; a node with no task sees ingress', () => {
  const s = swarm();
  const v3 = networkViewFor('n3', s.snap());
  assert.deepEqual(v3.Networks.map((n) => n.Name).sort(), ['ingress', 'isolated']);
  assert.deepEqual(v3.Services.map((x) => x.Name), ['other', 'web']); // web publishes on ingress
  assert.ok(v3.Endpoints.every((e) => e.NetworkID === 'ing' || e.NetworkID === 'iso'));
  // No endpoint of n3 on ingress: only its own LB address there (others' matter only to
  // nodes whose tasks answer forwarded connections), so a node joining changes no view of n3.
  assert.deepEqual(v3.LoadBalancers.map((l) => `${l.NetworkID} ${l.NodeID}`), ['ing n3', 'iso n3']);
  const lone = networkViewFor('n9', listSnapshot({ networks: s.networks, services: s.services, tasks: s.tasks, nodes: [...s.nodes, makeNode('n9')] }));
  assert.deepEqual(lone.Networks.map((n) => n.Name), ['ingress']);
  assert.equal(lone.Networks[0]!.LBAddr, undefined, 'not allocated yet');
  const none = networkViewFor('n1', listSnapshot({ networks: [], services: [], tasks: [], nodes: [] }));
  assert.deepEqual(none, { Networks: [], Services: [], Endpoints: [], LoadBalancers: [] });
});

test('checkNodeNetworkView: every field checked; a bad view fails alone in a session message', () => {
  const s = swarm();
  const v = JSON.parse(JSON.stringify(networkViewFor('n1', s.snap())));
  const bad = (mut: (x: any) => void, re: RegExp): void => {
    const c = JSON.parse(JSON.stringify(v));
    mut(c);
    assert.throws(() => checkNodeNetworkView(c), re);
  };
  bad((c) => { c.Networks[0].VNI = 2 ** 24; }, /Networks\[0\]\.VNI/);
  bad((c) => { c.Networks[0].Subnet = '10.0.0.0/33'; }, /Subnet: not an IPv4 CIDR/);
  bad((c) => { c.Networks[0].LBAddr = '10.0.0.256'; }, /LBAddr: not an IPv4 address/);
  bad((c) => { c.Services[0].EndpointMode = 'lb'; }, /EndpointMode/);
  bad((c) => { c.Services[1].Ports[0].PublishedPort = 70000; }, /PublishedPort/);
  bad((c) => { c.Endpoints[0].Running = 'yes'; }, /Running: want a boolean/);
  bad((c) => { c.LoadBalancers[0].Addr = 5; }, /Addr: want a string/);
  bad((c) => { delete c.Endpoints; }, /Endpoints: want an array/);
  const msg = {
    SessionID: 's', Node: { Role: 'worker', Availability: 'active' }, Managers: { Addrs: [] }, HeartbeatMs: 1000, Full: false, More: false,
    Tasks: [], Removed: ['t1'], Services: [], Secrets: [], Configs: [], RemovedSecrets: [], RemovedConfigs: [],
  };
  assert.deepEqual(checkSessionMessage({ ...msg, NetworkView: v }).NetworkView, v);
  const broken = checkSessionMessage({ ...msg, NetworkView: { ...v, Networks: 'x' } });
  assert.equal(broken.NetworkView, undefined);
  assert.match(broken.NetworkViewError ?? '', /NetworkView\.Networks: want an array/);
  assert.deepEqual(broken.Removed, ['t1'], 'the rest of the message still counts');
});

test('network view: keys go only to a node with an encrypted network in its view, and are checked where they enter', () => {
  const s = swarm();
  const back = s.networks.find((n) => n.Spec.Name === 'back')!;
  back.Spec.DriverConfiguration = { Name: 'overlay', Options: { encrypted: '' } };
  const keys = [{ Tag: 1, Key: Buffer.alloc(32, 7).toString('base64'), Primary: true }];
  const n1 = networkViewFor('n1', s.snap(), keys);
  assert.equal(n1.Networks.find((n) => n.Name === 'back')!.Encrypted, true);
  assert.deepEqual(n1.Keys, keys);
  assert.deepEqual(checkNodeNetworkView(JSON.parse(JSON.stringify(n1))), n1);
  const n3 = networkViewFor('n3', s.snap(), keys);
  assert.equal(n3.Keys, undefined, 'n3 has no task on an encrypted network');
  assert.equal(networkViewFor('n1', s.snap()).Keys, undefined, 'no keys made yet');

  const bad = (keysJson: unknown, why: RegExp, view: object = n1): void => assert.throws(() => checkNodeNetworkView({ ...JSON.parse(JSON.stringify(view)), Keys: keysJson }), why);
  bad(keys, /keys without an encrypted network/, n3);
  bad([{ ...keys[0], Key: Buffer.alloc(16).toString('base64') }], /not 32 bytes/);
  bad([{ ...keys[0], Key: '!!not base64!!' }], /not 32 bytes/);
  bad([{ ...keys[0], Primary: false }], /exactly one primary/);
  bad([keys[0], { ...keys[0], Primary: false }], /two keys with one tag/);
  bad([keys[0], { ...keys[0], Tag: 2 }], /exactly one primary/);
  bad([keys[0], { ...keys[0], Tag: 2, Primary: false }, { ...keys[0], Tag: 3, Primary: false }], /NetworkView\.Keys/);
  bad([{ ...keys[0], Tag: 0 }], /Tag/);
});
