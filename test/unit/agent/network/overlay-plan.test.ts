import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NodeNetworkView, ViewNetwork } from '../../../../src/protocol/network-view';
import { ENGINE_NETWORK_LABEL } from '../../../../src/protocol/network-view';
import { desiredOverlays } from '../../../../src/agent/network/overlay/desired';
import { planOverlays, overlayMtu } from '../../../../src/agent/network/overlay/plan';
import { bridgeName, viewNetworkFromAttachment, vxlanName } from '../../../../src/agent/network/overlay/names';
import { parseAddrs, parseEngineNetworks, parseFdb, parseLinks, parseNeighbours, type ObservedOverlays } from '../../../../src/agent/network/overlay/observed';
import { batchFailures } from '../../../../src/agent/network/overlay/commands';
import { VXLAN_ID_OPTION } from '../../../../src/model/types';

const NET = 'net0000000000000000000001a';
const ME = 'node000000000000000000000a';
const OTHER = 'node000000000000000000000b';
const BR = bridgeName(NET);
const VX = vxlanName(NET);

const network = (extra: Partial<ViewNetwork> = {}): ViewNetwork => ({
  ID: NET, Name: 'app', Subnet: '10.0.1.0/24', Gateway: '10.0.1.1', VNI: 4097,
  Internal: false, Attachable: false, Ingress: false, Encrypted: false, Labels: {}, ...extra,
});

function view(extra: Partial<NodeNetworkView> = {}): NodeNetworkView {
  return {
    Networks: [network()],
    Services: [{ ID: 'svc1', Name: 'web', EndpointMode: 'vip', VIPs: [{ NetworkID: NET, Addr: '10.0.1.2/24' }], Ports: [], Aliases: [], KeepClientIP: false }],
    Endpoints: [
      { TaskID: 't1', TaskName: 'web.1.t1', ServiceID: 'svc1', NodeID: ME, NodeAddr: '10.199.3.11', NetworkID: NET, Addr: '10.0.1.5', Running: true },
      { TaskID: 't2', TaskName: 'web.2.t2', ServiceID: 'svc1', NodeID: OTHER, NodeAddr: '10.199.3.12', NetworkID: NET, Addr: '10.0.1.6', Running: true },
    ],
    LoadBalancers: [
      { NetworkID: NET, NodeID: ME, NodeAddr: '10.199.3.11', Addr: '10.0.1.3' },
      { NetworkID: NET, NodeID: OTHER, NodeAddr: '10.199.3.12', Addr: '10.0.1.4' },
    ],
    ...extra,
  };
}

const empty = (extra: Partial<ObservedOverlays> = {}): ObservedOverlays => ({
  links: new Map(), tunnels: new Map(), addrs: new Map(), neighbours: new Map(), fdb: new Map(), engineNetworks: [], underlayMtu: 1500, ...extra,
});

// What the node looks like once the plan for view() was applied.
const converged = (): ObservedOverlays => empty({
  links: parseLinks([
    { ifname: BR, mtu: 1450, address: '02:42:0a:00:01:03', flags: ['BROADCAST', 'UP'], linkinfo: { info_kind: 'bridge' } },
    { ifname: VX, mtu: 1450, address: 'aa:bb:cc:dd:ee:ff', flags: ['UP'], master: BR, linkinfo: { info_kind: 'vxlan', info_data: { id: 4097, local: '10.199.3.11', port: 4789, learning: false, proxy: true } } },
  ]),
  addrs: parseAddrs([{ ifname: BR, mtu: 1450, addr_info: [{ family: 'inet', local: '10.0.1.1', prefixlen: 24 }, { family: 'inet', local: '10.0.1.3', prefixlen: 32 }, { family: 'inet', local: '10.0.1.2', prefixlen: 32 }] }]).addrs,
  neighbours: parseNeighbours([
    { dst: '10.0.1.4', dev: VX, lladdr: '02:42:0a:00:01:04', state: ['PERMANENT'] },
    { dst: '10.0.1.6', dev: VX, lladdr: '02:42:0a:00:01:06', state: ['PERMANENT'] },
  ]),
  fdb: parseFdb([
    { mac: '02:42:0a:00:01:04', ifname: VX, dst: '10.199.3.12', flags: ['self'], state: 'permanent' },
    { mac: '02:42:0a:00:01:06', ifname: VX, dst: '10.199.3.12', flags: ['self'], state: 'permanent' },
    { mac: 'aa:bb:cc:dd:ee:ff', ifname: VX, master: BR, state: 'permanent' }, // the port's own: not ours to manage
  ]),
  engineNetworks: parseEngineNetworks([{
    Id: 'e1', Name: `shoal-${NET.slice(0, 12)}`, Driver: 'bridge', Internal: false, Labels: { [ENGINE_NETWORK_LABEL]: NET },
    Options: { 'com.docker.network.bridge.name': BR, 'com.docker.network.driver.mtu': '1450' }, IPAM: { Config: [{ Subnet: '10.0.1.0/24', Gateway: '10.0.1.1' }] },
  }]),
});

