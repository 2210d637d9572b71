// The load balancer on the kernel, without the rest of Shoal, in the
// namespaces of test/helpers/lb-netns.ts (one node with dockerd's FORWARD
// rules, three tasks and a client on its bridge, an outside client on its
// link). The LoadBalancer class runs its commands in the node's namespace.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { silentLogger } from '../../../src/common/log';
import { LoadBalancer } from '../../../src/agent/network/loadbalancer/load-balancer';
import { EXT_ADDR, GATEWAY, inNs, LB, LbLab, lbLabView as view, must, NODE_A, NODE_ADDR, NS, PREFIX, TASKS, tool, VIP } from '../../helpers/lb-netns';

const PROBES = 30; // P(one of three backends never chosen in 30) = 3·(2/3)^30 ≈ 1.6e-5

// COUNT requests from namespace `ns`; the answers ("t2 10.0.9.2", "error:ECONNREFUSED").
const probe = (ns: string, proto: 'tcp' | 'udp', host: string, port: number, count = PROBES, sourcePort = 0): Promise<string[]> =>
  tool<string[]>(ns, ['probe', proto, host, String(port), String(count), String(sourcePort)], 10_000 + count * 2_500);
const names = (answers: string[]): string[] => [...new Set(answers.map((a) => a.split(' ')[0]!))].sort();
const seen = (answers: string[]): string[] => [...new Set(answers.map((a) => a.split(' ')[1] ?? a))].sort();

