// The load balancer on the kernel, without the rest of Shoal: network
// namespaces shoal-lb-* make one node (a bridge carrying the network's
// gateway, the node's LB address and a VIP, as the overlay component leaves
// it), three task namespaces and a client task on that bridge, and an outside
// client on the node's own link (10.199.9.0/24, lab index 9's subnet, but in
// namespaces of its own). The node's iptables copy what dockerd sets up
// (FORWARD policy DROP, DOCKER-USER, isolation chains). The LoadBalancer class
// runs its commands in the node's namespace.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { silentLogger } from '../../../src/common/log';
import { run, type RunOptions } from '../../../src/common/run';
import { LoadBalancer } from '../../../src/agent/network/loadbalancer/load-balancer';
import type { NodeNetworkView, ViewEndpoint, ViewService } from '../../../src/protocol/network-view';

const PREFIX = 'shoal-lb-';
const NS = { node: `${PREFIX}node`, c: `${PREFIX}c`, ext: `${PREFIX}ext` };
const TASKS = ['t1', 't2', 't3'] as const;
const TOOL = join(__dirname, 'ns-tool.js');
const NODE_A = 'nodeaaaaaaaaaaaaaaaaaaaaa1';
const NODE_B = 'nodebbbbbbbbbbbbbbbbbbbbb2';
const NET = 'netingress0000000000000001';
const SVC = 'svcweb00000000000000000001';
const BR = 'shlb0';
const GATEWAY = '10.0.9.1';
const LB = '10.0.9.2';
const VIP = '10.0.9.100';
const NODE_ADDR = '10.199.9.1';
const EXT_ADDR = '10.199.9.50';
const taskAddr = (i: number): string => `10.0.9.${11 + i}`;
const PROBES = 30; // P(one of three backends never chosen in 30) = 3·(2/3)^30 ≈ 1.6e-5

