// Issue 9 end to end on a three-host Shoal lab (one manager, two workers),
// typed with the real docker CLI: an overlay across hosts, service names by
// VIP and tasks.NAME through Shoal's DNS, VIP load balancing over tasks on
// every host, dnsrr, the routing mesh on every host's address and loopback,
// host-mode publishing, a removed task gone from DNS and the VIP at once,
// isolation between networks, and removal refused while a network is in use.
// Lab index 2 (SHOAL_LAB_INDEX), so it runs beside the other lab tests' labs.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../../src/common/run';
import { waitFor, type DockerResult } from '../../helpers/daemon';
import { ensureBusyboxImage } from '../../helpers/images';
import { LabSession, parseHostLines, runLab, type LabHost } from '../../helpers/lab';

const INDEX = process.env.SHOAL_LAB_INDEX ?? '2';
const IMG = 'shoal-test/busybox:1';     // copied into every host by `lab up`
const CLI_MS = 60_000;
const CONVERGE_MS = 60_000;
const SAMPLES = 30;                     // requests per spread check (3 backends: all seen with p > 0.99)

describe('overlay networks, service discovery, VIPs and the routing mesh (three-host lab)', { concurrency: 1 }, () => {
  const dir = join(mkdtempSync('/tmp/shoal-net-it-'), 'lab');
  const session = new LabSession(INDEX, dir, CLI_MS);
  const host = (name: string): LabHost => session.host(name);
  const lab = (args: string[]): Promise<string> => session.lab(args);
  const d = (name: string, args: string[]): Promise<DockerResult> => session.docker(name, args);
  const ok = async (name: string, args: string[]): Promise<string> => {
    const r = await d(name, args);
    assert.equal(r.code, 0, `docker ${args.join(' ')} on ${name}: ${r.stderr}${r.stdout}`);
    return r.stdout.trim();
  };
  // A shell command inside the (one) running container of `service` on host `name`.
  const inTask = async (name: string, service: string, sh: string): Promise<DockerResult> => {
    const id = await waitFor(`a running ${service} container on ${name}`, async () => (await ok(name, ['ps', '-q', '--filter', `label=com.docker.swarm.service.name=${service}`])).split('\n')[0], CONVERGE_MS, 300);
    return d(name, ['exec', id, 'sh', '-c', sh]);
  };
  const runningTasks = async (service: string): Promise<string[]> =>
    (await ok('host1', ['service', 'ps', '--filter', 'desired-state=running', '--format', '{{.Node}} {{.CurrentState}}', service]))
      .split('\n').filter((l) => / Running/.test(l)).map((l) => l.split(' ')[0]!);
  const waitRunning = (service: string, n: number): Promise<string[]> =>
    waitFor(`${n} running tasks of ${service}`, async () => { const t = await runningTasks(service); return t.length === n ? t : undefined; }, CONVERGE_MS, 300);
  // The addresses of a service's running tasks on `network`, from the store (task inspect).
  const taskAddrs = async (service: string, network: string): Promise<string[]> => {
    const ids = (await ok('host1', ['service', 'ps', '-q', '--filter', 'desired-state=running', service])).split('\n').filter(Boolean);
    const out = await ok('host1', ['inspect', '--format', `{{range .NetworksAttachments}}{{if eq .Network.Spec.Name "${network}"}}{{range .Addresses}}{{.}} {{end}}{{end}}{{end}}`, ...ids]);
    return out.split(/\s+/).filter(Boolean).map((a) => a.split('/')[0]!).sort();
  };
  const vip = async (service: string, networkId: string): Promise<string> => {
    const vips = JSON.parse(await ok('host1', ['service', 'inspect', '--format', '{{json .Endpoint.VirtualIPs}}', service])) as Array<{ NetworkID: string; Addr: string }>;
    const v = vips.find((x) => x.NetworkID === networkId);
    assert.ok(v, `${service} has a VIP on ${networkId}: ${JSON.stringify(vips)}`);
    return v.Addr.split('/')[0]!;
  };
  // nslookup's answers (the addresses after the "Name:" line), sorted.
  const lookup = async (on: string, from: string, name: string): Promise<string[]> => {
    const r = await inTask(on, from, `nslookup ${name} 2>&1`);
    return [...r.stdout.split('Name:').slice(1).join('\n').matchAll(/Address: ([0-9.]+)/g)].map((m) => m[1]!).sort();
  };
  // The distinct hostnames that `count` requests to `url` got, from inside a task or from the machine.
  const spreadFrom = async (fetch: (n: number) => Promise<DockerResult>): Promise<Set<string>> => {
    const r = await fetch(SAMPLES);
    const names = r.stdout.split('\n').map((l) => l.trim()).filter(Boolean);
    assert.ok(names.length >= SAMPLES - 1, `answers: ${names.length} of ${SAMPLES} (${r.stderr})`);
    return new Set(names.filter((n) => n !== 'FAIL'));
  };
  const loop = (n: number, cmd: string): string => `for i in $(seq ${n}); do ${cmd} || echo FAIL; done`;
  const webHostnames = async (): Promise<Set<string>> => {
    const out = await ok('host1', ['service', 'ps', '-q', '--filter', 'desired-state=running', 'web']);
    const names = new Set<string>();
    for (const h of session.hosts) {
      for (const id of (await ok(h.name, ['ps', '-q', '--filter', 'label=com.docker.swarm.service.name=web'])).split('\n').filter(Boolean)) names.add(id.slice(0, 12));
    }
    assert.ok(out.length > 0);
    return names;
  };
  let appnet = '';

  before(async () => {
    await ensureBusyboxImage('/var/run/docker.sock', IMG);
    await runLab(INDEX, ['down', '--dir', dir], 120_000); // whatever an interrupted run left at this index
    session.hosts = parseHostLines(await lab(['up', '--hosts', '3', '--managers', '1', '--workers', '2']));
    appnet = await ok('host1', ['network', 'create', '-d', 'overlay', 'appnet']);
    await ok('host1', ['network', 'create', '-d', 'overlay', 'othernet']);
    await ok('host1', ['service', 'create', '-d', '--name', 'web', '--replicas', '3', '--network', 'appnet', '-p', '8080:80', '--placement-pref', 'spread=node.id', IMG, 'httpd', '-f', '-p', '80', '-h', '/etc']);
    await ok('host1', ['service', 'create', '-d', '--name', 'client', '--mode', 'global', '--network', 'appnet', IMG, 'sleep', '100000']);
    await ok('host1', ['service', 'create', '-d', '--name', 'outsider', '--mode', 'global', '--network', 'othernet', IMG, 'sleep', '100000']);
    assert.deepEqual((await waitRunning('web', 3)).sort(), ['host1', 'host2', 'host3']);
    await waitRunning('client', 3);
    await waitRunning('outsider', 3);
  });

  // Each host's daemon log is kept beside the lab's folder (the lab's own goes with `lab down`).
  after(async () => {
    for (const h of session.hosts) { try { copyFileSync(join(dir, 'hosts', h.name, 'shoal.log'), join(dir, '..', `${h.name}.shoal.log`)); } catch { /* host never started */ } }
    await runLab(INDEX, ['down', '--dir', dir], 120_000);
  });

  test('a service name answers its VIP, tasks.NAME the running tasks, from every host', async () => {
    const v = await vip('web', appnet);
    const addrs = await taskAddrs('web', 'appnet');
    assert.equal(addrs.length, 3);
    for (const h of ['host1', 'host2', 'host3']) {
      assert.deepEqual(await lookup(h, 'client', 'web'), [v], `web from ${h}`);
      assert.deepEqual(await lookup(h, 'client', 'tasks.web'), addrs, `tasks.web from ${h}`);
    }
  });

  test('connections to the VIP spread over the tasks on all three hosts', async () => {
    const want = await webHostnames();
    const seen = await spreadFrom((n) => inTask('host2', 'client', loop(n, 'timeout 3 wget -q -O- http://web/hostname')));
    assert.deepEqual([...seen].sort(), [...want].sort());
  });

  test('a published port answers on every host\'s address and on loopback, spread over all tasks', async () => {
    const want = await webHostnames();
    for (const h of session.hosts) {
      const seen = await spreadFrom(async (n) => {
        const r = await run('sh', ['-c', loop(n, `timeout 3 wget -q -O- http://${h.address}:8080/hostname`)], { timeoutMs: 120_000 });
        return { code: r.code, stdout: r.stdout, stderr: r.stderr };
      });
      assert.deepEqual([...seen].sort(), [...want].sort(), `through ${h.name} (${h.address})`);
    }
    const r = await run('nsenter', [`--net=/var/run/netns/shoal-lab${INDEX}-host3`, 'sh', '-c', loop(5, 'timeout 3 wget -q -O- http://127.0.0.1:8080/hostname')], { timeoutMs: 60_000 });
    const names = r.stdout.split('\n').filter(Boolean);
    assert.equal(names.length, 5, r.stderr);
    for (const n of names) assert.ok(want.has(n), `127.0.0.1:8080 on host3 answered "${n}"`);
  });

  test('dnsrr: the service name answers the task addresses', async () => {
    await ok('host1', ['service', 'create', '-d', '--name', 'rr', '--replicas', '2', '--endpoint-mode', 'dnsrr', '--network', 'appnet', IMG, 'httpd', '-f', '-p', '80', '-h', '/etc']);
    await waitRunning('rr', 2);
    const addrs = await taskAddrs('rr', 'appnet');
    assert.equal(addrs.length, 2);
    assert.deepEqual(await lookup('host3', 'client', 'rr'), addrs);
  });

  test('a task scaled away leaves DNS and the VIP at once', async () => {
    await ok('host1', ['service', 'scale', '-d', 'web=2']);
    await waitRunning('web', 2);
    const addrs = await taskAddrs('web', 'appnet');
    const want = await waitFor('the removed web container gone', async () => { const w = await webHostnames(); return w.size === 2 ? w : undefined; }, CONVERGE_MS, 300);
    assert.deepEqual(await lookup('host1', 'client', 'tasks.web'), addrs);
    const seen = await spreadFrom((n) => inTask('host1', 'client', loop(n, 'timeout 3 wget -q -O- http://web/hostname')));
    assert.deepEqual([...seen].sort(), [...want].sort());
  });

  test('networks are isolated: a task on another network neither resolves nor reaches the service', async () => {
    const v = await vip('web', appnet);
    assert.deepEqual(await lookup('host2', 'outsider', 'web'), []);
    const r = await inTask('host2', 'outsider', `timeout 3 wget -q -O- http://${v}/hostname || echo FAIL`);
    assert.match(r.stdout, /FAIL/);
  });

  test('host-mode publishing listens only where a task runs', async () => {
    await ok('host1', ['service', 'create', '-d', '--name', 'hostmode', '--constraint', 'node.hostname==host2', '--publish', 'mode=host,published=8090,target=80', IMG, 'httpd', '-f', '-p', '80', '-h', '/etc']);
    await waitRunning('hostmode', 1);
    const fetch = (addr: string) => run('sh', ['-c', `timeout 3 wget -q -O- http://${addr}:8090/hostname || echo FAIL`], { timeoutMs: 10_000 });
    await waitFor('host2:8090 answers', async () => !(await fetch(host('host2').address)).stdout.includes('FAIL'), 20_000, 300);
    assert.match((await fetch(host('host1').address)).stdout, /FAIL/);
    // `service ls` shows ingress ports only (the CLI's filter); inspect shows this one.
    const ports = JSON.parse(await ok('host1', ['service', 'inspect', '--format', '{{json .Endpoint.Ports}}', 'hostmode'])) as Array<Record<string, unknown>>;
    assert.deepEqual(ports.map((p) => [p.PublishMode, p.PublishedPort, p.TargetPort]), [['host', 8090, 80]]);
  });

  test('an attachable network: docker run --network and network connect from workers, addresses from the store', async () => {
    const attnet = await ok('host1', ['network', 'create', '-d', 'overlay', '--attachable', 'attnet']);
    await ok('host1', ['service', 'create', '-d', '--name', 'att', '--constraint', 'node.hostname==host1', '--network', 'attnet', IMG, 'httpd', '-f', '-p', '80', '-h', '/etc']);
    await waitRunning('att', 1);
    // A non-attachable swarm network: Docker's refusal.
    const refused = await d('host2', ['run', '--rm', '--network', 'appnet', IMG, 'true']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /not manually attachable/);
    await ok('host3', ['run', '-d', '--name', 'c1', '--network', 'attnet', IMG, 'httpd', '-f', '-p', '80', '-h', '/etc']);
    const c1 = await ok('host3', ['inspect', '--format', `{{(index .NetworkSettings.Networks "shoal-${attnet.slice(0, 12)}").IPAddress}}`, 'c1']);
    const subnet = JSON.parse(await ok('host1', ['network', 'inspect', '--format', '{{json .IPAM.Config}}', 'attnet'])) as Array<{ Subnet: string }>;
    assert.ok(c1.startsWith(subnet[0]!.Subnet.split('.').slice(0, 3).join('.')), `c1 ${c1} in ${subnet[0]!.Subnet}`);
    assert.ok(!(await taskAddrs('att', 'attnet')).includes(c1));
    assert.notEqual(c1, await vip('att', attnet));
    // The container resolves the service through Shoal's DNS and reaches its task on host1 through the VIP.
    const attName = (await inTask('host1', 'att', 'hostname')).stdout.trim();
    const fromC1 = await waitFor('c1 reaches att by name', async () => {
      const r = await d('host3', ['exec', 'c1', 'sh', '-c', 'timeout 3 wget -q -O- http://att/hostname']);
      return r.code === 0 ? r.stdout.trim() : undefined;
    }, 20_000, 500);
    assert.equal(fromC1, attName);
    // The service's task reaches the container across hosts.
    const c1Name = (await ok('host3', ['exec', 'c1', 'hostname'])).trim();
    assert.equal((await inTask('host1', 'att', `timeout 3 wget -q -O- http://${c1}/hostname`)).stdout.trim(), c1Name);
    // network connect / disconnect on another worker.
    await ok('host2', ['run', '-d', '--name', 'c2', IMG, 'sleep', '100000']);
    await ok('host2', ['network', 'connect', 'attnet', 'c2']);
    const c2 = await ok('host2', ['inspect', '--format', `{{(index .NetworkSettings.Networks "shoal-${attnet.slice(0, 12)}").IPAddress}}`, 'c2']);
    assert.ok(c2 && c2 !== c1, `c2 ${c2}`);
    const attVip = await vip('att', attnet);
    assert.equal((await d('host2', ['exec', 'c2', 'sh', '-c', `timeout 3 wget -q -O- http://${attVip}/hostname`])).stdout.trim(), attName);
    await ok('host2', ['network', 'disconnect', 'attnet', 'c2']);
    // Removed containers give their addresses back: then the network is no longer in use.
    await ok('host3', ['rm', '-f', 'c1']);
    await ok('host2', ['rm', '-f', 'c2']);
    await ok('host1', ['service', 'rm', 'att']);
    await waitFor('attnet removable', async () => (await d('host1', ['network', 'rm', 'attnet'])).code === 0, 90_000, 1000);
  });

  test('a full network: the extra tasks say so, the others run', async () => {
    await ok('host1', ['network', 'create', '-d', 'overlay', '--subnet', '10.211.0.0/29', 'tiny']);
    await ok('host1', ['service', 'create', '-d', '--name', 'full', '--replicas', '6', '--network', 'tiny', IMG, 'sleep', '100000']);
    // .0, .1 (gateway), .7 and the VIP taken: four tasks get an address, the other two say why they wait.
    const { running, waiting } = await waitFor('four tasks running, two waiting for an address', async () => {
      const out = await ok('host1', ['service', 'ps', '--no-trunc', '--filter', 'desired-state=running', '--format', '{{.CurrentState}}|{{.Error}}', 'full']);
      const lines = out.split('\n').filter(Boolean);
      const r = lines.filter((l) => l.startsWith('Running'));
      const w = lines.filter((l) => /could not find an available IP/.test(l));
      return r.length === 4 && w.length === 2 ? { running: r, waiting: w } : undefined;
    }, CONVERGE_MS, 500);
    assert.equal(running.length, 4);
    for (const l of waiting) assert.match(l, /^New.*\|"?failed to allocate network IP for task \S+ network tiny: could not find an available IP"?$/);
    await ok('host1', ['service', 'rm', 'full']);
    await waitFor('tiny removed', async () => (await d('host1', ['network', 'rm', 'tiny'])).code === 0, CONVERGE_MS, 500);
  });

  test('a network in use cannot be removed; once unused it can', async () => {
    const r = await d('host1', ['network', 'rm', 'othernet']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /in use/);
    await ok('host1', ['service', 'rm', 'outsider']);
    await waitFor('othernet removed', async () => (await d('host1', ['network', 'rm', 'othernet'])).code === 0, CONVERGE_MS, 500);
    assert.doesNotMatch(await ok('host1', ['network', 'ls', '--format', '{{.Name}}']), /othernet/);
  });
});
