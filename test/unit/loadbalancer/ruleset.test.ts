import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { buildRuleset, replaceTransaction, type Ruleset } from '../../../src/agent/network/loadbalancer/ruleset';
import { APP, endpoint, INGRESS, NODE_A, NODE_B, view, webService, WEB } from './fixtures';

// The lines of one block (`chain NAME {`, `map NAME {`, `set NAME {`) of the table's text.
function block(text: string, kind: string, name: string): string[] {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.trim() === `${kind} ${name} {`);
  assert.ok(start >= 0, `${kind} ${name} is missing`);
  const end = lines.findIndex((l, i) => i > start && l === '\t}');
  return lines.slice(start + 1, end).map((l) => l.trim());
}
const hasBlock = (text: string, kind: string, name: string): boolean => text.split('\n').some((l) => l.trim() === `${kind} ${name} {`);
// A map's or set's elements, whitespace folded.
const elementsOf = (text: string, kind: string, name: string): string[] => {
  const joined = block(text, kind, name).join(' ');
  const m = /elements = \{ (.*) \}/.exec(joined);
  return m ? m[1]!.split(/,\s*/) : [];
};
// The DNAT targets of a frontend's chain, in map order.
const targets = (rs: Ruleset, chain: string): string[] => {
  const dnat = block(rs.text, 'chain', chain).find((l) => l.includes('dnat'))!;
  return [...dnat.matchAll(/\d+ : ([\d.]+(?: \. \d+)?)/g)].map((m) => m[1]!);
};

test('a VIP spreads over the running tasks of its network, any node, with source NAT to the LB address', () => {
  const rs = buildRuleset(view(), NODE_A);
  assert.deepEqual(rs.warnings, []);
  assert.deepEqual(elementsOf(rs.text, 'map', 'vip-services'), ['10.0.0.2 : goto vip-10-0-0-2', '10.0.1.2 : goto vip-10-0-1-2']);
  assert.deepEqual(targets(rs, 'vip-10-0-1-2'), ['10.0.1.11', '10.0.1.12', '10.0.1.13']); // task 4 is not running
  const chain = block(rs.text, 'chain', 'vip-10-0-1-2');
  assert.equal(chain[0], 'ip saddr != 10.0.1.0/24 return', 'only its own network reaches a VIP');
  assert.ok(chain.includes('ct mark set ct mark | 0x30000000'));
  assert.match(chain.join('\n'), /dnat ip to numgen random mod 3 map/);
  const post = block(rs.text, 'chain', 'postrouting');
  assert.ok(post.some((l) => l.includes('ip daddr 10.0.1.0/24 snat ip to 10.0.1.3')));
  assert.ok(post.some((l) => l.includes('ip daddr 10.0.0.0/24 snat ip to 10.0.0.3')));
  const vip = rs.frontends.find((f) => f.key === 'vip 10.0.1.2')!;
  assert.deepEqual({ svc: vip.serviceId, net: vip.networkId, snat: vip.snat }, { svc: WEB, net: APP, snat: true });
});