const nsPath = (ns: string): string => `/var/run/netns/${ns}`;
const inNs = (ns: string, cmd: string, args: string[], opts?: RunOptions) => run('nsenter', [`--net=${nsPath(ns)}`, cmd, ...args], opts);
async function must(ns: string | undefined, cmd: string, args: string[]): Promise<string> {
  const r = ns ? await inNs(ns, cmd, args, { timeoutMs: 10_000 }) : await run(cmd, args, { timeoutMs: 10_000 });
  if (r.code !== 0) throw new Error(`${ns ?? ''} ${cmd} ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout;
}

const servers: ChildProcess[] = [];

async function cleanup(): Promise<void> {
  for (const s of servers.splice(0)) s.kill('SIGKILL');
  let names: string[] = [];
  try { names = readdirSync('/var/run/netns').filter((n) => n.startsWith(PREFIX)); } catch { /* none */ }
  for (const ns of names) {
    // Processes left in our own namespaces by an earlier run of this test.
    const pids = (await run('ip', ['netns', 'pids', ns])).stdout.split('\n').filter((l) => /^\d+$/.test(l.trim())).map(Number);
    for (const pid of pids) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
    await run('ip', ['netns', 'del', ns]);
  }
}

async function topology(): Promise<void> {
  const all = [NS.node, NS.c, NS.ext, ...TASKS.map((t) => PREFIX + t)];
  for (const ns of all) {
    await must(undefined, 'ip', ['netns', 'add', ns]);
    await must(ns, 'ip', ['link', 'set', 'lo', 'up']);
  }
  await must(NS.node, 'ip', ['link', 'add', BR, 'type', 'bridge']);
  for (const a of [`${GATEWAY}/24`, `${LB}/32`, `${VIP}/32`]) await must(NS.node, 'ip', ['addr', 'add', a, 'dev', BR]);
  await must(NS.node, 'ip', ['link', 'set', BR, 'up']);
  const onBridge: Array<[string, string]> = [...TASKS.map((t, i): [string, string] => [PREFIX + t, taskAddr(i)]), [NS.c, '10.0.9.50']];
  for (const [i, [ns, addr]] of onBridge.entries()) {
    await must(NS.node, 'ip', ['link', 'add', `vlb${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    await must(NS.node, 'ip', ['link', 'set', `vlb${i}`, 'master', BR, 'up']);
    await must(ns, 'ip', ['addr', 'add', `${addr}/24`, 'dev', 'eth0']);
    await must(ns, 'ip', ['link', 'set', 'eth0', 'up']);
    await must(ns, 'ip', ['route', 'add', 'default', 'via', GATEWAY]);
  }
  await must(NS.node, 'ip', ['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', NS.ext]);
  await must(NS.node, 'ip', ['addr', 'add', `${NODE_ADDR}/24`, 'dev', 'eth0']);
  await must(NS.node, 'ip', ['link', 'set', 'eth0', 'up']);
  await must(NS.ext, 'ip', ['addr', 'add', `${EXT_ADDR}/24`, 'dev', 'eth0']);
  await must(NS.ext, 'ip', ['link', 'set', 'eth0', 'up']);
  await must(NS.ext, 'ip', ['route', 'add', 'default', 'via', NODE_ADDR]);
  await must(NS.node, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
  await must(NS.node, 'sysctl', ['-qw', 'net.bridge.bridge-nf-call-iptables=1']);
  // What dockerd 20.10 makes for a bridge network (its FORWARD and nat rules).
  const ipt = (args: string): Promise<string> => must(NS.node, 'iptables', ['-w', '5', ...args.split(' ')]);
  for (const chain of ['DOCKER', 'DOCKER-USER', 'DOCKER-ISOLATION-STAGE-1', 'DOCKER-ISOLATION-STAGE-2']) await ipt(`-N ${chain}`);
  for (const rule of [
    '-A DOCKER-USER -j RETURN',
    `-A DOCKER-ISOLATION-STAGE-1 -i ${BR} ! -o ${BR} -j DOCKER-ISOLATION-STAGE-2`, '-A DOCKER-ISOLATION-STAGE-1 -j RETURN',
    `-A DOCKER-ISOLATION-STAGE-2 -o ${BR} -j DROP`, '-A DOCKER-ISOLATION-STAGE-2 -j RETURN',
    '-P FORWARD DROP', '-A FORWARD -j DOCKER-USER', '-A FORWARD -j DOCKER-ISOLATION-STAGE-1',
    `-A FORWARD -o ${BR} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`, `-A FORWARD -o ${BR} -j DOCKER`,
    `-A FORWARD -i ${BR} ! -o ${BR} -j ACCEPT`, `-A FORWARD -i ${BR} -o ${BR} -j ACCEPT`,
    '-t nat -N DOCKER', '-t nat -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER',
    '-t nat -A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER',
    `-t nat -A POSTROUTING -s 10.0.9.0/24 ! -o ${BR} -j MASQUERADE`, `-t nat -A DOCKER -i ${BR} -j RETURN`,
  ]) await ipt(rule);
}

async function startServer(task: string): Promise<void> {
  const child = spawn('nsenter', [`--net=${nsPath(PREFIX + task)}`, process.execPath, TOOL, 'serve', task, '8080'], { stdio: ['pipe', 'pipe', 'inherit'] });
  servers.push(child);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server ${task} not ready within 10 s`)), 10_000);
    child.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('ready')) { clearTimeout(timer); resolve(); } });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`server ${task} exited (${code})`)); });
  });
}

// COUNT requests from namespace `ns`; the answers ("t2 10.0.9.2", "error:ECONNREFUSED").
async function probe(ns: string, proto: 'tcp' | 'udp', host: string, port: number, count = PROBES, sourcePort = 0): Promise<string[]> {
  const r = await inNs(ns, process.execPath, [TOOL, 'probe', proto, host, String(port), String(count), String(sourcePort)], { timeoutMs: 10_000 + count * 2_500 });
  assert.equal(r.code, 0, `probe from ${ns}: ${r.stderr}`);
  return JSON.parse(r.stdout) as string[];
}
const names = (answers: string[]): string[] => [...new Set(answers.map((a) => a.split(' ')[0]!))].sort();
const seen = (answers: string[]): string[] => [...new Set(answers.map((a) => a.split(' ')[1] ?? a))].sort();

function endpoint(i: number, running = true): ViewEndpoint {
  return {
    TaskID: `task${String(i).padStart(22, '0')}`, TaskName: `web.${i + 1}.x`, ServiceID: SVC,
    NodeID: i === 0 ? NODE_A : NODE_B, NodeAddr: i === 0 ? NODE_ADDR : '10.199.9.3', NetworkID: NET, Addr: taskAddr(i), Running: running,
  };
}

function view(opts: { running?: boolean[]; keep?: boolean } = {}): NodeNetworkView {
  const running = opts.running ?? [true, true, true];
  const svc: ViewService = {
    ID: SVC, Name: 'web', EndpointMode: 'vip', VIPs: [{ NetworkID: NET, Addr: VIP }],
    Ports: [
      { Protocol: 'tcp', TargetPort: 8080, PublishedPort: 30080, PublishMode: 'ingress' },
      { Protocol: 'udp', TargetPort: 8080, PublishedPort: 30053, PublishMode: 'ingress' },
    ],
    Aliases: [], KeepClientIP: opts.keep ?? false,
  };
  return {
    Networks: [{ ID: NET, Name: 'ingress', Subnet: '10.0.9.0/24', Gateway: GATEWAY, VNI: 4096, Internal: false, Attachable: false, Ingress: true, Encrypted: false, Labels: {}, LBAddr: LB }],
    Services: [svc],
    Endpoints: running.map((r, i) => endpoint(i, r)),
    LoadBalancers: [{ NetworkID: NET, NodeID: NODE_A, NodeAddr: NODE_ADDR, Addr: LB }, { NetworkID: NET, NodeID: NODE_B, NodeAddr: '10.199.9.3', Addr: '10.0.9.3' }],
  };
}

describe('load balancer on the kernel (namespaces shoal-lb-*)', { timeout: 5 * 60_000 }, () => {
  const lb = new LoadBalancer({
    nodeId: NODE_A, nodeAddr: NODE_ADDR, log: silentLogger,
    exec: (cmd, args, opts) => inNs(NS.node, cmd, args, opts),
  });

  before(async () => {
    for (const bin of ['/usr/sbin/nft', '/usr/sbin/conntrack', '/usr/sbin/iptables']) assert.ok(existsSync(bin), `${bin} is missing (bash scripts/setup.sh --deps-only)`);
    await cleanup();
    await topology();
    for (const t of TASKS) await startServer(t);
  });
  after(async () => {
    await lb.close();
    await cleanup();
  });

  test('a VIP spreads connections over every running task, source-NATed to the LB address', async () => {
    assert.equal(await lb.apply(view()), true);
    assert.equal(await lb.apply(view()), false, 'the same view writes nothing');
    const answers = await probe(NS.c, 'tcp', VIP, 8080);
    assert.deepEqual(names(answers), ['t1', 't2', 't3'], answers.join(', '));
    assert.deepEqual(seen(answers), [LB]);
  });

  test('a published port answers from outside through dockerd\'s FORWARD DROP, tcp and udp, over every task', async () => {
    const tcp = await probe(NS.ext, 'tcp', NODE_ADDR, 30080);
    assert.deepEqual(names(tcp), ['t1', 't2', 't3'], tcp.join(', '));
    assert.deepEqual(seen(tcp), [LB]);
    const udp = await probe(NS.ext, 'udp', NODE_ADDR, 30053);
    assert.deepEqual(names(udp), ['t1', 't2', 't3'], udp.join(', '));
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
    // No local task: every task, source-NATed.
    await lb.apply(view({ keep: true, running: [false, true, true] }));
    const remote = await probe(NS.ext, 'tcp', NODE_ADDR, 30080, 20);
    assert.deepEqual(names(remote), ['t2', 't3'], remote.join(', '));
    assert.deepEqual(seen(remote), [LB]);
  });

  test('close removes the table and the FORWARD rule', async () => {
    await lb.close();
    assert.notEqual((await inNs(NS.node, 'nft', ['list', 'table', 'ip', 'shoal'])).code, 0);
    assert.doesNotMatch(await must(NS.node, 'iptables', ['-w', '5', '-S', 'DOCKER-USER']), /connmark/);
    const r = await probe(NS.ext, 'tcp', NODE_ADDR, 30080, 1);
    assert.match(r[0]!, /^error:/);
  });
});
