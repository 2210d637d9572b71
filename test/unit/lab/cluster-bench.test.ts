import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clusterOptions, clusterReport, clusterSettled, nodeViews, runningPerNode, taskViews } from '../../../bench/cluster-stats';
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