const plan = (v: NodeNetworkView, observed: ObservedOverlays, nodeAddr?: string) => {
  const d = desiredOverlays({ nodeId: ME, nodeAddr, view: v });
  return { d, p: planOverlays(d.networks, d.nodeAddr, observed, d.tunnel) };
};

test('names fit in 15 characters and are derived from the network ID', () => {
  assert.equal(BR, 'sb-net000000000');
  assert.ok(BR.length <= 15 && VX.length <= 15);
  assert.notEqual(BR, VX);
});

test('desired: LB /32 and VIPs on the bridge; remote tasks and remote LB addresses as entries; local tasks never', () => {
  const { networks, nodeAddr, problems } = desiredOverlays({ nodeId: ME, view: view() });
  assert.equal(nodeAddr, '10.199.3.11', 'the node address comes from the view when not given');
  assert.deepEqual(problems, []);
  assert.equal(networks.length, 1);
  const n = networks[0]!;
  assert.equal(n.lbAddr, '10.0.1.3');
  assert.deepEqual(n.localAddrs, ['10.0.1.2', '10.0.1.3']);
  assert.deepEqual(n.remotes, [
    { addr: '10.0.1.4', mac: '02:42:0a:00:01:04', dst: '10.199.3.12', nodeId: OTHER },
    { addr: '10.0.1.6', mac: '02:42:0a:00:01:06', dst: '10.199.3.12', nodeId: OTHER },
  ]);
});

test('desired: a bad item is left out and named, the rest goes on', () => {
  const v = view({
    Networks: [network(), network({ ID: 'net0000000000000000000002b', Subnet: 'nope' })],
    Endpoints: [...view().Endpoints, { TaskID: 't3', TaskName: 'x', ServiceID: 's', NodeID: OTHER, NodeAddr: 'garbage', NetworkID: NET, Addr: '10.0.1.9', Running: true }],
  });
  const { networks, problems } = desiredOverlays({ nodeId: ME, view: v });
  assert.deepEqual(networks.map((n) => n.id), [NET]);
  assert.equal(problems.length, 2);
  assert.deepEqual(networks[0]!.remotes.map((r) => r.addr), ['10.0.1.4', '10.0.1.6']);
});

test('desired: a remote address that is also a local task\'s is left to the local one; a running task wins over a stopping one', () => {
  const e = view().Endpoints;
  const v = view({
    Endpoints: [
      ...e,
      { TaskID: 't4', TaskName: 'a', ServiceID: 's', NodeID: OTHER, NodeAddr: '10.199.3.12', NetworkID: NET, Addr: '10.0.1.5', Running: true },
      { TaskID: 't5', TaskName: 'b', ServiceID: 's', NodeID: OTHER, NodeAddr: '10.199.3.12', NetworkID: NET, Addr: '10.0.1.7', Running: false },
      { TaskID: 't6', TaskName: 'c', ServiceID: 's', NodeID: 'node000000000000000000000c', NodeAddr: '10.199.3.13', NetworkID: NET, Addr: '10.0.1.7', Running: true },
    ],
  });
  const r = desiredOverlays({ nodeId: ME, view: v }).networks[0]!.remotes;
  assert.deepEqual(r.map((x) => `${x.addr}@${x.dst}`), ['10.0.1.4@10.199.3.12', '10.0.1.6@10.199.3.12', '10.0.1.7@10.199.3.13']);
});

