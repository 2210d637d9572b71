// A five-host swarm on `shoal lab`, typed with the real docker CLI as the
// seeds do: init on host1, two managers and two workers joined with the
// printed commands, then promote/demote, services over every host, drain,
// logs, a worker and the leader powered off, a partitioned manager, a worker
// that leaves and joins again, a private image, a wrong token, quorum loss.
//
//   CLUSTER_TARGET=shoal (default)  Shoal lab (SHOAL_LAB_INDEX 5)
//   CLUSTER_TARGET=docker           the same commands on real Docker Swarm 20.10 (lab index 6, `--docker-swarm`)
//
//   node scripts/run-tests.js integration --only cluster
//   CLUSTER_TARGET=docker node --test dist/test/integration/cluster/cluster.test.js
//
// One lab serves the whole suite (lab up once, unjoined: the suite joins it
// itself), the scenarios run in order and each leaves the lab usable for the
// next; the most destructive (quorum loss) comes last; `lab down` in after.
// Duration: about 5.5 min on Docker Swarm (lab up 10 s; most of the rest is
// Docker waiting: ~20 s to replace a dead worker's tasks, 15-20 s of failover,
// a 20 s write time-out on the cut-off manager, ~60 s to settle after quorum
// returns); on Shoal, within the issue's goals, about 3 min.
//
// Where Docker is slower than the issue demands of Shoal, the deadline is
// per target (LIMITS): Shoal's is the issue's requirement with some slack.
// Where Docker behaves otherwise than the issue demands (seen here, noted on
// stderr as `# docker: ...` instead of failing): a healed manager forces an
// election (writes fail for seconds), a write refused during a partition is
// applied after heal, and after quorum returns a worker's tasks get replaced.
// Against Shoal those are assertions.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { runDocker, waitFor, type DockerResult } from '../../helpers/daemon';
import { ensureBusyboxImage } from '../../helpers/images';
import { clusterTarget, labCli, labMust, labUp, type LabHost } from '../../helpers/lab';
import { NODE_LS_FORMAT, parseNodeLs, type NodeRow } from '../../../src/lab/join';

const TARGET = clusterTarget();
const IMG = 'shoal-test/busybox:1';
const HOSTS = ['host1', 'host2', 'host3', 'host4', 'host5'];

// Deadlines (ms) where the two differ. Shoal: the issue's goals (failover under
// 2 s median, a dead worker's tasks back in under 10 s) with slack for a
// single sample on a busy 2-core machine. Docker 20.10 measured here: writes
// stop for 11-23 s after the leader dies, a dead worker's tasks take ~60 s.
const LIMITS = {
  shoal: { failover: 5_000, workerLoss: 15_000, nodeDown: 15_000 },
  docker: { failover: 60_000, workerLoss: 120_000, nodeDown: 60_000 },
}[TARGET];
const CONVERGE_MS = 60_000;    // services placed and running, nodes back Ready
const CLI_MS = 60_000;         // one docker command
const HEAL_WATCH_MS = 15_000;  // how long the leader is watched after a partition heals
const NO_LEADER = /does not have a leader|too few managers|lost leader/i;

interface TaskRow { node: string; state: string; error: string }

