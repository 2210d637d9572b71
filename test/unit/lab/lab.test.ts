import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseLabArgs } from '../../../src/lab/options';
import { dockerHostOf } from '../../../src/lab/host';
import { hostAddress, hostLayout, hostNames, registryLayout } from '../../../src/lab/layout';
import { findHost, parseState, readState, writeState, type LabState } from '../../../src/lab/state';
import { deletesFor, firewallRules } from '../../../src/lab/network';
import { initScript } from '../../../src/lab/host';
import { registryAuthHeader, registryConfig } from '../../../src/lab/registry';
import { joinCounts } from '../../../src/lab/options';
import { parseNodeLs, planJoin, swarmShortfall } from '../../../src/lab/join';

test('lab arguments: verbs, host names, counts and the folder', () => {
  assert.deepEqual(parseLabArgs(['up', '--hosts', '3']), { verb: 'up', dir: '/var/lib/shoal-lab', hosts: 3, engine: 'shoal' });
  assert.deepEqual(parseLabArgs(['up', '--hosts', '3', '--managers', '1', '--workers', '2', '--dir', '/tmp/x', '--image', '']),
    { verb: 'up', dir: '/tmp/x', hosts: 3, managers: 1, workers: 2, image: '', engine: 'shoal' });
  assert.deepEqual(parseLabArgs(['up', '--hosts', '5', '--managers', '3', '--docker-swarm']), { verb: 'up', dir: '/var/lib/shoal-lab', hosts: 5, managers: 3, workers: 2, engine: 'docker' });
  assert.throws(() => parseLabArgs(['kill', 'host1', '--docker-swarm']), /only for `shoal lab up`/);
  assert.deepEqual(parseLabArgs(['kill', 'host2', '--dir', '/tmp/x']), { verb: 'kill', dir: '/tmp/x', host: 'host2' });
  assert.deepEqual(parseLabArgs(['heal', 'host2']), { verb: 'heal', dir: '/var/lib/shoal-lab', host: 'host2' });
  assert.deepEqual(parseLabArgs(['down']), { verb: 'down', dir: '/var/lib/shoal-lab' });
  assert.throws(() => parseLabArgs(['up']), /needs --hosts/);
  assert.throws(() => parseLabArgs(['up', '--hosts', '0']), /from 1 to 50/);
  assert.throws(() => parseLabArgs(['up', '--hosts', 'two']), /whole number/);
  assert.throws(() => parseLabArgs(['up', '--hosts', '2', '--managers', '2', '--workers', '1']), /must add up to --hosts 2/);
  assert.throws(() => parseLabArgs(['up', '--hosts', '3', '--managers', '0']), /from 1 to 50/);
  assert.throws(() => parseLabArgs(['up', '--hosts', '2', '--dir', 'rel']), /absolute/);
  assert.throws(() => parseLabArgs(['kill']), /one host name/);
  assert.throws(() => parseLabArgs(['kill', 'Bad_Name']), /invalid lab host name/);
  assert.throws(() => parseLabArgs(['start', 'host1', '--hosts', '2']), /only for `shoal lab up`/);
  assert.throws(() => parseLabArgs(['frobnicate']), /unknown lab command/);
  assert.throws(() => parseLabArgs(['up', '--hosts', '1', '--bogus']), /Unknown option/);
});

test('managers and workers: both or neither, one given makes the other the rest, they add up to the hosts', () => {
  assert.deepEqual(joinCounts(5, undefined, undefined), {});
  assert.deepEqual(joinCounts(5, 3, undefined), { managers: 3, workers: 2 });
  assert.deepEqual(joinCounts(5, undefined, 4), { managers: 1, workers: 4 });
  assert.deepEqual(joinCounts(1, 1, 0), { managers: 1, workers: 0 });
  assert.throws(() => joinCounts(3, undefined, 3), /at least one manager/);
  assert.throws(() => joinCounts(3, 1, 1), /must add up to --hosts 3/);
  assert.throws(() => joinCounts(3, 4, undefined), /must add up/);
});

test('join plan: the first host inits, then managers, then workers', () => {
  assert.deepEqual(planJoin(['host1', 'host2', 'host3', 'host4', 'host5'], 3, 2), [
    { host: 'host1', role: 'manager', init: true },
    { host: 'host2', role: 'manager', init: false },
    { host: 'host3', role: 'manager', init: false },
    { host: 'host4', role: 'worker', init: false },
    { host: 'host5', role: 'worker', init: false },
  ]);
  assert.throws(() => planJoin(['host1'], 0, 1), /at least one manager/);
  assert.throws(() => planJoin(['host1', 'host2'], 1, 2), /not 2 hosts/);
});

