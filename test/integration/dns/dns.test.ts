import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import * as packet from 'dns-packet';
import { silentLogger } from '../../../src/common/log';
import { run } from '../../../src/common/run';
import { DnsServer } from '../../../src/agent/network/dns/server';
import { SHOAL_DNS_ADDR, type NodeNetworkView } from '../../../src/protocol/network-view';
import { runDocker } from '../../helpers/daemon';
import { ensureBusyboxImage } from '../../helpers/images';
import { ep } from '../../unit/agent/network/dns/fixtures';

// The path a task container's look-ups take: busybox nslookup → Docker's
// embedded resolver (127.0.0.11) → --dns 169.254.53.53 → Shoal's DNS server on
// its link in the host's namespace. The machine's dockerd runs in the root
// namespace, so the server's link is there too, under a name of this test's
// own (lab index 10), and everything the test made is removed at the end.

const ENGINE = 'unix:///var/run/docker.sock';
const IMAGE = 'shoal-test/busybox:1';
const LINK = 'shoal-dns-t10';
const PREFIX = 'shoal-dns-it10';
const NET_A = `${PREFIX}-a`;           // the swarm network of the view (a plain docker bridge here)
const NET_B = `${PREFIX}-b`;           // a network the view does not know
const SUBNET_A = '10.253.10.0/24';
const SUBNET_B = '10.253.11.0/24';
const VIEW_NET = 'net-it10';
const VIP = '10.253.10.100';

function view(webTasks: string[]): NodeNetworkView {
  return {
    Networks: [{ ID: VIEW_NET, Name: 'app', Subnet: SUBNET_A, Gateway: '10.253.10.1', VNI: 4097, Internal: false, Attachable: true, Ingress: false, Encrypted: false, Labels: {} }],
    Services: [
      { ID: 's-web', Name: 'web', EndpointMode: 'vip', VIPs: [{ NetworkID: VIEW_NET, Addr: VIP }], Ports: [], Aliases: [{ NetworkID: VIEW_NET, Aliases: ['www'] }], KeepClientIP: false },
      { ID: 's-client', Name: 'client', EndpointMode: 'vip', VIPs: [], Ports: [], Aliases: [], KeepClientIP: false },
    ],
    Endpoints: [
      ep('c1', 'client.1.c1', 's-client', VIEW_NET, '10.253.10.5'),
      ...webTasks.map((a, i) => ep(`t${i + 1}`, `web.${i + 1}.t${i + 1}`, 's-web', VIEW_NET, a)),
    ],
    LoadBalancers: [],
  };
}

const docker = (args: string[], timeoutMs = 30_000) => runDocker(ENGINE, args, { timeoutMs });

async function cleanup(): Promise<void> {
  const ps = await docker(['ps', '-aq', '--filter', `label=${PREFIX}`]);
  const ids = ps.stdout.split('\n').filter(Boolean);
  if (ids.length) await docker(['rm', '-f', ...ids]);
  for (const n of [NET_A, NET_B]) await docker(['network', 'rm', n]);
  await run('ip', ['link', 'del', LINK]);
}

// The A addresses busybox nslookup prints for `name` from container `c`
// (its own "Server:/Address:" lines left out); 'NXDOMAIN' when it finds nothing.
async function lookup(c: string, name: string): Promise<string[] | 'NXDOMAIN'> {
  const r = await docker(['exec', `${PREFIX}-${c}`, 'nslookup', '-type=a', name], 20_000);
  if (/NXDOMAIN/.test(r.stdout + r.stderr)) return 'NXDOMAIN';
  assert.equal(r.code, 0, `nslookup ${name} in ${c}: ${r.stdout}${r.stderr}`);
  const addrs = r.stdout.split('\n').filter((l) => /^Address:\s*\d+\.\d+\.\d+\.\d+$/.test(l.trim())).map((l) => l.split(/\s+/)[1]!);
  return addrs.sort();
}

let server: DnsServer | undefined;
let upstream: dgram.Socket | undefined;

