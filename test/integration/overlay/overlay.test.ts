import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../../src/common/run';
import { silentLogger } from '../../../src/common/log';
import { EngineClient } from '../../../src/engine/client';
import { DockerExecutor } from '../../../src/agent/executor/docker-executor';
import { buildContainerConfig } from '../../../src/agent/executor/container-config';
import { VXLAN_ID_OPTION, type Network, type Task } from '../../../src/model/types';
import { engineNetworkName, ipv4Mac, type NodeNetworkView, type ViewNetwork } from '../../../src/protocol/network-view';
import { bridgeName, vxlanName } from '../../../src/agent/network/overlay/names';
import { runDocker, waitFor } from '../../helpers/daemon';
import { parseHostLines, runLab, type LabHost } from '../../helpers/lab';
import { ensureBusyboxImage } from '../../helpers/images';

// The overlay data path on a two-host lab (lab index 3, hosts only: dockerd
// in each host's namespace, no swarm): the overlay component applies a
// hand-made view inside each host (apply-view.js under nsenter), the
// executor creates one task container per host with its allocated
// addresses, and they reach each other across hosts over VXLAN.
const LAB = '3';
const LAB_BRIDGE = `shoal-lab${LAB}`;
const IMG = 'shoal-test/busybox:1';
const APPLY = join(__dirname, 'apply-view.js');

const NET_A = 'ovta0000000000000000000001';
const NET_B = 'ovtb0000000000000000000002';
const NODES = ['ovnode00000000000000000001', 'ovnode00000000000000000002'];
const A = '10.0.9.10';   // task on host1, network A
const B = '10.0.9.20';   // task on host2, network A (and 10.0.10.20 on B)

const vnet = (id: string, name: string, subnet: string, gw: string, vni: number): ViewNetwork => ({
  ID: id, Name: name, Subnet: subnet, Gateway: gw, VNI: vni, Internal: false, Attachable: false, Ingress: false, Encrypted: false, Labels: {},
});
const NETS = [vnet(NET_A, 'ova', '10.0.9.0/24', '10.0.9.1', 4242), vnet(NET_B, 'ovb', '10.0.10.0/24', '10.0.10.1', 4243)];

const asNetwork = (n: ViewNetwork): Network => ({
  ID: n.ID, Version: { Index: 1 }, CreatedAt: '', UpdatedAt: '', Spec: { Name: n.Name },
  DriverState: { Name: 'overlay', Options: { [VXLAN_ID_OPTION]: String(n.VNI) } },
  IPAM: { Configs: [{ Subnet: n.Subnet, Gateway: n.Gateway }] },
});

