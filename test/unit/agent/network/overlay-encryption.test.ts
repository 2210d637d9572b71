import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { NodeNetworkView, ViewKey, ViewNetwork } from '../../../../src/protocol/network-view';
import { desiredOverlays } from '../../../../src/agent/network/overlay/desired';
import { planOverlays } from '../../../../src/agent/network/overlay/plan';
import { bridgeName, vxlanName } from '../../../../src/agent/network/overlay/names';
import { keyPairFromSecret, nodeKeyPair, tunnelAddr, tunnelName, TUNNEL_PORT } from '../../../../src/agent/network/overlay/encryption';
import { parseLinks, parseTunnels, type ObservedOverlays } from '../../../../src/agent/network/overlay/observed';
import { Tunnel, type TunnelDeps } from '../../../../src/agent/network/overlay/tunnel';

const NET = 'net0000000000000000000001a';
const PLAIN = 'net0000000000000000000002b';
const ME = 'node000000000000000000000a';
const OTHER = 'node000000000000000000000b';
const THIRD = 'node000000000000000000000c';
const KEY = randomBytes(32);
const keys = (k: Buffer = KEY): ViewKey[] => [{ Tag: 1, Key: k.toString('base64'), Primary: true }];

const network = (id: string, encrypted: boolean, subnet: string): ViewNetwork => ({
  ID: id, Name: id.slice(-2), Subnet: `${subnet}.0/24`, Gateway: `${subnet}.1`, VNI: encrypted ? 4097 : 4098,
  Internal: false, Attachable: false, Ingress: false, Encrypted: encrypted, Labels: {},
});

// This node and OTHER on the encrypted network; THIRD only on a plain one.
function view(extra: Partial<NodeNetworkView> = {}): NodeNetworkView {
  return {
    Networks: [network(NET, true, '10.0.1'), network(PLAIN, false, '10.0.2')],
    Services: [],
    Endpoints: [
      { TaskID: 't1', TaskName: 'a.1.t1', ServiceID: 's', NodeID: OTHER, NodeAddr: '10.199.3.12', NetworkID: NET, Addr: '10.0.1.6', Running: true },
      { TaskID: 't2', TaskName: 'b.1.t2', ServiceID: 's', NodeID: THIRD, NodeAddr: '10.199.3.13', NetworkID: PLAIN, Addr: '10.0.2.6', Running: true },
    ],
    LoadBalancers: [
      { NetworkID: NET, NodeID: ME, NodeAddr: '10.199.3.11', Addr: '10.0.1.3' },
      { NetworkID: PLAIN, NodeID: ME, NodeAddr: '10.199.3.11', Addr: '10.0.2.3' },
    ],
    Keys: keys(),
    ...extra,
  };
}

const empty = (extra: Partial<ObservedOverlays> = {}): ObservedOverlays => ({
  links: new Map(), tunnels: new Map(), addrs: new Map(), neighbours: new Map(), fdb: new Map(), engineNetworks: [], underlayMtu: 1500, ...extra,
});

const plan = (v: NodeNetworkView, observed: ObservedOverlays) => {
  const d = desiredOverlays({ nodeId: ME, view: v });
  return { d, p: planOverlays(d.networks, d.nodeAddr, observed, d.tunnel) };
};

