// Issue 9's leftovers on a three-host Shoal lab (one manager, two workers),
// with the real docker CLI: service names on an --internal overlay (no way
// out, yet names resolve through the network's gateway), a container's
// --network-alias and `network connect --alias` answering from other hosts,
// an encrypted overlay (the underlay captured), keep-client-ip with the task
// on another host, and `docker swarm leave` (a worker, then the manager with --force) taking
// Shoal's networks off the node: engine networks, bridges, VXLAN ports, the
// nftables table, the DNS link. Lab index 22 (SHOAL_LAB_INDEX).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { get } from 'node:http';
import { run } from '../../../src/common/run';
import { runDocker, waitFor, type DockerResult } from '../../helpers/daemon';
import { ensureBusyboxImage } from '../../helpers/images';
import { LabSession, parseHostLines, runLab, type LabHost } from '../../helpers/lab';

const INDEX = process.env.SHOAL_LAB_INDEX ?? '22';
const IMG = 'shoal-test/busybox:1';
const CLI_MS = 60_000;
const CONVERGE_MS = 60_000;

describe('internal networks, container aliases and swarm leave (three-host lab)', { concurrency: 1 }, () => {
  const dir = join(mkdtempSync('/tmp/shoal-netleft-it-'), 'lab');
  const session = new LabSession(INDEX, dir, CLI_MS);
  const host = (name: string): LabHost => session.host(name);
  const lab = (args: string[]): Promise<string> => session.lab(args);
  const d = (name: string, args: string[]): Promise<DockerResult> => session.docker(name, args);
  // The host's own dockerd, past Shoal (which hides its engine networks).
  const engine = (name: string, args: string[]): Promise<DockerResult> => runDocker(`unix://${join(dir, 'hosts', name, 'docker.sock')}`, args, { timeoutMs: CLI_MS });
  const inNs = (name: string, cmd: string, args: string[]) => run('nsenter', [`--net=/var/run/netns/shoal-lab${INDEX}-${name}`, cmd, ...args], { timeoutMs: 15_000 });
  const ok = async (name: string, args: string[]): Promise<string> => {
    const r = await d(name, args);
    assert.equal(r.code, 0, `docker ${args.join(' ')} on ${name}: ${r.stderr}${r.stdout}`);
    return r.stdout.trim();
  };
  const taskContainer = (name: string, service: string): Promise<string> =>
    waitFor(`a running ${service} container on ${name}`, async () => (await ok(name, ['ps', '-q', '--filter', `label=com.docker.swarm.service.name=${service}`])).split('\n')[0], CONVERGE_MS, 300);
  const inTask = async (name: string, service: string, sh: string): Promise<DockerResult> => d(name, ['exec', await taskContainer(name, service), 'sh', '-c', sh]);
  const runningTasks = async (service: string): Promise<string[]> =>
    (await ok('host1', ['service', 'ps', '--filter', 'desired-state=running', '--format', '{{.Node}} {{.CurrentState}}', service]))
      .split('\n').filter((l) => / Running/.test(l)).map((l) => l.split(' ')[0]!);
  const waitRunning = (service: string, n: number): Promise<string[]> =>
    waitFor(`${n} running tasks of ${service}`, async () => { const t = await runningTasks(service); return t.length === n ? t : undefined; }, CONVERGE_MS, 300);
  const answers = (out: string): string[] => [...out.split('Name:').slice(1).join('\n').matchAll(/Address: ([0-9.]+)/g)].map((m) => m[1]!).sort();
  // nslookup from inside a container (through Docker's resolver, then Shoal's DNS).
  const lookupIn = async (name: string, container: string, q: string): Promise<DockerResult & { addrs: string[] }> => {
    const r = await d(name, ['exec', container, 'sh', '-c', `nslookup ${q} 2>&1`]);
    return { ...r, addrs: answers(r.stdout) };
  };
  const containerAddr = (name: string, container: string, networkId: string): Promise<string> =>
    ok(name, ['inspect', '--format', `{{(index .NetworkSettings.Networks "shoal-${networkId.slice(0, 12)}").IPAddress}}`, container]);
  let secret = '';

  before(async () => {
    await ensureBusyboxImage('/var/run/docker.sock', IMG);
    await runLab(INDEX, ['down', '--dir', dir], 120_000);
    session.hosts = parseHostLines(await lab(['up', '--hosts', '3', '--managers', '1', '--workers', '2']));
    secret = await ok('host1', ['network', 'create', '-d', 'overlay', '--internal', '--attachable', 'secret']);
    await ok('host1', ['service', 'create', '-d', '--name', 'vault', '--replicas', '2', '--network', 'secret', '--constraint', 'node.hostname!=host1', '--placement-pref', 'spread=node.id', IMG, 'httpd', '-f', '-p', '80', '-h', '/etc']);
    await ok('host1', ['service', 'create', '-d', '--name', 'probe', '--mode', 'global', '--network', 'secret', IMG, 'sleep', '100000']);
    assert.deepEqual((await waitRunning('vault', 2)).sort(), ['host2', 'host3']);
    await waitRunning('probe', 3);
  });

  after(async () => {
    for (const h of session.hosts) { try { copyFileSync(join(dir, 'hosts', h.name, 'shoal.log'), join(dir, '..', `${h.name}.shoal.log`)); } catch { /* host never started */ } }
    await runLab(INDEX, ['down', '--dir', dir], 120_000);
  });

  test('an --internal network: no way out, yet service names resolve (VIP, tasks.) through the gateway and answer across hosts', async () => {
    const probe = await taskContainer('host1', 'probe');
    // Its DNS server is its gateway (reachable with or without a default route; dockerd 20.10 still gives one).
    const gw = (JSON.parse(await ok('host1', ['network', 'inspect', '--format', '{{json .IPAM.Config}}', 'secret'])) as Array<{ Gateway: string }>)[0]!.Gateway;
    assert.equal(await ok('host1', ['inspect', '--format', '{{json .HostConfig.Dns}}', probe]), JSON.stringify([gw]));
    // Nothing leaves: host1's swarm port is not reachable from a task on host2.
    const out2377 = await inTask('host2', 'probe', `timeout 3 nc ${host('host1').address} 2377 </dev/null && echo OPEN || echo CLOSED`);
    assert.match(out2377.stdout, /CLOSED/);
    const vips = JSON.parse(await ok('host1', ['service', 'inspect', '--format', '{{json .Endpoint.VirtualIPs}}', 'vault'])) as Array<{ NetworkID: string; Addr: string }>;
    const vip = vips.find((v) => v.NetworkID === secret)!.Addr.split('/')[0]!;
    const r = await lookupIn('host1', probe, 'vault');
    assert.deepEqual(r.addrs, [vip], r.stdout);
    assert.equal((await lookupIn('host1', probe, 'tasks.vault')).addrs.length, 2);
    const names = new Set<string>();
    for (let i = 0; i < 12; i++) names.add((await inTask('host1', 'probe', 'timeout 3 wget -q -O- http://vault/hostname || echo FAIL')).stdout.trim());
    assert.ok(!names.has('FAIL') && names.size === 2, `answers: ${[...names].join(' ')}`);
    // Other names are not forwarded for it (moby's CVE-2024-29018): SERVFAIL.
    const out = await lookupIn('host1', probe, 'example.com');
    assert.deepEqual(out.addrs, [], out.stdout);
  });

  test('network inspect on a node that carries it: its containers, its LB endpoint, every carrying node as a peer, the service VIPs (verbose)', async () => {
    const r = JSON.parse(await ok('host1', ['network', 'inspect', '--verbose', 'secret']))[0] as {
      Containers: Record<string, { Name: string; IPv4Address: string }>; Peers?: Array<{ Name: string; IP: string }>;
      Services?: Record<string, { VIP: string; Tasks: Array<{ Name: string; EndpointIP: string }> }>;
    };
    const names = Object.entries(r.Containers).map(([k, v]) => (k.startsWith('lb-') ? k : v.Name.split('.')[0])).sort();
    assert.deepEqual(names, ['lb-secret', 'probe'], JSON.stringify(r.Containers));
    assert.equal(r.Containers['lb-secret']!.Name, 'secret-endpoint');
    assert.deepEqual(r.Peers?.map((p) => p.Name).sort(), ['host1', 'host2', 'host3']);
    assert.deepEqual(r.Peers?.map((p) => p.IP).sort(), session.hosts.map((h) => h.address).sort());
    const vips = JSON.parse(await ok('host1', ['service', 'inspect', '--format', '{{json .Endpoint.VirtualIPs}}', 'vault'])) as Array<{ Addr: string }>;
    assert.equal(r.Services?.vault?.VIP, vips[0]!.Addr.split('/')[0]);
    assert.equal(r.Services?.vault?.Tasks.length, 2);
    // On a worker (host2: a vault and a probe task): the network it carries, in ls and inspect.
    assert.match(await ok('host2', ['network', 'ls', '--format', '{{.Name}} {{.Driver}} {{.Scope}}']), /^secret overlay swarm$/m);
    const w = JSON.parse(await ok('host2', ['network', 'inspect', 'secret']))[0] as {
      Id: string; Internal: boolean; Containers: Record<string, { Name: string }>; Peers?: Array<{ IP: string }>;
    };
    assert.equal(w.Id, secret);
    assert.equal(w.Internal, true);
    const here = Object.entries(w.Containers).map(([k, v]) => (k.startsWith('lb-') ? k : v.Name.split('.')[0])).sort();
    assert.deepEqual(here, ['lb-secret', 'probe', 'vault'], JSON.stringify(w.Containers));
    assert.deepEqual(w.Peers?.map((p) => p.IP).sort(), session.hosts.map((h) => h.address).sort());
    // A swarm network it does not carry is not found there, as on Docker's worker.
    await ok('host1', ['network', 'create', '-d', 'overlay', 'elsewhere']);
    const none = await d('host2', ['network', 'inspect', 'elsewhere']);
    assert.notEqual(none.code, 0);
    assert.match(none.stderr, /No such network: elsewhere|network elsewhere not found/);
  });

  test('docker run --network-alias (with and without --name) and network connect --alias on an attachable network answer from other hosts', async () => {
    await ok('host3', ['run', '-d', '--name', 'c1', '--network', 'secret', '--network-alias', 'db', IMG, 'httpd', '-f', '-p', '80', '-h', '/etc']);
    const c1 = await containerAddr('host3', 'c1', secret);
    await ok('host2', ['run', '-d', '--name', 'c2', IMG, 'httpd', '-f', '-p', '80', '-h', '/etc']);
    await ok('host2', ['network', 'connect', '--alias', 'cache', 'secret', 'c2']);
    const c2 = await containerAddr('host2', 'c2', secret);
    const c2Id = (await ok('host2', ['inspect', '--format', '{{.Id}}', 'c2'])).slice(0, 12);
    // No --name: the engine's name and the short ID answer too (named once the engine made it).
    const anonId = await ok('host3', ['run', '-d', '--network', 'secret', IMG, 'sleep', '100000']);
    const anonName = (await ok('host3', ['inspect', '--format', '{{.Name}}', anonId])).replace(/^\//, '');
    const anon = await containerAddr('host3', anonId, secret);
    const probe = await taskContainer('host1', 'probe');
    for (const [name, want] of [['db', c1], ['c1', c1], ['cache', c2], ['c2', c2], [c2Id, c2], [anonName, anon], [anonId.slice(0, 12), anon]] as const) {
      const got = await waitFor(`${name} resolves from host1`, async () => { const r = await lookupIn('host1', probe, name); return r.addrs.length ? r.addrs : undefined; }, 20_000, 500);
      assert.deepEqual(got, [want], name);
    }
    assert.equal((await inTask('host1', 'probe', 'timeout 3 wget -q -O- http://db/hostname')).stdout.trim(), (await ok('host3', ['exec', 'c1', 'hostname'])).trim());
    // A container run on an internal network asks Shoal's DNS through its gateway, too.
    const vault = await lookupIn('host3', 'c1', 'vault');
    assert.equal(vault.addrs.length, 1, vault.stdout);
  });

  // Records the UDP traffic between two hosts while `during` runs, on the
  // first one's own link (the lab bridge itself sees only what it floods);
  // returns it as text (tcpdump -A).
  const captured = async (on: string, peer: string, during: () => Promise<void>): Promise<string> => {
    const file = join(dir, '..', `capture-${Date.now()}.pcap`);
    const dump = spawn('nsenter', [`--net=/var/run/netns/shoal-lab${INDEX}-${on}`, 'timeout', '60', 'tcpdump', '-i', 'eth0', '-nn', '--immediate-mode', '-U', '-w', file,
      `udp and host ${host(on).address} and host ${host(peer).address}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    dump.stderr.on('data', (c: Buffer) => { err += c.toString(); });
    const exited = new Promise<void>((resolve) => dump.on('close', () => resolve()));
    await waitFor('tcpdump listening', async () => (/listening on/.test(err) ? true : undefined), 10_000, 50);
    try {
      await during();
      // Packets reach the file a moment after they passed (any at all: both uses expect some).
      await waitFor('captured packets in the file', async () => (statSync(file).size > 24 ? true : undefined), 5_000, 50);
    } finally { dump.kill('SIGINT'); await exited; }
    const text = await run('tcpdump', ['-r', file, '-nn', '-A'], { timeoutMs: 30_000 });
    assert.equal(text.code, 0, text.stderr);
    return text.stdout;
  };

  test('an encrypted overlay (--opt encrypted): tasks on different hosts talk through WireGuard; the underlay carries no plaintext (captured)', async () => {
    await ok('host1', ['network', 'create', '-d', 'overlay', '--opt', 'encrypted', 'sealed']);
    assert.equal(await ok('host1', ['network', 'inspect', '--format', '{{index .Options "encrypted"}}|{{.Driver}}', 'sealed']), '|overlay');
    await ok('host1', ['service', 'create', '-d', '--name', 'sweb', '--network', 'sealed', '--constraint', 'node.hostname==host2', IMG, 'httpd', '-f', '-p', '80', '-h', '/']);
    await ok('host1', ['service', 'create', '-d', '--name', 'sprobe', '--network', 'sealed', '--constraint', 'node.hostname==host3', IMG, 'sleep', '100000']);
    await waitRunning('sweb', 1);
    await waitRunning('sprobe', 1);
    const [a2, a3] = [host('host2').address, host('host3').address];
    const webName = (await inTask('host2', 'sweb', 'hostname')).stdout.trim();
    const size = (await inTask('host2', 'sweb', 'wc -c < /bin/busybox')).stdout.trim();
    const marker = `sealed-${Date.now()}`;
    const text = await captured('host2', 'host3', async () => {
      // By name through the VIP, and a large reply (full-size segments: the encrypted network's MTU holds).
      const r = await waitFor('sweb answers from host3', async () => {
        const out = (await inTask('host3', 'sprobe', `timeout 5 wget -q -O- "http://sweb/etc/hostname?${marker}"`)).stdout.trim();
        return out || undefined;
      }, 30_000, 500);
      assert.equal(r, webName);
      assert.equal((await inTask('host3', 'sprobe', 'timeout 10 wget -q -O- http://sweb/bin/busybox | wc -c')).stdout.trim(), size);
    });
    assert.ok(!text.includes(marker), 'the request line is not on the underlay in clear');
    assert.doesNotMatch(text, /IP [0-9.]+\.\d+ > [0-9.]+\.4789: /, 'no plain VXLAN between the two hosts');
    assert.match(text, new RegExp(`IP ${a3.replace(/\./g, '\\.')}\\.7946 > ${a2.replace(/\./g, '\\.')}\\.7946: UDP`), 'WireGuard between the two hosts');
    // Both hosts show their peer with a handshake.
    for (const [h, peer] of [['host2', a3], ['host3', a2]] as const) {
      const wg = await inNs(h, 'wg', ['show', 'all', 'endpoints']);
      assert.match(wg.stdout, new RegExp(`${peer.replace(/\./g, '\\.')}:7946`), `${h}: ${wg.stdout}${wg.stderr}`);
    }
    // The same capture on the plain network does show a request line: the check above can fail.
    const vaultOn2 = await taskContainer('host2', 'vault');
    const plainAddr = await containerAddr('host2', vaultOn2, secret);
    let answer = '';
    const plain = await captured('host2', 'host3', async () => {
      const out = await inTask('host3', 'probe', `timeout 5 wget -q -O- "http://${plainAddr}/hostname?${marker}"`);
      assert.equal(out.code, 0, out.stderr);
      answer = out.stdout;
    });
    assert.ok(plain.includes(marker), `a plain overlay carries the request in clear (${plainAddr} answered ${answer}; captured: ${plain.slice(0, 1500)})`);
    await ok('host1', ['service', 'rm', 'sweb', 'sprobe']);
  });

  // GET from this machine (its address on the lab bridge); the body, or '' on any failure.
  const fetchText = (url: string): Promise<string> => new Promise((resolve) => {
    // busybox httpd passes the CGI's LF-only header lines through: Node's strict parser refuses them.
    const req = get(url, { timeout: 3_000, insecureHTTPParser: true }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => { body += c; }).on('end', () => resolve(res.statusCode === 200 ? body.trim() : ''));
    });
    req.on('timeout', () => req.destroy()).on('error', () => resolve(''));
  });

  test('keep-client-ip: a task on another host than the one asked sees the client\'s own address; without the label a load-balancer address', async () => {
    // A CGI that answers the address the task sees; the one task on host2.
    const cgi = 'mkdir -p /www/cgi-bin && printf \'#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR\\n\' > /www/cgi-bin/ip && chmod +x /www/cgi-bin/ip && exec httpd -f -p 80 -h /www';
    await ok('host1', ['service', 'create', '-d', '--name', 'who', '--label', 'io.shoal.ingress.keep-client-ip=true', '-p', '8088:80', '--constraint', 'node.hostname==host2', IMG, 'sh', '-c', cgi]);
    await waitRunning('who', 1);
    const machine = `10.199.${Number(INDEX)}.1`;
    const seenVia = (name: string): Promise<string> => fetchText(`http://${host(name).address}:8088/cgi-bin/ip`).then((b) => b.replace(/^\[::ffff:(.*)\]$/, '$1'));
    for (const name of ['host2', 'host3', 'host1']) {
      const got = await waitFor(`who answers through ${name}`, async () => (await seenVia(name)) || undefined, 30_000, 300);
      assert.equal(got, machine, `through ${name}`);
    }
    // Several connections through a host without a task: every one keeps it.
    for (let i = 0; i < 5; i++) assert.equal(await seenVia('host3'), machine);
    // Without the label: the mesh source-NATs to the entry node's ingress address.
    await ok('host1', ['service', 'update', '-d', '--label-rm', 'io.shoal.ingress.keep-client-ip', 'who']);
    const natted = await waitFor('who sees a load-balancer address through host3', async () => { const a = await seenVia('host3'); return a && a !== machine ? a : undefined; }, 30_000, 300);
    assert.match(natted, /^10\.0\.0\.\d+$/);
    await ok('host1', ['service', 'rm', 'who']);
  });

  // Nothing of Shoal's networking left on a host's kernel and engine.
  const leftovers = async (name: string): Promise<string[]> => {
    const left: string[] = [];
    const links = (await inNs(name, 'ip', ['-o', 'link', 'show'])).stdout;
    for (const m of links.matchAll(/^\d+: ((?:sb|sv|sw)-[0-9a-z]+|shoal-dns)[:@]/gm)) left.push(`device ${m[1]}`);
    const nets = await engine(name, ['network', 'ls', '-q', '--filter', 'label=io.shoal.network.id']);
    assert.equal(nets.code, 0, nets.stderr);
    if (nets.stdout.trim()) left.push(`engine networks ${nets.stdout.trim().split('\n').join(' ')}`);
    if ((await inNs(name, 'nft', ['list', 'table', 'ip', 'shoal'])).code === 0) left.push('nft table ip shoal');
    return left;
  };

  test('swarm leave (a worker, then the manager with --force) takes Shoal\'s networks off the node', async () => {
    // Before: host3 has the overlay (its tasks and c1 are on it).
    assert.ok((await leftovers('host3')).length >= 3, 'host3 carries the overlay before leaving');
    await ok('host3', ['swarm', 'leave']);
    assert.deepEqual(await leftovers('host3'), []);
    // The container run on the swarm network stays, disconnected from it (as Docker's leave does).
    const nets = await engine('host3', ['inspect', '--format', '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}', 'c1']);
    assert.equal(nets.code, 0, nets.stderr);
    assert.equal(nets.stdout.trim(), '');
    assert.ok((await leftovers('host1')).length >= 3, 'host1 carries the overlay before leaving');
    await ok('host1', ['swarm', 'leave', '--force']);
    assert.deepEqual(await leftovers('host1'), []);
  });
});