test('plan from nothing: bridge with the LB MAC, VXLAN port, engine network, then /32s and entries', () => {
  const { p } = plan(view(), empty());
  assert.equal(p.mtu, 1450);
  const n = p.networks[0]!;
  assert.deepEqual(n.links, [
    `link add name ${BR} address 02:42:0a:00:01:03 mtu 1450 type bridge`,
    `link set dev ${BR} up`,
    `link add name ${VX} mtu 1450 type vxlan id 4097 local 10.199.3.11 dstport 4789 nolearning proxy`,
    `link set dev ${VX} master ${BR}`,
    `link set dev ${VX} up`,
  ]);
  assert.deepEqual(n.engineCreate, {
    Name: `shoal-${NET.slice(0, 12)}`, CheckDuplicate: true, Driver: 'bridge', Internal: false,
    IPAM: { Driver: 'default', Config: [{ Subnet: '10.0.1.0/24', Gateway: '10.0.1.1' }] },
    Options: { 'com.docker.network.bridge.name': BR, 'com.docker.network.driver.mtu': '1450' },
    Labels: { [ENGINE_NETWORK_LABEL]: NET },
  });
  assert.deepEqual(n.ip, [
    `addr add 10.0.1.2/32 dev ${BR}`,
    `addr add 10.0.1.3/32 dev ${BR}`,
    `neigh replace 10.0.1.4 lladdr 02:42:0a:00:01:04 dev ${VX} nud permanent`,
    `neigh replace 10.0.1.6 lladdr 02:42:0a:00:01:06 dev ${VX} nud permanent`,
  ]);
  assert.deepEqual(n.fdb, [
    `fdb append 02:42:0a:00:01:04 dev ${VX} dst 10.199.3.12 self`,
    `fdb append 02:42:0a:00:01:06 dev ${VX} dst 10.199.3.12 self`,
  ]);
  assert.deepEqual(p.teardown, []);
});

test('plan on a converged node: nothing to do', () => {
  const { p } = plan(view(), converged());
  assert.deepEqual(p.networks, [{ networkId: NET, encrypted: false, links: [], engineRemove: [], ip: [], fdb: [] }]);
  assert.deepEqual(p.teardown, []);
});

test('an endpoint that leaves the view loses its neighbour and FDB entries; one that moved gets the new remote', () => {
  const v = view({
    Endpoints: [
      view().Endpoints[0]!,
      { TaskID: 't2', TaskName: 'web.2.t2', ServiceID: 'svc1', NodeID: 'node000000000000000000000c', NodeAddr: '10.199.3.13', NetworkID: NET, Addr: '10.0.1.4', Running: true },
    ],
    LoadBalancers: [view().LoadBalancers[0]!],
  });
  const n = plan(v, converged()).p.networks[0]!;
  assert.deepEqual(n.ip, [`neigh del 10.0.1.6 dev ${VX}`]);
  assert.deepEqual(n.fdb, [
    `fdb del 02:42:0a:00:01:04 dev ${VX} dst 10.199.3.12 self`,
    `fdb append 02:42:0a:00:01:04 dev ${VX} dst 10.199.3.13 self`,
    `fdb del 02:42:0a:00:01:06 dev ${VX} dst 10.199.3.12 self`,
  ]);
});

test('a VIP that goes is removed from the bridge; the gateway is left to the engine', () => {
  const n = plan(view({ Services: [] }), converged()).p.networks[0]!;
  assert.deepEqual(n.ip, [`addr del 10.0.1.2/32 dev ${BR}`]);
});

