// A one-node load-balancer lab in network namespaces shoal-lb-* (for the
// load balancer's integration test and bench/mesh.ts), without the rest of
// Shoal: the node's bridge carries the network's gateway, the node's LB
// address and a VIP, as the overlay component leaves it; three task
// namespaces and a client task sit on that bridge; an outside client sits on
// the node's own link (10.199.9.0/24, lab index 9's subnet, in namespaces of
// its own: nothing reaches the machine's namespace). The node's iptables copy
// what dockerd 20.10 makes for a bridge network (FORWARD policy DROP,
// DOCKER-USER, the isolation chains, its nat chains).
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { run, type RunOptions, type RunResult } from '../../src/common/run';
import type { NodeNetworkView, ViewEndpoint, ViewService } from '../../src/protocol/network-view';

export const PREFIX = 'shoal-lb-';
export const NS = { node: `${PREFIX}node`, c: `${PREFIX}c`, ext: `${PREFIX}ext` };
export const TASKS = ['t1', 't2', 't3'] as const;
export const BR = 'shlb0';
export const GATEWAY = '10.0.9.1';
export const LB = '10.0.9.2';
export const VIP = '10.0.9.100';
export const SUBNET = '10.0.9.0/24';
export const CLIENT_ADDR = '10.0.9.50';
export const NODE_ADDR = '10.199.9.1';
export const EXT_ADDR = '10.199.9.50';
export const taskAddr = (i: number): string => `10.0.9.${11 + i}`;
// Every task serves on these: NAME_PORT answers "NAME CLIENT_ADDRESS" (tcp and udp), SINK_PORT counts bytes.
export const NAME_PORT = 8080;
export const SINK_PORT = 9000;
export const TOOL = join(__dirname, 'lb-ns-tool.js');

const nsPath = (ns: string): string => `/var/run/netns/${ns}`;

export const inNs = (ns: string, cmd: string, args: string[], opts?: RunOptions): Promise<RunResult> =>
  run('nsenter', [`--net=${nsPath(ns)}`, cmd, ...args], opts);

export async function must(ns: string | undefined, cmd: string, args: string[]): Promise<string> {
  const r = ns ? await inNs(ns, cmd, args, { timeoutMs: 10_000 }) : await run(cmd, args, { timeoutMs: 10_000 });
  if (r.code !== 0) throw new Error(`${ns ?? ''} ${cmd} ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout;
}

export class LbLab {
  private readonly servers: ChildProcess[] = [];

  // Removes what an earlier run left, builds the namespaces and starts the task servers.
  async up(): Promise<void> {
    await this.down();
    await topology();
    for (const t of TASKS) await this.startServer(t);
  }

  // Kills the servers and every process left in shoal-lb-* namespaces, removes the namespaces.
  async down(): Promise<void> {
    for (const s of this.servers.splice(0)) s.kill('SIGKILL');
    let names: string[] = [];
    try { names = readdirSync('/var/run/netns').filter((n) => n.startsWith(PREFIX)); } catch { /* none */ }
    for (const ns of names) {
      const pids = (await run('ip', ['netns', 'pids', ns])).stdout.split('\n').filter((l) => /^\d+$/.test(l.trim())).map(Number);
      for (const pid of pids) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
      await run('ip', ['netns', 'del', ns]);
    }
  }

  private async startServer(task: string): Promise<void> {
    const child = spawn('nsenter', [`--net=${nsPath(PREFIX + task)}`, process.execPath, TOOL, 'serve', task, String(NAME_PORT), String(SINK_PORT)], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.servers.push(child);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server ${task} not ready within 10 s`)), 10_000);
      child.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('ready')) { clearTimeout(timer); resolve(); } });
      child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`server ${task} exited (${code})`)); });
    });
  }
}

// Runs the namespace tool in `ns`; its JSON output.
export async function tool<T>(ns: string, args: string[], timeoutMs: number): Promise<T> {
  const r = await inNs(ns, process.execPath, [TOOL, ...args], { timeoutMs });
  if (r.code !== 0) throw new Error(`${TOOL} ${args.join(' ')} in ${ns}: exit ${r.code}: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout) as T;
}

async function topology(): Promise<void> {
  for (const ns of [NS.node, NS.c, NS.ext, ...TASKS.map((t) => PREFIX + t)]) {
    await must(undefined, 'ip', ['netns', 'add', ns]);
    await must(ns, 'ip', ['link', 'set', 'lo', 'up']);
  }
  await must(NS.node, 'ip', ['link', 'add', BR, 'type', 'bridge']);
  for (const a of [`${GATEWAY}/24`, `${LB}/32`, `${VIP}/32`]) await must(NS.node, 'ip', ['addr', 'add', a, 'dev', BR]);
  await must(NS.node, 'ip', ['link', 'set', BR, 'up']);
  const onBridge: Array<[string, string]> = [...TASKS.map((t, i): [string, string] => [PREFIX + t, taskAddr(i)]), [NS.c, CLIENT_ADDR]];
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
    `-t nat -A POSTROUTING -s ${SUBNET} ! -o ${BR} -j MASQUERADE`, `-t nat -A DOCKER -i ${BR} -j RETURN`,
  ]) await ipt(rule);
}

// ---------- the network view the node gets ----------
// Task t1 runs on this node (NODE_A), t2 and t3 "on node B" (physically on the
// same bridge: the load balancer only sees the view). Service web: the VIP, and
// published ports 30080/tcp and 30053/udp (-> NAME_PORT), 30090/tcp (-> SINK_PORT).
export const NODE_A = 'nodeaaaaaaaaaaaaaaaaaaaaa1';
export const NODE_B = 'nodebbbbbbbbbbbbbbbbbbbbb2';
const NET = 'netingress0000000000000001';
const SVC = 'svcweb00000000000000000001';

function endpoint(i: number, running: boolean): ViewEndpoint {
  return {
    TaskID: `task${String(i).padStart(22, '0')}`, TaskName: `web.${i + 1}.x`, ServiceID: SVC,
    NodeID: i === 0 ? NODE_A : NODE_B, NodeAddr: i === 0 ? NODE_ADDR : '10.199.9.3', NetworkID: NET, Addr: taskAddr(i), Running: running,
  };
}

export function lbLabView(opts: { running?: boolean[]; keep?: boolean } = {}): NodeNetworkView {
  const running = opts.running ?? [true, true, true];
  const svc: ViewService = {
    ID: SVC, Name: 'web', EndpointMode: 'vip', VIPs: [{ NetworkID: NET, Addr: VIP }],
    Ports: [
      { Protocol: 'tcp', TargetPort: NAME_PORT, PublishedPort: 30080, PublishMode: 'ingress' },
      { Protocol: 'udp', TargetPort: NAME_PORT, PublishedPort: 30053, PublishMode: 'ingress' },
      { Protocol: 'tcp', TargetPort: SINK_PORT, PublishedPort: 30090, PublishMode: 'ingress' },
    ],
    Aliases: [], KeepClientIP: opts.keep ?? false,
  };
  return {
    Networks: [{ ID: NET, Name: 'ingress', Subnet: SUBNET, Gateway: GATEWAY, VNI: 4096, Internal: false, Attachable: false, Ingress: true, Encrypted: false, Labels: {}, LBAddr: LB }],
    Services: [svc],
    Endpoints: running.map((r, i) => endpoint(i, r)),
    LoadBalancers: [{ NetworkID: NET, NodeID: NODE_A, NodeAddr: NODE_ADDR, Addr: LB }, { NetworkID: NET, NodeID: NODE_B, NodeAddr: '10.199.9.3', Addr: '10.0.9.3' }],
  };
}