test('node ls: done when every host is Ready, one Leader, the other managers Reachable, workers plain', () => {
  const plan = planJoin(['host1', 'host2', 'host3'], 2, 1);
  const ls = (rows: string[][]) => parseNodeLs(rows.map((r) => r.join('\t')).join('\n') + '\n');
  const good = ls([['host1', 'Ready', 'Active', 'Leader'], ['host2', 'Ready', 'Active', 'Reachable'], ['host3', 'Ready', 'Active', '']]);
  assert.deepEqual(good[2], { hostname: 'host3', status: 'Ready', availability: 'Active', manager: '' });
  assert.equal(swarmShortfall(good, plan), undefined);
  assert.equal(swarmShortfall(good.slice(0, 2), plan), 'host3 listed 0 times');
  assert.equal(swarmShortfall(ls([['host1', 'Ready', 'Active', 'Leader'], ['host2', 'Unknown', 'Active', 'Unreachable'], ['host3', 'Down', 'Active', '']]), plan),
    'host2 Unknown, host2 manager status "Unreachable", host3 Down');
  assert.equal(swarmShortfall(ls([['host1', 'Ready', 'Active', 'Reachable'], ['host2', 'Ready', 'Active', 'Reachable'], ['host3', 'Ready', 'Active', 'Reachable']]), plan),
    'host3 is a manager, 0 leaders');
});

test('addresses and names: the bridge is .1, hosts from .11, every name fits a veth', () => {
  assert.deepEqual(hostNames(3), ['host1', 'host2', 'host3']);
  assert.equal(hostAddress(0), '10.199.0.11');
  assert.equal(hostAddress(49), '10.199.0.60');
  assert.throws(() => hostAddress(50));
  assert.throws(() => hostNames(51));
  const l = hostLayout('/x', 'host12', 11);
  assert.equal(l.address, '10.199.0.22');
  assert.equal(l.netns, 'shoal-lab-host12');
  assert.equal(l.veth, 'sl-host12');
  assert.ok(hostLayout('/x', 'abcdefghijkl', 0).veth.length <= 15, 'interface names have at most 15 characters');
  assert.equal(l.shoalSocket, '/x/hosts/host12/shoal.sock');
  assert.equal(registryLayout('/x').address, '10.199.0.1:5000');
});

