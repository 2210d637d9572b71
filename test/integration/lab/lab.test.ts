import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { runDocker, waitFor, type DockerResult } from '../../helpers/daemon';
import { runLab } from '../../helpers/lab';
import { ensureBusyboxImage } from '../../helpers/images';
import { BRIDGE, CGROUP_PARENT, IPTABLES_COMMENT, NETNS_PREFIX, SUBNET, VETH_PREFIX } from '../../../src/lab/layout';

// `shoal lab`: three real hosts (namespaces, dockerd, Shoal daemon each) and a
// registry, driven through the CLI as a user would.
const IMG = 'shoal-test/busybox:1';
const MARK = '/www-lab-it'; // in the web container's command line: finds its process from the machine

interface Line { name: string; dockerHost: string; address: string }

const lab = (args: string[], timeoutMs = 180_000): Promise<DockerResult> => runLab(undefined, args, timeoutMs);

function httpGet(url: string, timeoutMs = 2_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(url, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => { text += c.toString(); });
      res.on('end', () => resolve(text));
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

function ping(address: string): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn('/bin/busybox', ['ping', '-c', '1', '-W', '1', address], { stdio: 'ignore' });
    child.on('close', (code) => resolve(code === 0));
    child.on('error', () => resolve(false));
  });
}

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.on('close', () => resolve(out));
    child.on('error', () => resolve(''));
  });
}