describe('overlay across two lab hosts', () => {
  const dir = mkdtempSync('/tmp/shoal-overlay-it-');
  let hosts: LabHost[] = [];
  const engines: EngineClient[] = [];
  const netns = (i: number): string => `/var/run/netns/shoal-lab${LAB}-host${i + 1}`;
  const engineAddr = (i: number): string => hosts[i]!.dockerHost;
  const docker = (i: number, args: string[]) => runDocker(engineAddr(i), args, { timeoutMs: 30_000 });
  const inNs = (i: number, cmd: string, args: string[]) => run('nsenter', [`--net=${netns(i)}`, cmd, ...args], { timeoutMs: 15_000 });

  function view(opts: { withB?: boolean; networks?: boolean } = {}): NodeNetworkView {
    if (opts.networks === false) return { Networks: [], Services: [], Endpoints: [], LoadBalancers: [] };
    const ep = (task: string, node: number, network: string, addr: string) => ({
      TaskID: task, TaskName: `web.${node + 1}.${task}`, ServiceID: 'svc', NodeID: NODES[node]!, NodeAddr: hosts[node]!.address, NetworkID: network, Addr: addr, Running: true,
    });
    const lb = (node: number, network: string, addr: string) => ({ NetworkID: network, NodeID: NODES[node]!, NodeAddr: hosts[node]!.address, Addr: addr });
    return {
      Networks: NETS,
      Services: [{ ID: 'svc', Name: 'web', EndpointMode: 'vip', VIPs: [{ NetworkID: NET_A, Addr: '10.0.9.5' }], Ports: [], Aliases: [], KeepClientIP: false }],
      Endpoints: [ep('ta', 0, NET_A, A), ...(opts.withB === false ? [] : [ep('tb', 1, NET_A, B), ep('tb', 1, NET_B, '10.0.10.20')])],
      LoadBalancers: [lb(0, NET_A, '10.0.9.2'), lb(1, NET_A, '10.0.9.3'), lb(0, NET_B, '10.0.10.2'), lb(1, NET_B, '10.0.10.3')],
    };
  }

  async function apply(i: number, v: NodeNetworkView, mode?: 'ensure'): Promise<void> {
    const file = join(dir, `view-${i}.json`);
    writeFileSync(file, JSON.stringify(v));
    const r = await run('nsenter', [`--net=${netns(i)}`, process.execPath, APPLY, engineAddr(i), NODES[i]!, file, ...(mode ? [mode] : [])], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, `apply-view on host${i + 1}: ${r.stderr}`);
  }

  function task(id: string, node: number, attachments: Array<[ViewNetwork, string]>, cmd: string): Task {
    return {
      ID: id, Version: { Index: 1 }, CreatedAt: '', UpdatedAt: '', Labels: {}, ServiceID: 'svc', Slot: node + 1, NodeID: NODES[node]!,
      Spec: { ContainerSpec: { Image: IMG, Command: ['sh', '-c', cmd] } },
      Status: { Timestamp: '', State: 'assigned', Message: '' }, DesiredState: 'running',
      NetworksAttachments: attachments.map(([n, addr]) => ({ Network: asNetwork(n), Addresses: [`${addr}/24`], Aliases: ['web', `alias-${id}`] })),
    };
  }

  async function startTask(i: number, t: Task): Promise<string> {
    const engine = new EngineClient(engineAddr(i));
    engines.push(engine);
    const ex = new DockerExecutor(engine, silentLogger);
    const config = buildContainerConfig({ task: t, serviceName: 'web', nodeId: NODES[i]! });
    const id = await ex.create(config);
    await ex.start(id);
    return id;
  }

  const httpd = (text: string): string => `mkdir -p /www && echo ${text} > /www/index.html && exec httpd -f -p 80 -h /www`;

  before(async () => {
    await ensureBusyboxImage('/var/run/docker.sock', IMG);
    await runLab(LAB, ['down']);
    const r = await runLab(LAB, ['up', '--hosts', '2', '--docker-swarm'], 240_000);
    assert.equal(r.code, 0, `lab up: ${r.stderr}`);
    hosts = parseHostLines(r.stdout);
    assert.equal(hosts.length, 2);
    // As on a real host where dockerd runs (the lab's namespaces start with
    // ACCEPT): bridged frames go through iptables and FORWARD drops by default.
    for (const i of [0, 1]) {
      assert.equal((await inNs(i, 'iptables', ['-P', 'FORWARD', 'DROP'])).code, 0);
      assert.equal((await inNs(i, 'sysctl', ['-n', 'net.bridge.bridge-nf-call-iptables'])).stdout.trim(), '1');
    }
  });

  after(async () => {
    for (const e of engines) e.close();
    const r = await runLab(LAB, ['down']);
    if (r.code !== 0) process.stderr.write(`lab down failed: ${r.stderr}\n`);
    rmSync(dir, { recursive: true, force: true });
  });

  test('networks made as a task asks for them, then the view: bridge, VXLAN port, engine network, /32s, entries', async () => {
    await Promise.all([0, 1].map((i) => apply(i, view(), 'ensure')));
    const br = bridgeName(NET_A);
    const vx = vxlanName(NET_A);
    const link = JSON.parse((await inNs(0, 'ip', ['-j', '-d', 'link', 'show', 'dev', vx])).stdout) as Array<{ master: string; mtu: number; linkinfo: { info_data: { id: number; local: string; port: number; learning: boolean; proxy: boolean } } }>;
    assert.equal(link[0]!.master, br);
    assert.deepEqual(
      (({ id, local, port, learning, proxy }) => ({ id, local, port, learning, proxy }))(link[0]!.linkinfo.info_data),
      { id: 4242, local: hosts[0]!.address, port: 4789, learning: false, proxy: true });
    const underlay = JSON.parse((await inNs(0, 'ip', ['-j', 'link', 'show', 'dev', 'eth0'])).stdout) as Array<{ mtu: number }>;
    assert.equal(link[0]!.mtu, underlay[0]!.mtu - 50);
    const brLink = JSON.parse((await inNs(0, 'ip', ['-j', 'link', 'show', 'dev', br])).stdout) as Array<{ address: string }>;
    assert.equal(brLink[0]!.address, ipv4Mac('10.0.9.2'));
    const addrs = (await inNs(0, 'ip', ['-4', '-o', 'addr', 'show', 'dev', br])).stdout;
    for (const a of ['10.0.9.1/24', '10.0.9.2/32', '10.0.9.5/32']) assert.ok(addrs.includes(a), `${a} on ${br}: ${addrs}`);
    assert.match((await inNs(0, 'ip', ['neigh', 'show', 'dev', vx])).stdout, new RegExp(`${B.replace(/\./g, '\\.')} lladdr ${ipv4Mac(B)} PERMANENT`));
    assert.match((await inNs(0, 'bridge', ['fdb', 'show', 'dev', vx])).stdout, new RegExp(`${ipv4Mac(B)} dst ${hosts[1]!.address.replace(/\./g, '\\.')} self permanent`));
    const nets = await docker(0, ['network', 'inspect', engineNetworkName(NET_A), '--format', '{{index .Options "com.docker.network.bridge.name"}} {{(index .IPAM.Config 0).Subnet}} {{index .Labels "io.shoal.network.id"}}']);
    assert.equal(nets.stdout.trim(), `${br} 10.0.9.0/24 ${NET_A}`);
    // A second round changes nothing (and complains about nothing).
    await apply(0, view());
  });

  test('task containers on different hosts reach each other by address over VXLAN', async () => {
    await startTask(0, task('ta', 0, [[NETS[0]!, A]], httpd('hello-from-a')));
    await startTask(1, task('tb', 1, [[NETS[0]!, B], [NETS[1]!, '10.0.10.20']], httpd('hello-from-b')));
    const inspectB = await docker(1, ['inspect', 'web.2.tb', '--format', '{{range $k, $v := .NetworkSettings.Networks}}{{$k}}={{$v.IPAddress}},{{$v.MacAddress}},{{join $v.Aliases "+"}} {{end}}']);
    const nets = inspectB.stdout.trim().split(' ').sort();
    assert.equal(nets.length, 2, `both networks: ${inspectB.stdout}`);
    assert.match(nets[0]!, new RegExp(`^${engineNetworkName(NET_A)}=${B},${ipv4Mac(B)},`), 'the engine derives the MAC from the address');
    assert.ok(!nets[0]!.split(',')[2]!.split('+').includes('web'), 'never the service name as an alias');
    assert.match(nets[0]!, /alias-tb/);
    assert.match(nets[1]!, new RegExp(`^${engineNetworkName(NET_B)}=10\\.0\\.10\\.20,`));
    const dns = await docker(0, ['inspect', 'web.1.ta', '--format', '{{json .HostConfig.Dns}}']);
    assert.equal(dns.stdout.trim(), '["169.254.53.53"]');

    // tcpdump on the lab bridge sees the traffic between the hosts as VXLAN.
    const capture = run('timeout', ['10', 'tcpdump', '-l', '-n', '-i', LAB_BRIDGE, '-c', '1', 'udp', 'port', '4789'], { timeoutMs: 15_000 });
    await new Promise((r) => setTimeout(r, 300)); // let tcpdump open the socket (the ping below repeats anyway)
    const ping = await waitFor('host1\'s task to ping host2\'s', async () => {
      const r = await docker(0, ['exec', 'web.1.ta', 'ping', '-c', '1', '-W', '1', B]);
      return r.code === 0 ? r.stdout : undefined;
    }, 15_000, 200);
    assert.match(ping, /1 packets received/);
    const cap = await capture;
    assert.match(cap.stdout, new RegExp(`VXLAN.*vni 4242`, 's'), `tcpdump: ${cap.stdout}${cap.stderr}`);

    const fromA = await docker(0, ['exec', 'web.1.ta', 'timeout', '3', 'wget', '-q', '-O-', `http://${B}/`]);
    assert.equal(fromA.stdout.trim(), 'hello-from-b', fromA.stderr);
    const fromB = await docker(1, ['exec', 'web.2.tb', 'timeout', '3', 'wget', '-q', '-O-', `http://${A}/`]);
    assert.equal(fromB.stdout.trim(), 'hello-from-a', fromB.stderr);
    // Each node's LB address answers from the other node (its MAC and entries are right).
    assert.equal((await docker(1, ['exec', 'web.2.tb', 'ping', '-c', '1', '-W', '2', '10.0.9.2'])).code, 0);
  });

  test('an endpoint that leaves the view loses its FDB and neighbour entries on the other hosts', async () => {
    await apply(0, view({ withB: false }));
    const vx = vxlanName(NET_A);
    assert.doesNotMatch((await inNs(0, 'ip', ['neigh', 'show', 'dev', vx])).stdout, new RegExp(`^${B.replace(/\./g, '\\.')} `, 'm'));
    // The VXLAN device's own entry (with its remote) goes; what the bridge learned on the port ages out.
    assert.doesNotMatch((await inNs(0, 'bridge', ['fdb', 'show', 'dev', vx])).stdout, new RegExp(`${ipv4Mac(B)} dst`));
    assert.match((await inNs(0, 'ip', ['neigh', 'show', 'dev', vx])).stdout, /10\.0\.9\.3 lladdr/, 'the other node\'s LB address stays');
    const r = await docker(0, ['exec', 'web.1.ta', 'ping', '-c', '1', '-W', '1', B]);
    assert.notEqual(r.code, 0, 'no path to a task the view no longer has');
    await apply(0, view());
    assert.equal((await docker(0, ['exec', 'web.1.ta', 'ping', '-c', '1', '-W', '2', B])).code, 0, 'back with the view');
  });

  test('networks no longer needed: kept while a container uses them, removed once none does', async () => {
    await apply(1, view({ networks: false }));
    assert.equal((await docker(1, ['network', 'inspect', engineNetworkName(NET_A)])).code, 0, 'in use: the engine network stays');
    assert.equal((await inNs(1, 'ip', ['link', 'show', 'dev', bridgeName(NET_A)])).code, 0);
    assert.equal((await docker(1, ['rm', '-f', 'web.2.tb'])).code, 0);
    await apply(1, view({ networks: false }));
    for (const n of [NET_A, NET_B]) {
      assert.notEqual((await docker(1, ['network', 'inspect', engineNetworkName(n)])).code, 0, `${n}: engine network removed`);
      assert.notEqual((await inNs(1, 'ip', ['link', 'show', 'dev', bridgeName(n)])).code, 0, `${n}: bridge removed`);
      assert.notEqual((await inNs(1, 'ip', ['link', 'show', 'dev', vxlanName(n)])).code, 0, `${n}: VXLAN port removed`);
    }
  });
});