test('state file: round trip, and a damaged file is refused with a clear error', () => {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-lab-state-'));
  try {
    const file = join(dir, 'lab.json');
    assert.equal(readState(file), undefined);
    const s: LabState = {
      version: 1, dir, engine: 'docker',
      hosts: [{ name: 'host1', role: 'manager', index: 0, powered: true, partitioned: false, initPid: 42 }, { name: 'host2', index: 1, powered: false, partitioned: true }],
      registry: { user: 'shoal', password: 'pw', pid: 7 },
      icmpRatelimit: '1000',
    };
    writeState(file, s);
    assert.deepEqual(readState(file), s);
    assert.equal(findHost(s, 'host2').partitioned, true);
    assert.throws(() => findHost(s, 'host9'), /no lab host named "host9" \(hosts: host1, host2\)/);
    writeFileSync(file, readFileSync(file, 'utf8').slice(0, 40));
    assert.throws(() => readState(file), /not usable \(not JSON/);
  } finally { rmSync(dir, { recursive: true, force: true }); }
  const good = { version: 1, dir: '/x', hosts: [{ name: 'host1', index: 0, powered: true, partitioned: false }] };
  assert.throws(() => parseState(JSON.stringify({ ...good, version: 2 })), /unknown version 2/);
  assert.throws(() => parseState(JSON.stringify({ ...good, hosts: [good.hosts[0], good.hosts[0]] })), /host host1 twice/);
  assert.throws(() => parseState(JSON.stringify({ ...good, hosts: [{ ...good.hosts[0], name: '../etc' }] })), /invalid lab host name/);
  assert.throws(() => parseState(JSON.stringify({ ...good, hosts: [{ ...good.hosts[0], initPid: -1 }] })), /bad pid/);
  assert.throws(() => parseState(JSON.stringify({ ...good, registry: { user: 'u' } })), /bad registry/);
  assert.throws(() => parseState(JSON.stringify({ ...good, engine: 'podman' })), /unknown engine podman/);
  assert.throws(() => parseState(JSON.stringify({ ...good, hosts: [{ ...good.hosts[0], role: 'boss' }] })), /unknown role/);
});

test('firewall: nothing leaves the subnet, and down finds exactly the lab rules again', () => {
  const rules = firewallRules();
  assert.deepEqual(rules[0], ['FORWARD', '-s', '10.199.0.0/24', '!', '-d', '10.199.0.0/24', '-m', 'comment', '--comment', 'shoal-lab', '-j', 'REJECT']);
  assert.ok(rules.every((r) => r.includes('shoal-lab')));
  const listing = [
    '-P FORWARD DROP',
    '-A FORWARD -j DOCKER-USER',
    '-A FORWARD -s 10.199.0.0/24 ! -d 10.199.0.0/24 -m comment --comment shoal-lab -j REJECT --reject-with icmp-port-unreachable',
    '-A FORWARD -i shoal-lab0 -o shoal-lab0 -m comment --comment "shoal-lab" -j ACCEPT',
    '-A FORWARD -m comment --comment shoal-lab-other -j ACCEPT',
  ].join('\n');
  assert.deepEqual(deletesFor(listing), [
    ['-D', 'FORWARD', '-s', '10.199.0.0/24', '!', '-d', '10.199.0.0/24', '-m', 'comment', '--comment', 'shoal-lab', '-j', 'REJECT', '--reject-with', 'icmp-port-unreachable'],
    ['-D', 'FORWARD', '-i', 'shoal-lab0', '-o', 'shoal-lab0', '-m', 'comment', '--comment', 'shoal-lab', '-j', 'ACCEPT'],
  ]);
});

test('a host runs its own dockerd and Shoal daemon, with stale pid files removed first', () => {
  const l = hostLayout('/lab', 'host2', 1);
  const s = initScript(l, '/usr/bin/node', '/app/main.js');
  const lines = s.split('\n');
  assert.ok(lines.indexOf("hostname 'host2'") > 0);
  const rm = lines.findIndex((x) => x.startsWith('rm -f '));
  const dockerd = lines.findIndex((x) => x.startsWith("'dockerd'"));
  assert.ok(rm > 0 && rm < dockerd, 'pid files go before dockerd starts');
  assert.match(lines[rm]!, /docker-exec\/dockerd\.pid' '\/lab\/hosts\/host2\/docker-exec\/containerd\/containerd\.pid'/);
  for (const f of ["'--data-root' '/lab/hosts/host2/docker'", "'--containerd-namespace' 'shoal-lab-host2'", "'--insecure-registry' '10.199.0.1:5000'", "'--cgroup-parent' '/shoal-lab/host2'"]) {
    assert.ok(lines[dockerd]!.includes(f), f);
  }
  assert.ok(s.includes("GLIBC_TUNABLES='glibc.malloc.mmap_threshold=16384' '/usr/bin/node' '--max-semi-space-size=32' '--heap-growing-percent=100' '/app/main.js' 'daemon' '-H' 'unix:///lab/hosts/host2/shoal.sock' '--data-root' '/lab/hosts/host2/shoal' '--engine' 'unix:///lab/hosts/host2/docker.sock' '--hostname' 'host2'"));
  assert.ok(!lines[dockerd]!.includes('GLIBC_TUNABLES'), 'the daemon\'s malloc settings are its own');
  assert.ok(lines.at(-2) === 'wait');
  assert.ok(initScript(l, '/usr/bin/node', '/app/main.js', 'shoal', [], {}).includes("\n'/usr/bin/node' '/app/main.js' 'daemon'"), 'SHOAL_DAEMON_NODE_FLAGS="" runs node with its defaults');
  assert.equal(dockerHostOf(l, 'shoal'), 'unix:///lab/hosts/host2/shoal.sock');
});

test('a Docker Swarm lab host runs dockerd alone, and DOCKER_HOST is that dockerd', () => {
  const l = hostLayout('/lab', 'host2', 1);
  const s = initScript(l, '/usr/bin/node', '/app/main.js', 'docker');
  assert.ok(s.includes("'dockerd' '--data-root' '/lab/hosts/host2/docker'"));
  assert.ok(!s.includes("'daemon'"), 'no Shoal daemon');
  assert.equal(dockerHostOf(l, 'docker'), 'unix:///lab/hosts/host2/docker.sock');
});

test('registry: htpasswd auth on the bridge address; the auth header is padded URL-safe base64', () => {
  const cfg = registryConfig(registryLayout('/lab'));
  assert.match(cfg, /addr: "10\.199\.0\.1:5000"/);
  assert.match(cfg, /htpasswd:\n\s+realm: shoal-lab\n\s+path: "\/lab\/registry\/htpasswd"/);
  assert.match(cfg, /rootdirectory: "\/lab\/registry\/data"/);
  const h = registryAuthHeader({ user: 'shoal', password: 'p?>', pid: 1 }, '10.199.0.1:5000');
  assert.match(h, /^[A-Za-z0-9_-]+=*$/);
  assert.equal(h.length % 4, 0);
  assert.deepEqual(JSON.parse(Buffer.from(h, 'base64url').toString()), { username: 'shoal', password: 'p?>', serveraddress: '10.199.0.1:5000' });
});
