import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clusterOptions, clusterReport, clusterSettled, nodeViews, runningPerNode, taskViews } from '../../../bench/cluster-stats';
import { floorFigures, type FloorSample } from '../../../bench/floor-stats';
import { clusterTarget, parseHostLines } from '../../helpers/lab';

test('cluster bench options: defaults, --only, bad values refused', () => {
  assert.deepEqual(clusterOptions([]), { rounds: 3, kinds: ['shoal', 'docker'], replicas: 100, workerTasks: 10, deadlineMs: 180_000, settleMs: 60_000 });
  assert.deepEqual(clusterOptions(['--only', 'docker', '--rounds', '1', '--json', '/tmp/x.json']),
    { rounds: 1, kinds: ['docker'], replicas: 100, workerTasks: 10, deadlineMs: 180_000, settleMs: 60_000, json: '/tmp/x.json' });
  assert.equal(clusterOptions(['-h']), 'help');
  assert.throws(() => clusterOptions(['--only', 'podman']), /--only wants/);
  assert.throws(() => clusterOptions(['--rounds=-1']), /positive number/);
  assert.equal((clusterOptions(['--rounds', '0']) as { rounds: number }).rounds, 0, '--rounds 0: the memory step only');
  assert.throws(() => clusterOptions(['--bogus']), /Unknown option/);
});

test('nodes and tasks from the Engine API: odd items do not break the reading', () => {
  const nodes = nodeViews([
    { ID: 'a', Description: { Hostname: 'host1' }, Status: { State: 'ready' }, Spec: { Role: 'manager' }, ManagerStatus: { Leader: true, Reachability: 'reachable' } },
    { ID: 'b', Description: { Hostname: 'host2' }, Status: { State: 'ready' }, Spec: { Role: 'manager' }, ManagerStatus: { Reachability: 'reachable' } },
    { ID: 'c', Description: { Hostname: 'host3' }, Status: { State: 'ready' }, Spec: { Role: 'worker' } },
  ]);
  assert.equal(clusterSettled(nodes, 3), true);
  assert.equal(clusterSettled(nodes, 4), false);
  assert.equal(clusterSettled([{ ...nodes[0]!, leader: false }, nodes[1]!, nodes[2]!], 3), false, 'no leader');
  assert.equal(clusterSettled([nodes[0]!, { ...nodes[1]!, reachability: 'unreachable' }, nodes[2]!], 3), false);
  assert.equal(clusterSettled([nodes[0]!, nodes[1]!, { ...nodes[2]!, state: 'down' }], 3), false);
  assert.deepEqual(nodeViews([null])[0], { id: '', hostname: '', state: '', role: '', leader: false, reachability: '' });
  assert.throws(() => nodeViews({}), /not a list/);

  const tasks = taskViews([
    { NodeID: 'a', DesiredState: 'running', Status: { State: 'running' } },
    { NodeID: 'a', DesiredState: 'running', Status: { State: 'running' } },
    { NodeID: 'b', DesiredState: 'running', Status: { State: 'starting' } },
    { NodeID: 'c', DesiredState: 'shutdown', Status: { State: 'running' } },
    'junk',
  ]);
  assert.deepEqual([...runningPerNode(tasks)], [['a', 2]]);
});

test('the report: medians, ratios, and a failed side', () => {
  const o = clusterOptions(['--rounds', '3']);
  assert.notEqual(o, 'help');
  if (o === 'help') return;
  const shoal = { failover: [1, 3, 2], workerLoss: [5], spread: [10], memory: { manager: [80], worker: [40] } };
  const docker = { failover: [12, 11, 23], workerLoss: [20], spread: [30], memory: { manager: [170], worker: [160] }, error: 'x broke' };
  const r = clusterReport(o, shoal, docker);
  assert.match(r, /leader off -> first write on another manager\s+2\.00 s\s+12\.00 s\s+0\.17\s+< 2 s/);
  assert.match(r, /RSS idle, a worker\s+40\.0 MB\s+160\.0 MB\s+0\.25/);
  assert.match(r, /Docker: FAILED: x broke/);
  assert.match(clusterReport(o, undefined, docker), /leader off -> first write on another manager\s+-\s+12\.00 s\s+-/);
});

test('the memory floor: medians per process, the median etcd member, and the room under the goal', () => {
  const p = (rss: number, anon: number, file: number) => ({ rss, split: { anon, file, pss: 0 } });
  const samples: FloorSample[] = [
    { etcd: [p(40, 20, 20), p(44, 24, 20), p(41, 21, 20)], node: p(39, 6, 33), nodeTls: p(43, 7, 36) },
    { etcd: [p(42, 22, 20), p(46, 26, 20), p(39, 19, 20)], node: p(41, 8, 33), nodeTls: p(43, 7, 36) },
    { etcd: [p(41, 21, 20), p(45, 25, 20), p(40, 20, 20)], node: p(40, 7, 33), nodeTls: p(45, 9, 36) },
  ];
  const f = floorFigures(samples);
  // Members' medians 41, 45, 40: the middle one is 41.
  assert.deepEqual(f.etcd, { rss: 41, anon: 21, file: 20 });
  assert.equal(f.members, 3);
  assert.deepEqual(f.node, { rss: 40, anon: 7, file: 33 });
  assert.equal(f.nodeTls.rss, 43);
  assert.ok(Number.isNaN(floorFigures([]).etcd.rss), 'no samples: no figure, not zero');

  const o = clusterOptions(['--rounds', '0']);
  if (o === 'help') throw new Error('options');
  const r = clusterReport(o, { failover: [], workerLoss: [], spread: [], memory: { manager: [110, 115, 112], worker: [58] }, floor: f });
  assert.match(r, /Floor of a manager, no Shoal code \(idle, RSS\): 81\.0 MB = an etcd member of three 41\.0 MB \(anon 21\.0, file 20\.0\) \+ node 40\.0 MB/);
  assert.match(r, /room left for Shoal's manager daemon under the 100 MB goal: 19\.0 MB; Shoal's manager \(daemon \+ etcd\) is 31\.0 MB above the floor/);
  assert.doesNotMatch(clusterReport(o, { failover: [], workerLoss: [], spread: [], memory: { manager: [], worker: [] } }), /Floor/);
});

test('lab helpers: the target from CLUSTER_TARGET, host lines with and without a role', () => {
  assert.equal(clusterTarget(undefined), 'shoal');
  assert.equal(clusterTarget('docker'), 'docker');
  assert.throws(() => clusterTarget('swarm'), /shoal or docker/);
  assert.deepEqual(parseHostLines('host1 unix:///a/docker.sock 10.199.6.11 manager\nhost2 unix:///b 10.199.6.12\n'), [
    { name: 'host1', dockerHost: 'unix:///a/docker.sock', address: '10.199.6.11', role: 'manager' },
    { name: 'host2', dockerHost: 'unix:///b', address: '10.199.6.12' },
  ]);
  assert.throws(() => parseHostLines('host1\n'), /not a lab host line/);
});