test('the routing mesh: published ports on every local address to the tasks on ingress, tcp and udp with the target port', () => {
  const rs = buildRuleset(view(), NODE_A);
  assert.deepEqual(elementsOf(rs.text, 'map', 'mesh-ports'), ['tcp . 8080 : goto mesh-tcp-8080', 'udp . 5353 : goto mesh-udp-5353']);
  assert.deepEqual(targets(rs, 'mesh-tcp-8080'), ['10.0.0.11 . 80', '10.0.0.12 . 80', '10.0.0.13 . 80']);
  assert.match(block(rs.text, 'chain', 'mesh-udp-5353').join('\n'), /meta l4proto udp dnat ip to numgen random mod 3 map \{ 0 : 10\.0\.0\.11 \. 53/);
  for (const hook of ['prerouting', 'output']) {
    assert.ok(block(rs.text, 'chain', hook).includes('fib daddr type local meta l4proto . th dport vmap @mesh-ports'), hook);
  }
  assert.deepEqual(rs.localnetAddrs, ['10.0.0.3']);
  assert.deepEqual(rs.hairpinAddrs, ['10.0.0.3', '10.0.1.3']);
});

test('host-mode ports and dnsrr services get no rules; dnsrr still publishes on the mesh', () => {
  const svc = webService({ EndpointMode: 'dnsrr', VIPs: [], Ports: [{ Protocol: 'tcp', TargetPort: 80, PublishedPort: 9000, PublishMode: 'host' }] });
  const rs = buildRuleset(view({ Services: [svc] }), NODE_A);
  assert.deepEqual(rs.frontends, []);
  assert.deepEqual(rs.localnetAddrs, []);
  const rr = buildRuleset(view({ Services: [webService({ EndpointMode: 'dnsrr', VIPs: [] })] }), NODE_A);
  assert.deepEqual(rr.frontends.map((f) => f.key), ['mesh tcp 8080', 'mesh udp 5353']);
});

test('a frontend without running tasks is rejected, not left to time out', () => {
  const rs = buildRuleset(view({ Endpoints: [endpoint(4, APP, NODE_B, false)] }), NODE_A);
  assert.deepEqual(elementsOf(rs.text, 'map', 'vip-services'), []);
  assert.deepEqual(elementsOf(rs.text, 'set', 'vip-no-backends'), ['10.0.0.2', '10.0.1.2']);
  assert.deepEqual(elementsOf(rs.text, 'set', 'mesh-no-backends'), ['tcp . 8080', 'udp . 5353']);
  assert.equal(hasBlock(rs.text, 'chain', 'vip-10-0-1-2'), false);
  const input = block(rs.text, 'chain', 'input');
  assert.ok(input.includes('meta l4proto { tcp, udp } ip daddr @vip-no-backends goto no-backends'));
  assert.ok(input.includes('meta l4proto . th dport @mesh-no-backends goto no-backends'));
  assert.deepEqual(block(rs.text, 'chain', 'no-backends'), ['meta l4proto tcp reject with tcp reset', 'reject']);
  assert.deepEqual(rs.localnetAddrs, []);
  assert.deepEqual(rs.hairpinAddrs, []);
});

test('KeepClientIP: local tasks only and no source NAT, except for the node itself and the ingress network', () => {
  const rs = buildRuleset(view({ Services: [webService({ KeepClientIP: true })] }), NODE_A);
  assert.deepEqual(targets(rs, 'mesh-tcp-8080'), ['10.0.0.11 . 80']);
  const chain = block(rs.text, 'chain', 'mesh-tcp-8080');
  assert.equal(chain[0], 'ct mark set ct mark | 0x10000000');
  assert.ok(chain.includes('fib saddr type local ct mark set ct mark | 0x20000000'));
  assert.ok(chain.includes('ip saddr 10.0.0.0/24 ct mark set ct mark | 0x20000000'));
  assert.equal(rs.frontends.find((f) => f.key === 'mesh tcp 8080')!.snat, false);
  // VIPs are not concerned: every task, with source NAT.
  assert.deepEqual(targets(rs, 'vip-10-0-1-2'), ['10.0.1.11', '10.0.1.12', '10.0.1.13']);
  // No local task: every task, still without source NAT (the task's node sends the replies back here).
  const remote = buildRuleset(view({ Services: [webService({ KeepClientIP: true })] }), NODE_B.replace('b', 'c'));
  assert.deepEqual(targets(remote, 'mesh-tcp-8080'), ['10.0.0.11 . 80', '10.0.0.12 . 80', '10.0.0.13 . 80']);
  assert.deepEqual(block(remote.text, 'chain', 'mesh-tcp-8080')[0], 'ct mark set ct mark | 0x10000000');
  assert.equal(remote.frontends.find((f) => f.key === 'mesh tcp 8080')!.snat, false);
});

test('KeepClientIP, the task\'s node: connections from another node\'s mesh are marked with that node; their replies go back to it', () => {
  // Node B runs tasks 2 and 3; node A (10.0.0.3 on ingress) may send it connections without source NAT.
  const v = view({ Services: [webService({ KeepClientIP: true })] });
  v.Networks[1]!.LBAddr = '10.0.0.4';
  const rs = buildRuleset(v, NODE_B);
  assert.deepEqual(rs.warnings, []);
  assert.deepEqual(block(rs.text, 'map', 'keep-client-entry'), ['type ether_addr : mark', 'elements = { 02:42:0a:00:00:03 : 0x50000003 }']);
  assert.deepEqual(block(rs.text, 'map', 'keep-client-return'), ['type mark : ipv4_addr', 'elements = { 0x40000003 : 10.0.0.3 }']);
  assert.deepEqual(block(rs.text, 'set', 'keep-client-tasks'), ['type ipv4_addr . inet_proto . inet_service',
    'elements = { 10.0.0.12 . tcp . 80,', '10.0.0.12 . udp . 53,', '10.0.0.13 . tcp . 80,', '10.0.0.13 . udp . 53 }']);
  assert.deepEqual(block(rs.text, 'chain', 'keep-client-ip'), [
    'type filter hook prerouting priority mangle; policy accept;',
    'ct state new ip saddr != 10.0.0.0/24 ip daddr . meta l4proto . th dport @keep-client-tasks ct mark set ether saddr map @keep-client-entry',
    'ct direction reply ct mark & 0x40000000 == 0x40000000 dup to ct mark & 0x4000ffff map @keep-client-return drop',
  ]);
  // Without KeepClientIP, or without a local task of such a service: no such chain.
  assert.ok(!buildRuleset(view(), NODE_B).text.includes('keep-client'));
  assert.ok(!buildRuleset(view({ Services: [webService({ KeepClientIP: true })] }), NODE_B.replace('b', 'c')).text.includes('keep-client'));
});

test('KeepClientIP on an ingress network larger than /16: the client address is lost (said so), never a wrong return', () => {
  const v = view({ Services: [webService({ KeepClientIP: true })] });
  v.Networks[1] = { ...v.Networks[1]!, Subnet: '10.0.0.0/15' };
  const rs = buildRuleset(v, NODE_A);
  assert.match(rs.warnings.join('\n'), /keep-client-ip needs an ingress network of \/16 or smaller/);
  assert.equal(rs.frontends.find((f) => f.key === 'mesh tcp 8080')!.snat, true);
  assert.ok(!rs.text.includes('keep-client'));
});

test('bad or conflicting items fail alone, with a warning', () => {
  const other = webService({ ID: 'svczother00000000000000002', Name: 'other', VIPs: [{ NetworkID: APP, Addr: '10.0.1.2' }], Ports: [{ Protocol: 'tcp', TargetPort: 81, PublishedPort: 8080 }] });
  const bad = webService({ ID: 'bad id"; flush ruleset', Name: 'evil' });
  const sctp = webService({ ID: 'svcsctp0000000000000000003', Name: 'sctp', VIPs: [], Ports: [{ Protocol: 'sctp', TargetPort: 1, PublishedPort: 7 }] });
  const v = view({ Services: [webService(), other, bad, sctp] });
  v.Endpoints.push({ ...endpoint(9, APP, NODE_B), Addr: '192.168.1.9' }, { ...endpoint(8, APP, NODE_B), Addr: 'nonsense' });
  const rs = buildRuleset(v, NODE_A);
  assert.equal(rs.warnings.length, 6, rs.warnings.join('\n'));
  assert.ok(rs.warnings.some((w) => w.includes('vip 10.0.1.2 is already taken')));
  assert.ok(rs.warnings.some((w) => w.includes('mesh tcp 8080 is already taken')));
  assert.ok(rs.warnings.some((w) => w.includes('malformed ID')));
  assert.ok(rs.warnings.some((w) => w.includes('sctp')));
  assert.ok(!rs.text.includes('flush') && !rs.text.includes('192.168') && !rs.text.includes('nonsense'));
  assert.deepEqual(targets(rs, 'mesh-tcp-8080'), ['10.0.0.11 . 80', '10.0.0.12 . 80', '10.0.0.13 . 80']); // the first service (by ID) keeps it
});

test('no LB address on a network: its frontends reject; no ingress network: no mesh', () => {
  const v = view();
  v.Networks = v.Networks.map((n) => (n.ID === APP ? { ...n, LBAddr: undefined } : n));
  v.LoadBalancers = v.LoadBalancers.filter((l) => l.NetworkID !== APP);
  const rs = buildRuleset(v, NODE_A);
  assert.deepEqual(elementsOf(rs.text, 'set', 'vip-no-backends'), ['10.0.1.2']);
  assert.ok(rs.warnings.some((w) => w.includes('no load-balancer address on network app')));
  // LBAddr missing but the node's entry in LoadBalancers is enough.
  const w = view();
  w.Networks = w.Networks.map((n) => ({ ...n, LBAddr: undefined }));
  assert.equal(buildRuleset(w, NODE_A).text, buildRuleset(view(), NODE_A).text);
  const noIngress = buildRuleset(view({ Networks: view().Networks.filter((n) => n.ID !== INGRESS) }), NODE_A);
  assert.deepEqual(noIngress.frontends.map((f) => f.key), ['vip 10.0.1.2']);
  assert.ok(noIngress.warnings.some((w2) => w2.includes('no ingress network')));
});

test('an --internal network: DNS queries from it to its gateway go to Shoal\'s DNS server; routed networks get no such rule', () => {
  const v = view();
  v.Networks.push({ ID: 'netsecret00000000000000001', Name: 'secret', Subnet: '10.0.9.0/24', Gateway: '10.0.9.1', VNI: 4099, Internal: true, Attachable: true, Ingress: false, Encrypted: false, Labels: {} });
  v.Networks.push({ ID: 'netbadgw000000000000000001', Name: 'badgw', Subnet: '10.0.8.0/24', Gateway: '10.0.7.1', VNI: 4100, Internal: true, Attachable: false, Ingress: false, Encrypted: false, Labels: {} });
  const rs = buildRuleset(v, NODE_A);
  const pre = block(rs.text, 'chain', 'prerouting');
  const dns = pre.filter((l) => l.includes('th dport 53'));
  assert.deepEqual(dns, ['ip saddr 10.0.9.0/24 ip daddr 10.0.9.1 meta l4proto { tcp, udp } th dport 53 dnat ip to 169.254.53.53 comment "dns on internal network secret"']);
  assert.ok(pre.indexOf(dns[0]!) < pre.findIndex((l) => l.includes('@vip-services')), 'before the VIPs and the mesh (a published port 53 must not take it)');
  assert.ok(!block(rs.text, 'chain', 'output').some((l) => l.includes('th dport 53')));
  assert.ok(!block(buildRuleset(view(), NODE_A).text, 'chain', 'prerouting').some((l) => l.includes('th dport 53')));
});

test('the same view in any order gives the same text', () => {
  const a = view();
  const b = view({ Endpoints: [...a.Endpoints].reverse(), Networks: [...a.Networks].reverse(), LoadBalancers: [...a.LoadBalancers].reverse() });
  assert.equal(buildRuleset(a, NODE_A).text, buildRuleset(b, NODE_A).text);
});

// nft parses and checks (against the kernel, without changing anything) what
// the generator writes; only as root with nft installed (CI installs it).
const nftUsable = process.getuid?.() === 0 && spawnSync('nft', ['--version']).status === 0;
test('nft -c accepts the generated transactions', { skip: nftUsable ? false : 'needs root and nft' }, () => {
  const cases = {
    full: view(),
    keep: view({ Services: [webService({ KeepClientIP: true })] }),
    empty: view({ Services: [], Endpoints: [] }),
    noBackends: view({ Endpoints: [] }),
    nothing: { Networks: [], Services: [], Endpoints: [], LoadBalancers: [] },
    internal: view({ Networks: [...view().Networks, { ID: 'netsecret00000000000000001', Name: 'secret', Subnet: '10.0.9.0/24', Gateway: '10.0.9.1', VNI: 4099, Internal: true, Attachable: true, Ingress: false, Encrypted: false, Labels: {} }] }),
  };
  for (const [name, v] of Object.entries(cases)) {
    for (const node of [NODE_A, NODE_B]) {
      // The fixture's LBAddr are node A's: node B has its own.
      const own = node === NODE_A ? v : { ...v, Networks: v.Networks.map((n) => (n.LBAddr ? { ...n, LBAddr: n.LBAddr.replace(/3$/, '4') } : n)) };
      const text = buildRuleset(own, node).text;
      if (name === 'keep' && node === NODE_B) assert.ok(text.includes('chain keep-client-ip'), 'the return chain is among the cases');
      const r = spawnSync('nft', ['-c', '-f', '-'], { input: replaceTransaction(text), timeout: 10_000 });
      assert.equal(r.status, 0, `${name} on ${node}: ${r.stderr}`);
    }
  }
});