// Live processes whose command line contains `text`.
function processesWith(text: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      if (!readFileSync(`/proc/${e}/cmdline`, 'utf8').replace(/\0/g, ' ').includes(text)) continue;
      if (!/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${e}/stat`, 'utf8'))) out.push(Number(e));
    } catch { /* gone */ }
  }
  return out;
}

// This lab's addresses in a regex (SHOAL_LAB_INDEX picks the subnet).
const NET_RE = SUBNET.base.replace(/\./g, '\\.');

const netnsPids = async (host: string): Promise<number[]> => (await run('ip', ['netns', 'pids', `${NETNS_PREFIX}${host}`])).split('\n').filter(Boolean).map(Number);

describe('shoal lab', () => {
  const dir = join(mkdtempSync('/tmp/shoal-lab-it-'), 'lab');
  const dockerConfig = mkdtempSync('/tmp/shoal-lab-it-cfg-');
  let hosts: Line[] = [];
  let password = '';
  const icmpRatelimit = readFileSync('/proc/sys/net/ipv4/icmp_ratelimit', 'utf8');
  const host = (name: string): Line => hosts.find((h) => h.name === name)!;
  const docker = (name: string, args: string[], config = dockerConfig) => runDocker(host(name).dockerHost, args, { timeoutMs: 60_000, env: { DOCKER_CONFIG: config } });
  const ok = async (name: string, args: string[]): Promise<string> => {
    const r = await docker(name, args);
    assert.equal(r.code, 0, `docker ${args.join(' ')} on ${name}: ${r.stderr}${r.stdout}`);
    return r.stdout;
  };

  before(async () => {
    await ensureBusyboxImage('/var/run/docker.sock', IMG);
    const r = await lab(['up', '--hosts', '3', '--dir', dir]);
    assert.equal(r.code, 0, `lab up: ${r.stderr}`);
    hosts = r.stdout.trim().split('\n').map((l) => { const [name, dockerHost, address] = l.split(' '); return { name: name!, dockerHost: dockerHost!, address: address! }; });
    password = /password (\S+)/.exec(r.stderr)?.[1] ?? '';
  });

  after(async () => {
    const r = await lab(['down', '--dir', dir]);
    if (r.code !== 0) process.stderr.write(`lab down failed: ${r.stderr}\n`);
    rmSync(join(dir, '..'), { recursive: true, force: true });
    rmSync(dockerConfig, { recursive: true, force: true });
  });

  test('up prints one line per host and each host is its own machine', async () => {
    assert.deepEqual(hosts.map((h) => h.name), ['host1', 'host2', 'host3']);
    assert.deepEqual(hosts.map((h) => h.address), [11, 12, 13].map((n) => `${SUBNET.base}.${n}`));
    assert.ok(password.length >= 16, 'up reports the registry password');
    for (const h of hosts) {
      assert.match(h.dockerHost, /^unix:\/\/\/.*\/shoal\.sock$/);
      assert.equal((await ok(h.name, ['info', '--format', '{{.Name}} {{.Swarm.LocalNodeState}}'])).trim(), `${h.name} inactive`);
      assert.ok(await ping(h.address), `the machine pings ${h.name}`);
    }
    const r = await lab(['up', '--hosts', '1', '--dir', dir]);
    assert.notEqual(r.code, 0, 'a second up on the same lab is refused');
    assert.match(r.stderr, /already exists/);
  });

  test('the machine reaches a published port on a host, and hosts reach each other', async () => {
    await ok('host2', ['run', '-d', '--name', 'web', '-p', '8080:8080', IMG, 'sh', '-c', `mkdir -p ${MARK} && echo hello-from-host2 > ${MARK}/index.html && exec httpd -f -p 8080 -h ${MARK}`]);
    const url = `http://${host('host2').address}:8080/`;
    assert.equal((await waitFor('the web container to answer the machine', () => httpGet(url), 20_000)).trim(), 'hello-from-host2');
    const fromHost1 = await ok('host1', ['run', '--rm', IMG, 'timeout', '5', 'wget', '-q', '-O-', url]);
    assert.equal(fromHost1.trim(), 'hello-from-host2');
  });

  test('look-ups of outside names fail at once instead of leaving the machine', async () => {
    const t0 = Date.now();
    const r = await docker('host1', ['pull', 'example.com/nothing:1']);
    assert.notEqual(r.code, 0);
    assert.ok(Date.now() - t0 < 5_000, `pull failed after ${Date.now() - t0} ms`);
  });

  test('the registry wants its password, then every host pushes and pulls', async () => {
    const anon = mkdtempSync('/tmp/shoal-lab-it-anon-');
    try {
      const pulled = await docker('host3', ['pull', `${SUBNET.base}.1:5000/${IMG}`], anon);
      assert.notEqual(pulled.code, 0, 'pull without credentials is refused');
      assert.match(pulled.stderr, /no basic auth credentials|unauthorized/);
      const bad = await runDocker(host('host3').dockerHost, ['login', '-u', 'shoal', '--password-stdin', `${SUBNET.base}.1:5000`], { input: 'wrong', env: { DOCKER_CONFIG: anon } });
      assert.notEqual(bad.code, 0, 'a wrong password is refused');
    } finally { rmSync(anon, { recursive: true, force: true }); }

    const login = await runDocker(host('host3').dockerHost, ['login', '-u', 'shoal', '--password-stdin', `${SUBNET.base}.1:5000`], { input: password, env: { DOCKER_CONFIG: dockerConfig } });
    assert.equal(login.code, 0, login.stderr);
    await ok('host3', ['pull', `${SUBNET.base}.1:5000/${IMG}`]);
    await ok('host3', ['tag', IMG, `${SUBNET.base}.1:5000/lab-it/pushed:1`]);
    await ok('host3', ['push', `${SUBNET.base}.1:5000/lab-it/pushed:1`]);
    await ok('host1', ['pull', `${SUBNET.base}.1:5000/lab-it/pushed:1`]);
  });

  test('kill powers a host off; start brings it back with its disk', async () => {
    const h2 = host('host2');
    assert.ok((await netnsPids('host2')).length > 0);
    assert.ok(processesWith(MARK).length > 0, 'the web container runs');
    const killed = await lab(['kill', 'host2', '--dir', dir]);
    assert.equal(killed.code, 0, killed.stderr);
    assert.deepEqual(await netnsPids('host2'), [], 'no process left in its network namespace');
    assert.deepEqual(processesWith(`${dir}/hosts/host2/`), [], 'no dockerd, containerd or Shoal of host2');
    assert.deepEqual(processesWith(MARK), [], 'its container is gone too');
    assert.equal(await ping(h2.address), false, 'its address stops answering');
    await assert.rejects(httpGet(`http://${h2.address}:8080/`, 1_000));
    assert.notEqual((await docker('host2', ['info'])).code, 0);
    assert.match((await lab(['status', '--dir', dir])).stdout, new RegExp(`^host2 \\S+ ${NET_RE}\\.12 off$`, 'm'));

    const started = await lab(['start', 'host2', '--dir', dir]);
    assert.equal(started.code, 0, started.stderr);
    assert.equal(started.stdout.trim(), `host2 ${h2.dockerHost} ${h2.address}`);
    assert.equal((await ok('host2', ['info', '--format', '{{.Name}}'])).trim(), 'host2');
    assert.match(await ok('host2', ['ps', '-a', '--format', '{{.Names}}']), /^web$/m, 'its container is still on disk');
    await ok('host2', ['image', 'inspect', IMG]);
    await ok('host2', ['start', 'web']);
    assert.equal((await waitFor('web to answer again', () => httpGet(`http://${h2.address}:8080/`), 20_000)).trim(), 'hello-from-host2');
  });

  test('partition cuts a host off with its processes running; heal restores it', async () => {
    const h3 = host('host3');
    const pids = await netnsPids('host3');
    const cut = await lab(['partition', 'host3', '--dir', dir]);
    assert.equal(cut.code, 0, cut.stderr);
    assert.equal(await ping(h3.address), false, 'the machine no longer reaches it');
    const fromHost1 = await docker('host1', ['run', '--rm', IMG, 'ping', '-c', '1', '-W', '1', h3.address]);
    assert.notEqual(fromHost1.code, 0, 'nor does another host');
    assert.deepEqual((await netnsPids('host3')).sort(), pids.sort(), 'its processes still run');
    assert.equal((await ok('host3', ['info', '--format', '{{.Name}}'])).trim(), 'host3', 'it still answers on its socket');
    assert.match((await lab(['status', '--dir', dir])).stdout, new RegExp(`^host3 \\S+ ${NET_RE}\\.13 running partitioned$`, 'm'));

    const healed = await lab(['heal', 'host3', '--dir', dir]);
    assert.equal(healed.code, 0, healed.stderr);
    await waitFor('host3 to answer pings again', async () => ping(h3.address), 10_000);
    await ok('host1', ['run', '--rm', IMG, 'ping', '-c', '1', '-W', '2', h3.address]);
  });

  test('down removes everything, even without the state file (as after a crash)', async () => {
    rmSync(join(dir, 'lab.json')); // what a crashed run would not have written
    const r = await lab(['down', '--dir', dir]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((await run('ip', ['netns', 'list'])).split('\n').filter((l) => l.startsWith(NETNS_PREFIX)), []);
    assert.equal(existsSync(`/sys/class/net/${BRIDGE}`), false, 'bridge removed');
    assert.deepEqual(readdirSync('/sys/class/net').filter((n) => n.startsWith(VETH_PREFIX)), [], 'veths removed');
    const rules = (await run('iptables', ['-S'])) + (await run('iptables', ['-S', 'INPUT']));
    assert.doesNotMatch(rules, new RegExp(`--comment "?${IPTABLES_COMMENT}"?( |$)`, 'm'), 'iptables rules removed');
    assert.deepEqual(processesWith(dir), [], 'no process of the lab');
    assert.deepEqual(processesWith(MARK), []);
    assert.doesNotMatch(readFileSync('/proc/self/mountinfo', 'utf8'), new RegExp(dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')), 'no mount');
    assert.equal(existsSync(dir), false, 'the lab folder is gone');
    assert.deepEqual(readdirSync('/sys/fs/cgroup').filter((c) => existsSync(join('/sys/fs/cgroup', c, CGROUP_PARENT))), [], 'no cgroup of its containers');
    // A 0 found before (another lab's) goes back to the kernel's default once no lab is up.
    assert.equal(readFileSync('/proc/sys/net/ipv4/icmp_ratelimit', 'utf8'), icmpRatelimit === '0\n' ? '1000\n' : icmpRatelimit, 'the ICMP rate limit is back');
    assert.equal(await ping(`${SUBNET.base}.11`), false);
  });
});