test('a VXLAN port with other parameters is made again, entries included; a wrong MTU, MAC or state is fixed in place', () => {
  const o = converged();
  o.links.get(VX)!.vxlan!.learning = true;
  o.links.get(BR)!.mtu = 1500;
  o.links.get(BR)!.up = false;
  o.links.get(BR)!.mac = '11:22:33:44:55:66';
  const n = plan(view(), o).p.networks[0]!;
  assert.deepEqual(n.links, [
    `link set dev ${BR} address 02:42:0a:00:01:03`, `link set dev ${BR} mtu 1450`, `link set dev ${BR} up`,
    `link del dev ${VX}`,
    `link add name ${VX} mtu 1450 type vxlan id 4097 local 10.199.3.11 dstport 4789 nolearning proxy`, `link set dev ${VX} master ${BR}`, `link set dev ${VX} up`,
  ]);
  assert.equal(n.fdb.length, 2, 'entries are added again on the new port');
});

test('an engine network that does not match is removed and made again', () => {
  const o = converged();
  o.engineNetworks[0]!.internal = true;
  const n = plan(view(), o).p.networks[0]!;
  assert.deepEqual(n.engineRemove, ['e1']);
  assert.ok(n.engineCreate);
});

test('a network no longer needed: engine network first, then the VXLAN port and the bridge', () => {
  const { p } = plan(view({ Networks: [], Endpoints: [], LoadBalancers: [], Services: [] }), converged(), '10.199.3.11');
  assert.deepEqual(p.networks, []);
  assert.deepEqual(p.teardown, [{ key: NET.slice(0, 12), networkId: NET, engineNetworks: ['e1'], links: [`link del dev ${VX}`, `link del dev ${BR}`] }]);
});

test('without the node address: no VXLAN port, said so', () => {
  const { p } = plan(view({ LoadBalancers: [], Endpoints: [] }), empty());
  assert.equal(p.networks[0]!.links.length, 2);
  assert.match(p.problems[0]!, /data-path address/);
});

test('MTU: underlay − 50, 1450 when the underlay is unknown', () => {
  assert.equal(overlayMtu(9000), 8950);
  assert.equal(overlayMtu(undefined), 1450);
  assert.equal(parseAddrs([{ ifname: 'eth0', mtu: 1400, addr_info: [{ family: 'inet', local: '10.199.3.11', prefixlen: 24 }] }], '10.199.3.11').underlayMtu, 1400);
});

test('observed: only Shoal devices, permanent neighbours, remote FDB entries and labelled engine networks count', () => {
  assert.deepEqual([...parseLinks([{ ifname: 'eth0', linkinfo: { info_kind: 'veth' } }, { ifname: 'sb-', linkinfo: {} }, 'junk']).keys()], []);
  assert.equal(parseNeighbours([{ dst: '10.0.1.9', dev: VX, lladdr: '02:42:0a:00:01:09', state: ['REACHABLE'] }]).size, 0);
  assert.equal(parseEngineNetworks([{ Id: 'x', Name: 'bridge', Labels: {} }, null]).length, 0);
});

test('a task attachment gives the network in the view\'s shape; one without allocation is refused', () => {
  const n = viewNetworkFromAttachment({
    ID: NET, Version: { Index: 1 }, CreatedAt: '', UpdatedAt: '',
    Spec: { Name: 'app', Internal: true, Labels: { a: 'b' } },
    DriverState: { Name: 'overlay', Options: { [VXLAN_ID_OPTION]: '4097' } },
    IPAM: { Configs: [{ Subnet: '10.0.1.0/24', Gateway: '10.0.1.1' }] },
  });
  assert.deepEqual(n, network({ Internal: true, Labels: { a: 'b' } }));
  const bad = viewNetworkFromAttachment({ ID: NET, Version: { Index: 1 }, CreatedAt: '', UpdatedAt: '', Spec: { Name: 'app' } });
  assert.ok(bad instanceof Error && /no allocated subnet/.test(bad.message));
});

test('batch failures name the failed lines', () => {
  const f = batchFailures(['a', 'b', 'c'], 'Cannot find device "x"\nCommand failed -:2\nRTNETLINK answers: File exists\nCommand failed -:3\n', 1);
  assert.deepEqual(f, [{ line: 'b', error: 'Cannot find device "x"' }, { line: 'c', error: 'RTNETLINK answers: File exists' }]);
});