before(async () => {
  await cleanup();
  // A one-node daemon killed by an earlier test (kill -9) leaves its server's link behind.
  await run('ip', ['link', 'del', 'shoal-dns']);
  const taken = await run('ip', ['-o', 'addr', 'show', 'to', `${SHOAL_DNS_ADDR}/32`]);
  assert.equal(taken.stdout.trim(), '', `${SHOAL_DNS_ADDR} is already on this machine's root namespace: ${taken.stdout}`);
  await ensureBusyboxImage(ENGINE, IMAGE);

  // The host's "upstream" server: outside.test is 192.0.2.9, anything else NXDOMAIN.
  const up = dgram.createSocket('udp4');
  upstream = up;
  up.on('message', (msg, r) => {
    const q = packet.decode(msg);
    const ours = q.questions?.[0]?.name.toLowerCase() === 'outside.test' && q.questions[0].type === 'A';
    up.send(packet.encode({
      type: 'response', id: q.id, flags: ours || q.questions?.[0]?.name.toLowerCase() === 'outside.test' ? 0 : 3, questions: q.questions,
      answers: ours ? [{ type: 'A', name: q.questions![0]!.name, ttl: 30, data: '192.0.2.9' }] : [],
    }), r.port, r.address);
  });
  await new Promise<void>((ok) => up.bind({ address: '127.0.0.1', port: 0 }, () => ok()));

  server = new DnsServer({ nodeId: 'n10', nodeAddr: '127.0.0.1', log: silentLogger, link: LINK, upstreams: [{ addr: '127.0.0.1', port: up.address().port }] });
  await server.update(view(['10.253.10.11', '10.253.10.12']));
  assert.equal(server.port, 53, 'the server listens on port 53 of its link');

  for (const [n, subnet] of [[NET_A, SUBNET_A], [NET_B, SUBNET_B]] as const) {
    const r = await docker(['network', 'create', '--label', PREFIX, '--subnet', subnet, n]);
    assert.equal(r.code, 0, r.stderr);
  }
  for (const [c, n, ip] of [['c1', NET_A, '10.253.10.5'], ['c2', NET_A, '10.253.10.6'], ['c3', NET_B, '10.253.11.5']] as const) {
    const r = await docker(['run', '-d', '--name', `${PREFIX}-${c}`, '--label', PREFIX, '--network', n, '--ip', ip, '--dns', SHOAL_DNS_ADDR, IMAGE, 'sleep', '300']);
    assert.equal(r.code, 0, r.stderr);
  }
});

after(async () => {
  await server?.close();
  upstream?.close();
  const link = await run('ip', ['link', 'show', LINK]);
  await cleanup();
  assert.notEqual(link.code, 0, 'close() removed the link');
});

test('through 127.0.0.11: the service VIP, tasks., an alias, a task name; other names forwarded upstream', async () => {
  assert.deepEqual(await lookup('c1', 'web'), [VIP]);
  assert.deepEqual(await lookup('c1', 'WEB.'), [VIP]);
  assert.deepEqual(await lookup('c1', 'www'), [VIP]);
  assert.deepEqual(await lookup('c1', 'tasks.web'), ['10.253.10.11', '10.253.10.12']);
  assert.deepEqual(await lookup('c1', 'web.2.t2'), ['10.253.10.12']);
  assert.deepEqual(await lookup('c1', 'outside.test'), ['192.0.2.9']);
  assert.equal(await lookup('c1', 'nothing.test'), 'NXDOMAIN');
});

test('scoped by the asking container: an unlisted address in the subnet sees the names, another network does not', async () => {
  assert.deepEqual(await lookup('c2', 'web'), [VIP]);
  assert.equal(await lookup('c3', 'web'), 'NXDOMAIN');
  assert.equal(await lookup('c3', 'tasks.web'), 'NXDOMAIN');
  assert.deepEqual(await lookup('c3', 'outside.test'), ['192.0.2.9']);
});

test('127.0.0.11 keeps no answer: a changed view is seen by the next query', async () => {
  assert.deepEqual(await lookup('c1', 'tasks.web'), ['10.253.10.11', '10.253.10.12']);
  await server!.update(view(['10.253.10.11']));
  assert.deepEqual(await lookup('c1', 'tasks.web'), ['10.253.10.11']);
  assert.equal(await lookup('c1', 'web.2.t2'), 'NXDOMAIN');
  await server!.update(view(['10.253.10.11', '10.253.10.13']));
  assert.deepEqual(await lookup('c1', 'tasks.web'), ['10.253.10.11', '10.253.10.13']);
  await server!.update(view([]));
  // No running task: the name is still the service's (its VIP); tasks. is known but empty.
  assert.deepEqual(await lookup('c1', 'web'), [VIP]);
  const r = await docker(['exec', `${PREFIX}-c1`, 'nslookup', '-type=a', 'tasks.web'], 20_000);
  assert.doesNotMatch(r.stdout, /Address:\s*10\.253/);
});