test('key pairs: X25519 as RFC 7748 computes it; one per node and data-path key, the same wherever derived', () => {
  // RFC 7748 section 6.1, Alice.
  const alice = keyPairFromSecret(Buffer.from('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a', 'hex'));
  assert.equal(Buffer.from(alice.publicKey, 'base64').toString('hex'), '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
  const a = nodeKeyPair(KEY, ME);
  assert.deepEqual(nodeKeyPair(Buffer.from(KEY), ME), a);
  assert.notEqual(nodeKeyPair(KEY, OTHER).publicKey, a.publicKey);
  assert.notEqual(nodeKeyPair(randomBytes(32), ME).publicKey, a.publicKey);
  assert.equal(Buffer.from(a.privateKey, 'base64').length, 32);
});

test('tunnel addresses embed the data-path address in fdc5:4f41:1::/96; names fit in 15 characters', () => {
  assert.equal(tunnelAddr('10.199.3.11'), 'fdc5:4f41:1::ac7:30b');
  assert.equal(tunnelAddr('192.168.0.1'), 'fdc5:4f41:1::c0a8:1');
  assert.throws(() => tunnelAddr('fe80::1'), /not an IPv4 address/);
  assert.equal(tunnelName(ME), 'sw-node00000000');
  assert.ok(tunnelName(ME).length <= 15);
});

test('an encrypted network: the tunnel first, with a peer for each remote node of encrypted networks; VXLAN between tunnel addresses', () => {
  const { d, p } = plan(view(), empty());
  assert.deepEqual(d.problems, []);
  const t = p.tunnel!;
  assert.equal(t.name, tunnelName(ME));
  assert.equal(t.create, true);
  assert.deepEqual(t.ip, [
    `addr replace fdc5:4f41:1::ac7:30b/96 dev ${t.name} nodad`,
    `link set dev ${t.name} mtu 1440`,
    `link set dev ${t.name} up`,
  ]);
  // THIRD shares only the plain network: no peer.
  assert.equal(t.config, [
    '[Interface]', `PrivateKey = ${nodeKeyPair(KEY, ME).privateKey}`, `ListenPort = ${TUNNEL_PORT}`, '',
    '[Peer]', `PublicKey = ${nodeKeyPair(KEY, OTHER).publicKey}`, `Endpoint = 10.199.3.12:${TUNNEL_PORT}`, 'AllowedIPs = fdc5:4f41:1::ac7:30c/128', 'PersistentKeepalive = 25',
  ].join('\n') + '\n');

  const enc = p.networks.find((n) => n.networkId === NET)!;
  assert.ok(enc.links.includes(`link add name ${vxlanName(NET)} mtu 1370 type vxlan id 4097 local fdc5:4f41:1::ac7:30b dstport 4789 nolearning proxy`), enc.links.join('\n'));
  assert.ok(enc.links.some((l) => l.startsWith(`link add name ${bridgeName(NET)} `) && l.includes(' mtu 1370 ')));
  assert.equal(enc.engineCreate?.Options['com.docker.network.driver.mtu'], '1370');
  assert.deepEqual(enc.fdb, [`fdb append 02:42:0a:00:01:06 dev ${vxlanName(NET)} dst fdc5:4f41:1::ac7:30c self`]);

  // The plain network is as before: underlay addresses, MTU 1450.
  const plain = p.networks.find((n) => n.networkId === PLAIN)!;
  assert.ok(plain.links.includes(`link add name ${vxlanName(PLAIN)} mtu 1450 type vxlan id 4098 local 10.199.3.11 dstport 4789 nolearning proxy`));
  assert.deepEqual(plain.fdb, [`fdb append 02:42:0a:00:02:06 dev ${vxlanName(PLAIN)} dst 10.199.3.13 self`]);
  assert.deepEqual(p.tunnelRemove, []);
});

test('the tunnel waits for a key: made and addressed, no configuration, said so', () => {
  const { d, p } = plan(view({ Keys: undefined }), empty());
  assert.equal(p.tunnel?.config, undefined);
  assert.equal(p.tunnel?.ip.length, 3);
  assert.match(d.problems.join('\n'), /no data-path key in the network view yet/);
  const bad = plan(view({ Keys: [{ Tag: 1, Key: 'c2hvcnQ=', Primary: true }] }), empty()).d;
  assert.match(bad.problems.join('\n'), /data-path key 1 is not 32 bytes/);
});

test('a rotated primary key changes every key pair; an observed tunnel that fits is only reconfigured', () => {
  const next = randomBytes(32);
  const observed = empty({
    tunnels: parseTunnels(
      [{ ifname: tunnelName(ME), mtu: 1440, flags: ['POINTOPOINT', 'UP'], linkinfo: { info_kind: 'tun' } }, { ifname: 'eth0', mtu: 1500, flags: ['UP'] }],
      [{ ifname: tunnelName(ME), addr_info: [{ family: 'inet6', local: 'fdc5:4f41:1::ac7:30b', prefixlen: 96 }, { family: 'inet6', local: 'fe80::1', prefixlen: 64 }] }],
    ),
  });
  assert.deepEqual([...observed.tunnels.keys()], [tunnelName(ME)]);
  const { p } = plan(view({ Keys: [{ Tag: 1, Key: KEY.toString('base64'), Primary: false }, { Tag: 2, Key: next.toString('base64'), Primary: true }] }), observed);
  assert.equal(p.tunnel?.create, false);
  assert.deepEqual(p.tunnel?.ip, []);
  assert.match(p.tunnel!.config!, new RegExp(`PrivateKey = ${escape(nodeKeyPair(next, ME).privateKey)}`));
  assert.match(p.tunnel!.config!, new RegExp(`PublicKey = ${escape(nodeKeyPair(next, OTHER).publicKey)}`));
});

test('no encrypted network left: the tunnel goes, after the networks; one of an earlier node ID goes too', () => {
  const stale = 'sw-oldnode00000';
  const observed = empty({ tunnels: parseTunnels([{ ifname: tunnelName(ME), mtu: 1440, flags: ['UP'] }, { ifname: stale, mtu: 1440, flags: ['UP'] }], []) });
  const { p } = plan(view({ Networks: [network(PLAIN, false, '10.0.2')], Keys: undefined }), observed);
  assert.equal(p.tunnel, undefined);
  assert.deepEqual(p.tunnelRemove, [stale, tunnelName(ME)].sort());
  const again = plan(view(), observed).p;
  assert.deepEqual(again.tunnelRemove, [stale]);
});

test('observed: a VXLAN port bound to an IPv6 address (local6) fits its encrypted network', () => {
  const links = parseLinks([{ ifname: vxlanName(NET), mtu: 1370, flags: ['UP'], master: bridgeName(NET), linkinfo: { info_kind: 'vxlan', info_data: { id: 4097, local6: 'fdc5:4f41:1::ac7:30b', port: 4789, learning: false, proxy: true } } }]);
  assert.equal(links.get(vxlanName(NET))?.vxlan?.local, 'fdc5:4f41:1::ac7:30b');
  const { p } = plan(view(), empty({ links }));
  assert.ok(!p.networks.find((n) => n.networkId === NET)!.links.some((l) => l.startsWith(`link del dev ${vxlanName(NET)}`)));
});

test('Tunnel: the kernel\'s WireGuard when it has one, else wireguard-go; `wg syncconf` only when the configuration changed', async () => {
  const calls: string[] = [];
  let kernel = false;
  const deps: TunnelDeps = {
    run: async (cmd, args, opts) => {
      calls.push(`${cmd} ${args.join(' ')}${opts?.input ? ` <${opts.input.length}` : ''}`);
      if (cmd === 'ip' && args[1] === 'add') return { code: kernel ? 0 : 2, stdout: '', stderr: kernel ? '' : 'Error: Unknown device type.' };
      return { code: 0, stdout: '', stderr: '' };
    },
    startUserspace: async (name, exited) => { calls.push(`wireguard-go ${name}`); ended.push(exited); },
    syncconf: async (name, config) => deps.run('wg', ['syncconf', name, 'FILE'], { input: config }),
  };
  const ended: Array<() => void> = [];
  const lost: string[] = [];
  const t = new Tunnel((name) => lost.push(name), deps);
  const base = { name: 'sw-x', create: true, ip: [], config: '[Interface]\n' };
  await t.apply(base);
  assert.deepEqual(calls, ['ip link add dev sw-x type wireguard', 'wireguard-go sw-x', 'wg syncconf sw-x FILE <12']);
  calls.length = 0;
  await t.apply({ ...base, create: false });
  assert.deepEqual(calls, []);
  await t.apply({ ...base, create: false, config: '[Interface]\nListenPort = 1\n' });
  assert.deepEqual(calls, ['wg syncconf sw-x FILE <27']);
  // The wireguard-go ends: the overlay is told, and the next configuration is written again.
  ended[0]!();
  assert.deepEqual(lost, ['sw-x']);
  // One that ends because the interface was removed on purpose is no loss.
  await t.apply({ ...base, name: 'sw-w' });
  t.removing(['sw-w']);
  ended[1]!();
  assert.deepEqual(lost, ['sw-x']);
  calls.length = 0;
  await t.apply({ ...base, create: false, config: '[Interface]\nListenPort = 1\n' });
  assert.deepEqual(calls, ['wg syncconf sw-x FILE <27']);
  calls.length = 0;
  kernel = true;
  await t.apply({ ...base, name: 'sw-y' });
  assert.deepEqual(calls, ['ip link add dev sw-y type wireguard', 'wg syncconf sw-y FILE <12']);
  // A failing `wg` is an error naming the tunnel, and the next round tries again.
  deps.syncconf = async () => ({ code: 1, stdout: '', stderr: 'Unable to modify interface: Protocol not supported' });
  await assert.rejects(t.apply({ ...base, name: 'sw-z', create: false }), /tunnel sw-z: wg syncconf: Unable to modify interface/);
});

const escape = (s: string): string => s.replace(/[+/=]/g, (c) => `\\${c}`);