describe('load balancer on the kernel (namespaces shoal-lb-*)', { timeout: 5 * 60_000 }, () => {
  const lab = new LbLab();
  const lb = new LoadBalancer({
    nodeId: NODE_A, nodeAddr: NODE_ADDR, log: silentLogger,
    exec: (cmd, args, opts) => inNs(NS.node, cmd, args, opts),
  });

  before(async () => {
    for (const bin of ['/usr/sbin/nft', '/usr/sbin/conntrack', '/usr/sbin/iptables']) assert.ok(existsSync(bin), `${bin} is missing (bash scripts/setup.sh --deps-only)`);
    await lab.up();
  });
  after(async () => {
    await lb.close();
    await lab.down();
  });

  test('a VIP spreads connections from its network over every running task, source-NATed to the LB address', async () => {
    assert.equal(await lb.apply(view()), true);
    assert.equal(await lb.apply(view()), false, 'the same view writes nothing');
    const answers = await probe(NS.c, 'tcp', VIP, 8080);
    assert.deepEqual(names(answers), ['t1', 't2', 't3'], answers.join(', '));
    assert.deepEqual(seen(answers), [LB]);
    // A task reaches its own service's VIP, itself included (hairpin through the node).
    const hairpin = await probe(`${PREFIX}t1`, 'tcp', VIP, 8080);
    assert.deepEqual(names(hairpin), ['t1', 't2', 't3'], hairpin.join(', '));
    // Not from outside its network (the node itself has nothing on that port).
    const outside = await probe(NS.ext, 'tcp', VIP, 8080, 3);
    assert.ok(outside.every((a) => a.startsWith('error:')), outside.join(', '));
  });

  test('a published port answers from outside through dockerd\'s FORWARD DROP, tcp and udp, over every task', async () => {
    const tcp = await probe(NS.ext, 'tcp', NODE_ADDR, 30080);
    assert.deepEqual(names(tcp), ['t1', 't2', 't3'], tcp.join(', '));
    assert.deepEqual(seen(tcp), [LB]);
    const udp = await probe(NS.ext, 'udp', NODE_ADDR, 30053);
    assert.deepEqual(names(udp), ['t1', 't2', 't3'], udp.join(', '));
    // A task through the mesh to its own service, itself included.
    const hairpin = await probe(`${PREFIX}t1`, 'tcp', NODE_ADDR, 30080);
    assert.deepEqual(names(hairpin), ['t1', 't2', 't3'], hairpin.join(', '));
  });

  test('a published port answers on the node\'s own addresses and on loopback', async () => {
    for (const addr of [NODE_ADDR, GATEWAY, '127.0.0.1']) {
      const tcp = await probe(NS.node, 'tcp', addr, 30080, 9);
      assert.ok(tcp.every((a) => /^t\d /.test(a)), `${addr}: ${tcp.join(', ')}`);
      assert.deepEqual(seen(tcp), [LB]);
    }
    const udp = await probe(NS.node, 'udp', '127.0.0.1', 30053, 6);
    assert.ok(udp.every((a) => /^t\d /.test(a)), udp.join(', '));
    // route_localnet does not let the network in to the node's loopback.
    const r = await inNs(NS.node, 'nft', ['list', 'chain', 'ip', 'shoal', 'input']);
    assert.match(r.stdout, /iifname != "lo" ip daddr 127\.0\.0\.0\/8/);
  });

  test('a removed backend gets no new connection at once, and a sticky udp flow moves off it', async () => {
    const sticky = await probe(NS.ext, 'udp', NODE_ADDR, 30053, 3, 40053);
    assert.equal(names(sticky).length, 1, `one udp flow, one backend: ${sticky.join(', ')}`);
    const victim = TASKS.indexOf(names(sticky)[0] as typeof TASKS[number]);
    const running = [true, true, true];
    running[victim] = false;
    assert.equal(await lb.apply(view({ running })), true);
    const rest = TASKS.filter((_, i) => i !== victim);
    const tcp = await probe(NS.ext, 'tcp', NODE_ADDR, 30080);
    assert.deepEqual(names(tcp), rest, tcp.join(', '));
    const vip = await probe(NS.c, 'tcp', VIP, 8080);
    assert.deepEqual(names(vip), rest, vip.join(', '));
    const after = await probe(NS.ext, 'udp', NODE_ADDR, 30053, 3, 40053);
    assert.ok(after.every((a) => rest.includes(a.split(' ')[0] as typeof TASKS[number])), `the same udp flow: ${after.join(', ')}`);
  });

  test('no running task: connections are refused at once, not left to time out', async () => {
    await lb.apply(view({ running: [false, false, false] }));
    const started = Date.now();
    assert.deepEqual(await probe(NS.ext, 'tcp', NODE_ADDR, 30080, 3), ['error:ECONNREFUSED', 'error:ECONNREFUSED', 'error:ECONNREFUSED']);
    assert.deepEqual(await probe(NS.c, 'tcp', VIP, 8080, 3), ['error:ECONNREFUSED', 'error:ECONNREFUSED', 'error:ECONNREFUSED']);
    assert.ok(Date.now() - started < 5_000);
  });

  test('KeepClientIP: the local task gets the connection with the client\'s own address', async () => {
    await lb.apply(view({ keep: true }));
    const answers = await probe(NS.ext, 'tcp', NODE_ADDR, 30080, 10);
    assert.deepEqual(names(answers), ['t1']);
    assert.deepEqual(seen(answers), [EXT_ADDR]);
    const udp = await probe(NS.ext, 'udp', NODE_ADDR, 30053, 5);
    assert.deepEqual(seen(udp), [EXT_ADDR], udp.join(', '));
    // The node itself still reaches it (source-NATed: its 127.0.0.1 cannot leave the node).
    const local = await probe(NS.node, 'tcp', '127.0.0.1', 30080, 3);
    assert.deepEqual(seen(local), [LB], local.join(', '));
    // No local task: every task, still not source-NATed (the task's node returns the replies:
    // here the tasks' gateway is this namespace, as it is their own node's on a real one).
    await lb.apply(view({ keep: true, running: [false, true, true] }));
    const remote = await probe(NS.ext, 'tcp', NODE_ADDR, 30080, 20);
    assert.deepEqual(names(remote), ['t2', 't3'], remote.join(', '));
    assert.deepEqual(seen(remote), [EXT_ADDR]);
  });

  test('close removes the table and the FORWARD rule', async () => {
    await lb.close();
    assert.notEqual((await inNs(NS.node, 'nft', ['list', 'table', 'ip', 'shoal'])).code, 0);
    assert.doesNotMatch(await must(NS.node, 'iptables', ['-w', '5', '-S', 'DOCKER-USER']), /connmark/);
    const r = await probe(NS.ext, 'tcp', NODE_ADDR, 30080, 1);
    assert.match(r[0]!, /^error:/);
  });
});