describe(`five-host swarm (${TARGET})`, { concurrency: 1 }, () => {
  const dir = join(mkdtempSync('/tmp/shoal-cluster-it-'), 'lab');
  const dockerConfig = mkdtempSync('/tmp/shoal-cluster-it-cfg-');
  let hosts: LabHost[] = [];
  let registry = { address: '', user: '', password: '' };
  const join2 = { worker: [] as string[], manager: [] as string[] }; // `--token T ADDR:2377` as printed
  let mgr = 'host1';              // a live manager the next command goes to
  let writes = 0;

  const host = (name: string): LabHost => {
    const h = hosts.find((x) => x.name === name);
    if (!h) throw new Error(`no host ${name}`);
    return h;
  };
  const d = (name: string, args: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<DockerResult> =>
    runDocker(host(name).dockerHost, args, { timeoutMs: opts.timeoutMs ?? CLI_MS, env: { DOCKER_CONFIG: dockerConfig }, ...(opts.input !== undefined ? { input: opts.input } : {}) });
  const ok = async (name: string, args: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<string> => {
    const r = await d(name, args, opts);
    assert.equal(r.code, 0, `docker ${args.join(' ')} on ${name}: ${r.stderr}${r.stdout}`);
    return r.stdout;
  };
  const lab = (args: string[]): Promise<string> => labMust(TARGET, [...args, '--dir', dir]);

  const nodes = async (on = mgr): Promise<NodeRow[]> => parseNodeLs(await ok(on, ['node', 'ls', '--format', NODE_LS_FORMAT], { timeoutMs: 15_000 }));
  const nodeRow = async (name: string, on = mgr): Promise<NodeRow | undefined> => (await nodes(on)).find((n) => n.hostname === name);
  const leader = async (on = mgr): Promise<string> => {
    const l = (await nodes(on)).filter((n) => n.manager === 'Leader');
    assert.equal(l.length, 1, `one leader, got ${JSON.stringify(l)}`);
    return l[0]!.hostname;
  };
  const waitNode = (what: string, name: string, pred: (r: NodeRow | undefined) => boolean, ms = CONVERGE_MS, on = () => mgr) =>
    waitFor(`${name} ${what}`, async () => {
      const r = await nodeRow(name, on());
      if (!pred(r)) throw new Error(r ? `${r.status} ${r.manager || '(worker)'} ${r.availability}` : 'not listed');
      return r ?? true;
    }, ms, 500);

  // The service's tasks that should run, as `service ps` shows them.
  const tasks = async (service: string, on = mgr): Promise<TaskRow[]> => {
    const out = await ok(on, ['service', 'ps', '--no-trunc', '--filter', 'desired-state=running', '--format', '{{.Node}}\t{{.CurrentState}}\t{{.Error}}', service], { timeoutMs: 15_000 });
    return out.split('\n').filter(Boolean).map((l) => { const [node = '', state = '', error = ''] = l.split('\t'); return { node, state, error }; });
  };
  // Running tasks per node.
  const runningOn = async (service: string, on = mgr): Promise<Map<string, number>> => {
    const m = new Map<string, number>();
    for (const t of await tasks(service, on)) if (t.state.startsWith('Running')) m.set(t.node, (m.get(t.node) ?? 0) + 1);
    return m;
  };
  const total = (m: Map<string, number>): number => [...m.values()].reduce((a, b) => a + b, 0);
  const waitRunning = (service: string, what: string, pred: (m: Map<string, number>) => boolean, ms = CONVERGE_MS) =>
    waitFor(`${service}: ${what}`, async () => {
      const m = await runningOn(service);
      if (!pred(m)) throw new Error(`running: ${[...m].map(([n, c]) => `${n} ${c}`).join(', ') || 'none'}`);
      return m;
    }, ms, 500);

  // One small write (a secret) through `on`; the CLI's result.
  const write = (on: string, timeoutMs = 15_000): Promise<DockerResult> => d(on, ['secret', 'create', `w-${++writes}`, '-'], { input: 'x', timeoutMs });

  // Containers of a service running on a host's engine (`docker ps` through its DOCKER_HOST).
  const containersOn = async (name: string, service: string): Promise<string[]> =>
    (await ok(name, ['ps', '-q', '--no-trunc', '--filter', `label=com.docker.swarm.service.name=${service}`])).split('\n').filter(Boolean).sort();

  const joinArgs = (printed: string): string[] => {
    const m = /docker swarm join (--token \S+ \S+:\d+)/.exec(printed.replace(/\\\s*\n\s*/g, ' '));
    assert.ok(m, `a join command in:\n${printed}`);
    return m[1]!.split(' ');
  };

  before(async () => {
    await ensureBusyboxImage('/var/run/docker.sock', IMG);
    const up = await labUp(TARGET, ['--hosts', '5', '--dir', dir]);
    hosts = up.hosts;
    registry = up.registry;
    assert.deepEqual(hosts.map((h) => h.name), HOSTS);
  });

  after(async () => {
    const r = await labCli(TARGET, ['down', '--dir', dir]);
    if (r.code !== 0) process.stderr.write(`lab down failed: ${r.stderr}\n`);
    rmSync(join(dir, '..'), { recursive: true, force: true });
    rmSync(dockerConfig, { recursive: true, force: true });
  });

  test('init on host1 prints the join command; managers and workers join with the printed commands; a wrong token is refused', { timeout: 240_000 }, async () => {
    const init = await ok('host1', ['swarm', 'init', '--advertise-addr', host('host1').address]);
    join2.worker = joinArgs(init);
    assert.equal(join2.worker.at(-1), `${host('host1').address}:2377`);
    join2.manager = joinArgs(await ok('host1', ['swarm', 'join-token', 'manager']));
    assert.match(join2.manager[1]!, /^SWMTKN-1-[0-9a-z]{50}-[0-9a-z]{25}$/);
    assert.notEqual(join2.manager[1], join2.worker[1]);

    // The right CA digest with a made-up secret: the manager must refuse it.
    const good = join2.worker[1]!;
    const secret = good.slice(-25);
    const forged = `${good.slice(0, -25)}${secret === 'a'.repeat(25) ? 'b'.repeat(25) : 'a'.repeat(25)}`;
    const wrong = await d('host5', ['swarm', 'join', '--token', forged, join2.worker[2]!]);
    assert.notEqual(wrong.code, 0, 'a wrong token is refused');
    assert.match(wrong.stderr, /valid join token|invalid join token/i);
    assert.match(await ok('host5', ['info', '--format', '{{.Swarm.LocalNodeState}}']), /inactive/);

    for (const h of ['host2', 'host3']) assert.match(await ok(h, ['swarm', 'join', ...join2.manager]), /joined a swarm as a manager/);
    for (const h of ['host4', 'host5']) assert.match(await ok(h, ['swarm', 'join', ...join2.worker]), /joined a swarm as a worker/);
    // As Docker's, a join returns once the node's agent has registered with
    // the leader: the leader lists every node Ready at once, no wait.
    const atOnce = await nodes('host1');
    assert.deepEqual(atOnce.filter((n) => n.status === 'Ready').map((n) => n.hostname).sort(), HOSTS, JSON.stringify(atOnce));

    const rows = await waitFor('five Ready nodes, one Leader, two Reachable', async () => {
      const r = await nodes('host1');
      const ready = r.length === 5 && r.every((n) => n.status === 'Ready');
      return ready && r.filter((n) => n.manager === 'Leader').length === 1 && r.filter((n) => n.manager === 'Reachable').length === 2 ? r : false;
    }, 30_000, 500);
    assert.deepEqual(rows.map((n) => n.hostname).sort(), HOSTS);
    assert.equal(rows.find((n) => n.manager === 'Leader')!.hostname, 'host1');
    assert.deepEqual(rows.filter((n) => n.manager === '').map((n) => n.hostname).sort(), ['host4', 'host5']);
    // Any manager serves the cluster's view; a worker does not.
    assert.equal((await nodes('host3')).length, 5);
    const onWorker = await d('host4', ['node', 'ls']);
    assert.notEqual(onWorker.code, 0);
    assert.match(onWorker.stderr, /This node is not a swarm manager/);
  });

  test('promote and demote', { timeout: 120_000 }, async () => {
    assert.match(await ok(mgr, ['node', 'promote', 'host4']), /Node host4 promoted to a manager in the swarm/);
    await waitNode('Reachable', 'host4', (r) => r?.manager === 'Reachable');
    // Docker answers "Manager is being prepared" for a moment after Reachable.
    await waitFor('the new manager to answer node ls', async () => (await nodes('host4')).length === 5, 30_000, 500);
    assert.match(await ok(mgr, ['node', 'demote', 'host4']), /Manager host4 demoted in the swarm/);
    await waitNode('a worker again', 'host4', (r) => r?.manager === '' && r.status === 'Ready');
    await waitFor('host4 to refuse manager calls', async () => /not a swarm manager/.test((await d('host4', ['node', 'ls'])).stderr), 30_000, 500);
  });

  test('a replicated service spreads over all five hosts', { timeout: 120_000 }, async () => {
    await ok(mgr, ['service', 'create', '--detach', '--name', 'spread', '--replicas', '10', IMG, 'sleep', '3600']);
    const m = await waitRunning('spread', '10 running on all five hosts', (x) => total(x) === 10 && HOSTS.every((h) => (x.get(h) ?? 0) >= 1));
    const counts = HOSTS.map((h) => m.get(h) ?? 0);
    assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `evenly spread: ${counts.join(' ')}`);
  });

  test('a global service runs one task on every host, and service logs has lines from every host', { timeout: 120_000 }, async () => {
    await ok(mgr, ['service', 'create', '--detach', '--name', 'glob', '--mode', 'global', IMG, 'sh', '-c', 'echo hello-log; exec sleep 3600']);
    await waitRunning('glob', 'one running on each host', (x) => HOSTS.every((h) => x.get(h) === 1) && total(x) === 5);
    await waitFor('service logs with a line from every host', async () => {
      const r = await d(mgr, ['service', 'logs', 'glob'], { timeoutMs: 20_000 });
      const from = new Set([...`${r.stdout}${r.stderr}`.matchAll(/@(host\d)\s*\|\s*hello-log/g)].map((x) => x[1]));
      return HOSTS.every((h) => from.has(h));
    }, 30_000, 1_000);
  });

  test('constraints on role and on node labels', { timeout: 120_000 }, async () => {
    await ok(mgr, ['node', 'update', '--label-add', 'zone=blue', 'host4']);
    assert.match(await ok(mgr, ['node', 'inspect', '--format', '{{json .Spec.Labels}}', 'host4']), /"zone":"blue"/);
    await ok(mgr, ['service', 'create', '--detach', '--name', 'blue', '--replicas', '3', '--constraint', 'node.labels.zone==blue', IMG, 'sleep', '3600']);
    await ok(mgr, ['service', 'create', '--detach', '--name', 'mgrs', '--replicas', '6', '--constraint', 'node.role==manager', IMG, 'sleep', '3600']);
    await waitRunning('blue', '3 running, all on host4', (x) => x.get('host4') === 3 && total(x) === 3);
    const m = await waitRunning('mgrs', '6 running on the managers', (x) => total(x) === 6);
    assert.deepEqual([...m.keys()].sort(), ['host1', 'host2', 'host3']);
    await ok(mgr, ['service', 'rm', 'blue', 'mgrs']);
  });

  test('drain moves tasks away; active brings the global task back', { timeout: 120_000 }, async () => {
    await ok(mgr, ['node', 'update', '--availability', 'drain', 'host5']);
    await waitRunning('spread', '10 running, none on host5', (x) => total(x) === 10 && !x.has('host5'));
    await waitRunning('glob', 'none on host5', (x) => !x.has('host5') && total(x) === 4);
    await waitFor('no container of spread or glob left on host5', async () => (await containersOn('host5', 'spread')).length + (await containersOn('host5', 'glob')).length === 0 || false, 30_000, 500);
    await ok(mgr, ['node', 'update', '--availability', 'active', 'host5']);
    await waitRunning('glob', 'back on host5', (x) => x.get('host5') === 1 && total(x) === 5);
  });

  test('a worker powered off: its tasks run elsewhere, it shows Down, and it comes back Ready', { timeout: 300_000 }, async () => {
    const before = await runningOn('spread');
    assert.ok((before.get('host4') ?? 0) > 0, `host4 runs spread tasks: ${JSON.stringify([...before])}`);
    await lab(['kill', 'host4']);
    const t0 = Date.now();
    await waitRunning('spread', `10 running without host4 within ${LIMITS.workerLoss / 1000} s`, (x) => total(x) === 10 && !x.has('host4'), LIMITS.workerLoss);
    const moved = Date.now() - t0;
    await waitNode('Down', 'host4', (r) => r?.status === 'Down', LIMITS.nodeDown);
    process.stderr.write(`# ${TARGET}: a dead worker's tasks ran elsewhere after ${(moved / 1000).toFixed(1)} s, the node showed Down after ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);

    await lab(['start', 'host4']);
    await waitNode('Ready again', 'host4', (r) => r?.status === 'Ready');
    await waitRunning('glob', 'running on host4 again', (x) => x.get('host4') === 1 && total(x) === 5);
    // What moved away stays moved: still 10, and nothing of spread runs on host4's engine.
    assert.equal(total(await runningOn('spread')), 10);
    await waitFor('no spread container on host4', async () => (await containersOn('host4', 'spread')).length === 0, 30_000, 500);
  });

  test('the leader powered off: another manager leads and writes succeed; the old leader is Unreachable, then Reachable again', { timeout: 300_000 }, async () => {
    const old = await leader();
    const survivor = ['host1', 'host2', 'host3'].find((h) => h !== old)!;
    await lab(['kill', old]);
    const t0 = Date.now();
    await waitFor(`a write through ${survivor} within ${LIMITS.failover / 1000} s`, async () => (await write(survivor, 5_000)).code === 0, LIMITS.failover, 100);
    process.stderr.write(`# ${TARGET}: the first write after the leader died succeeded after ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
    mgr = survivor;
    // Writes need only etcd's new raft leader; Shoal's leader (orchestrators,
    // scheduler, dispatcher) follows when the dead one's 2 s lease runs out.
    const now = await waitFor(`another manager to lead within ${LIMITS.failover / 1000} s`, async () => {
      const l = await leader();
      return l !== old ? l : false;
    }, LIMITS.failover, 200);
    process.stderr.write(`# ${TARGET}: another manager led after ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
    assert.notEqual(now, old);
    assert.ok(['host1', 'host2', 'host3'].includes(now));
    await waitNode('Unreachable', old, (r) => r?.manager === 'Unreachable');
    await ok(mgr, ['service', 'scale', '--detach', 'spread=11']);
    await waitRunning('spread', '11 running', (x) => total(x) === 11);

    await lab(['start', old]);
    await waitNode('Reachable and Ready again', old, (r) => r?.manager === 'Reachable' && r.status === 'Ready');
    await waitFor('the old leader to see the new one', async () => (await leader(old)) === now, CONVERGE_MS, 500);
  });

  test('a partitioned manager cannot write nor depose the leader', { timeout: 300_000 }, async () => {
    const lead = await leader();
    mgr = lead;
    const cut = ['host1', 'host2', 'host3'].find((h) => h !== lead)!;
    await lab(['partition', cut]);
    const name = `partitioned-${Date.now()}`;
    const r = await d(cut, ['secret', 'create', name, '-'], { input: 'x', timeoutMs: 45_000 });
    assert.notEqual(r.code, 0, 'no write through a cut-off manager');
    assert.notEqual(r.code, 124, `a clear error, not a hang: ${r.stderr}`);
    assert.equal((await write(lead)).code, 0, 'the leader still writes');
    assert.equal(await leader(lead), lead);

    await lab(['heal', cut]);
    // While the healed manager catches up, the leader stays leader and keeps writing.
    const hiccups: string[] = [];
    for (const end = Date.now() + HEAL_WATCH_MS; Date.now() < end;) {
      const seen = await nodes(lead).then((rows) => rows.find((n) => n.manager === 'Leader')?.hostname ?? 'no leader', (err: Error) => err.message.replace(/\s+/g, ' ').slice(0, 300));
      if (seen !== lead) hiccups.push(`node ls: ${seen}`);
      const w = await write(lead);
      if (w.code !== 0) hiccups.push(`write: ${w.stderr.trim()}`);
      await new Promise((res) => setTimeout(res, 500));
    }
    if (TARGET === 'docker' && hiccups.length) {
      // Docker's raft has no pre-vote: the healed manager's higher term forces an election (seen here: writes and
      // node ls fail for a few seconds, usually the same leader wins again). Shoal must not do this.
      process.stderr.write(`# docker: after heal, the leader was disturbed: ${[...new Set(hiccups)].join('; ')}\n`);
    } else {
      assert.deepEqual(hiccups, [], 'the healed manager disturbed the leader');
    }
    await waitFor('all five Ready again, the healed manager Reachable', async () => {
      const rows = await nodes(lead);
      const bad = rows.filter((n) => n.status !== 'Ready' || (n.hostname === cut && n.manager !== 'Reachable'));
      if (rows.length !== 5 || bad.length) throw new Error(rows.map((n) => `${n.hostname} ${n.status} ${n.manager}`).join(', '));
      return true;
    }, CONVERGE_MS, 500);
    if (TARGET === 'shoal') assert.equal(await leader(lead), lead, 'the healed manager did not depose the leader');
    mgr = await leader(lead);
    const applied = new RegExp(`^${name}$`, 'm').test(await ok(mgr, ['secret', 'ls', '--format', '{{.Name}}']));
    if (TARGET === 'docker' && applied) {
      // Seen on Docker: the refused write (DeadlineExceeded) was queued on the cut-off manager and applied after heal.
      process.stderr.write('# docker: the write refused during the partition was applied after heal\n');
    } else {
      assert.equal(applied, false, 'a write refused during the partition must not be applied later');
    }
  });

  test('a worker leaves, is removed, and joins again; the global service runs on it', { timeout: 180_000 }, async () => {
    assert.match(await ok('host5', ['swarm', 'leave']), /Node left the swarm/);
    await waitNode('Down after leaving', 'host5', (r) => r?.status === 'Down');
    await ok(mgr, ['node', 'rm', 'host5']);
    assert.equal(await nodeRow('host5'), undefined);
    assert.match(await ok('host5', ['swarm', 'join', ...join2.worker]), /joined a swarm as a worker/);
    await waitNode('Ready, listed once', 'host5', (r) => r?.status === 'Ready');
    assert.equal((await nodes()).filter((n) => n.hostname === 'host5').length, 1);
    await waitRunning('glob', 'on host5, which joined after the service was made', (x) => x.get('host5') === 1 && total(x) === 5);
  });

  test('a private image: without --with-registry-auth its tasks cannot pull it; with it every host runs it', { timeout: 240_000 }, async () => {
    const ref = `${registry.address}/cluster-it/private:1`;
    await ok(mgr, ['login', '-u', registry.user, '--password-stdin', registry.address], { input: registry.password });
    await ok(mgr, ['tag', IMG, ref]);
    await ok(mgr, ['push', ref]);
    await ok(mgr, ['rmi', ref]); // no host has it now: each must pull
    await ok(mgr, ['service', 'create', '--detach', '--name', 'private', '--mode', 'global', ref, 'sleep', '3600']);
    const failed = await waitFor('its tasks to fail pulling', async () => {
      const t = await tasks('private').catch(() => []);
      const all = (await ok(mgr, ['service', 'ps', '--no-trunc', '--format', '{{.Error}}', 'private'])).split('\n').filter(Boolean);
      return t.every((x) => !x.state.startsWith('Running')) && all.find((e) => /No such image|no basic auth credentials|unauthorized|pull access denied|authentication required/i.test(e));
    }, CONVERGE_MS, 1_000);
    process.stderr.write(`# ${TARGET}: without --with-registry-auth: ${failed}\n`);
    await ok(mgr, ['service', 'update', '--detach', '--with-registry-auth', 'private']);
    await waitRunning('private', 'running on every host', (x) => HOSTS.every((h) => x.get(h) === 1), 90_000);
  });

  test('quorum loss: two of three managers off refuses writes clearly and tasks keep running; one back restores service', { timeout: 300_000 }, async () => {
    const lead = await leader();
    const managers = ['host1', 'host2', 'host3'];
    const keep = managers.find((h) => h !== lead)!;
    const off = managers.filter((h) => h !== keep);
    const specs = (on: string) => ok(on, ['service', 'inspect', '--format', '{{.Spec.Name}} {{json .Spec.Mode}} {{.Spec.TaskTemplate.ContainerSpec.Image}}', 'spread', 'glob', 'private']);
    const services = await specs(keep);
    const secrets = await ok(keep, ['secret', 'ls', '--format', '{{.Name}}']);
    const onWorker = await containersOn('host4', 'spread');
    assert.ok(onWorker.length > 0);

    for (const h of off) await lab(['kill', h]);
    mgr = keep;
    const refused = await waitFor('a write refused with a clear error', async () => {
      const r = await write(keep, 30_000);
      return r.code !== 0 && NO_LEADER.test(r.stderr) ? r.stderr.trim() : false;
    }, 60_000, 500);
    process.stderr.write(`# ${TARGET}: without quorum: ${refused}\n`);
    assert.deepEqual(await containersOn('host4', 'spread'), onWorker, 'the worker keeps its tasks running');

    await lab(['start', off[0]!]);
    await waitFor('a write to succeed again', async () => (await write(keep, 10_000)).code === 0, CONVERGE_MS, 500);
    assert.equal(await specs(keep), services, 'every service, as it was');
    const now = (await ok(keep, ['secret', 'ls', '--format', '{{.Name}}'])).split('\n');
    for (const s of secrets.split('\n').filter(Boolean)) assert.ok(now.includes(s), `secret ${s} kept`);
    // The manager still off ran some of spread's tasks: they come back elsewhere (as for a dead worker).
    await waitRunning('spread', '11 running', (x) => total(x) === 11 && !x.has(off[1]!), LIMITS.workerLoss + CONVERGE_MS);
    const still = await containersOn('host4', 'spread');
    const replaced = onWorker.filter((c) => !still.includes(c)).length;
    if (TARGET === 'docker' && replaced) {
      // Seen on Docker: the worker, slow to find the restored leader, was taken for dead and its tasks replaced.
      process.stderr.write(`# docker: after quorum came back, ${replaced} of the worker's ${onWorker.length} containers were replaced\n`);
    } else {
      assert.equal(replaced, 0, 'the worker\'s containers run on, never replaced');
    }
  });
});
