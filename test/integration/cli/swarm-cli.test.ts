import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startShoal, waitFor, type ShoalHandle } from '../../helpers/daemon';
import { ensureBusyboxImage } from '../../helpers/images';

// The seeds' commands, typed as a user types them, with the real docker CLI
// against a real dockerd through one Shoal daemon.
const IMG = 'shoal-test/busybox:1';
const CLIS = ['/usr/bin/docker', '/usr/local/bin/docker'] as const;

describe('a one-node swarm driven by the docker CLI', () => {
  let shoal: ShoalHandle;
  let nodeId = '';

  const ok = async (args: string[], cli?: (typeof CLIS)[number]) => {
    const r = await shoal.docker(args, cli ? { cli } : undefined);
    assert.equal(r.code, 0, `docker ${args.join(' ')} failed: ${r.stderr}${r.stdout}`);
    return r.stdout;
  };
  const fails = async (args: string[]) => {
    const r = await shoal.docker(args);
    assert.notEqual(r.code, 0, `docker ${args.join(' ')} should fail: ${r.stdout}`);
    return r.stderr;
  };
  const runningTasks = async (service: string): Promise<Array<{ ID: string; Status: { State: string; ContainerStatus?: { ContainerID?: string } }; DesiredState: string; Slot?: number }>> => {
    const f = encodeURIComponent(JSON.stringify({ service: { [service]: true } }));
    const r = await shoal.api('GET', `/v1.41/tasks?filters=${f}`);
    return (r.json as never[]).filter((t: { Status: { State: string }; DesiredState: string }) => t.Status.State === 'running' && t.DesiredState === 'running');
  };
  const waitRunning = (service: string, n: number, ms = 60_000) =>
    waitFor(`${n} running tasks of ${service}`, async () => { const t = await runningTasks(service); return t.length === n ? t : undefined; }, ms);

  before(async () => {
    await ensureBusyboxImage('/var/run/docker.sock', IMG);
    shoal = await startShoal({ hostname: 'shoal-node-1' });
  });
  after(async () => { await shoal?.cleanup(); });

  test('docker swarm init prints the join command; a second init is refused', async () => {
    const out = await ok(['swarm', 'init']);
    const m = /Swarm initialized: current node \(([0-9a-z]{25})\) is now a manager\./.exec(out);
    assert.ok(m, out);
    nodeId = m[1]!;
    // As Docker's, init returns once the node's agent has registered with the
    // dispatcher: a script's next `node update` does not race that write.
    assert.match(shoal.logs(), /session with the dispatcher established/);
    assert.match(out, /docker swarm join --token SWMTKN-1-[0-9a-z]{50}-[0-9a-z]{25} [\d.]+:2377/);
    const again = await fails(['swarm', 'init']);
    assert.match(again, /This node is already part of a swarm/);
    const info = await ok(['info', '--format', '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}} {{.Swarm.Nodes}} {{.Swarm.Managers}}']);
    assert.equal(info.trim(), 'active true 1 1');
    assert.match(await ok(['swarm', 'join-token', 'worker']), /docker swarm join --token SWMTKN-1-/);
    const before = (await ok(['swarm', 'join-token', '-q', 'worker'])).trim();
    const rotated = (await ok(['swarm', 'join-token', '--rotate', '-q', 'worker'])).trim();
    assert.notEqual(before, rotated);
  });

  test('docker node ls stars self and shows Leader; inspect --pretty; label and availability updates', async () => {
    for (const cli of CLIS) {
      const ls = await ok(['node', 'ls'], cli);
      const row = ls.split("\n").find((l: string) => l.startsWith(nodeId));
      assert.ok(row, ls);
      assert.match(row, new RegExp(`^${nodeId} \\*\\s+shoal-node-1\\s+Ready\\s+Active\\s+Leader`));
    }
    const pretty = await ok(['node', 'inspect', '--pretty', 'self']);
    assert.match(pretty, /Hostname:\s+shoal-node-1/);
    assert.match(pretty, /Availability:\s+Active/);
    assert.match(pretty, /Manager Status:/);
    await ok(['node', 'update', '--label-add', 'ssd', '--label-add', 'powerline=2', 'shoal-node-1']);
    const labels = await ok(['node', 'inspect', '--format', '{{json .Spec.Labels}}', 'self']);
    assert.deepEqual(JSON.parse(labels), { ssd: '', powerline: '2' });
    assert.match(await fails(['node', 'update', '--availability', 'sleepy', 'self']), /invalid|Invalid/);
    assert.match(await fails(['node', 'rm', 'self']), /is a cluster manager/);
  });

  test('service create waits for convergence in both CLIs; ls, ps, inspect --pretty', async () => {
    for (const [i, cli] of CLIS.entries()) {
      const name = `conv${i}`;
      const out = await shoal.docker(['service', 'create', '--name', name, '--replicas', '2', IMG, 'sleep', '3600'], { cli, timeoutMs: 90_000 });
      assert.equal(out.code, 0, out.stderr + out.stdout);
      assert.match(out.stdout + out.stderr, /verify: Service (\S+ )?converged/);
      const ls = await ok(['service', 'ls'], cli);
      assert.match(ls, new RegExp(`${name}\\s+replicated\\s+2/2\\s+${IMG.replace('/', '\\/')}`));
      await ok(['service', 'rm', name]);
    }
  });

  test('replicated service: scale, ps with history after docker rm -f, logs, rm', async () => {
    const id = (await ok(['service', 'create', '-d', '--name', 'web', '--replicas', '3', IMG, 'sh', '-c', 'echo hello from $(hostname); sleep 3600'])).trim();
    assert.match(id, /^[0-9a-z]{25}$/);
    const tasks = await waitRunning('web', 3);
    const ps = await ok(['service', 'ps', 'web']);
    for (const slot of [1, 2, 3]) assert.match(ps, new RegExp(`web\\.${slot}\\s+${IMG.replace('/', '\\/')}\\s+shoal-node-1\\s+Running\\s+Running`));

    // A container removed behind Swarm's back is replaced, and the old task stays as history.
    const victim = tasks.find((t) => t.Slot === 1)!;
    const rm = await shoal.dockerEngine(['rm', '-f', victim.Status.ContainerStatus!.ContainerID!]);
    assert.equal(rm.code, 0, rm.stderr);
    await waitFor('slot 1 replaced', async () => {
      const now = await runningTasks('web');
      return now.length === 3 && now.some((t: { Slot?: number; ID: string }) => t.Slot === 1 && t.ID !== victim.ID);
    }, 60_000);
    const ps2 = await ok(['service', 'ps', 'web']);
    assert.match(ps2, / \\_ web\.1/);

    await ok(['service', 'scale', 'web=5']);
    await waitRunning('web', 5);
    assert.match(await ok(['service', 'ls']), /web\s+replicated\s+5\/5/);
    await ok(['service', 'scale', 'web=2']);
    await waitRunning('web', 2);

    const logs = await ok(['service', 'logs', '--tail', '10', 'web']);
    assert.match(logs, /web\.\d\.[0-9a-z]{12}@shoal-node-1\s+\| hello from /);
    const raw = await ok(['service', 'logs', '--raw', 'web']);
    assert.match(raw, /^hello from /m);

    const pretty = await ok(['service', 'inspect', '--pretty', 'web']);
    assert.match(pretty, /Name:\s+web/);
    assert.match(pretty, /Replicas:\s+2/);

    await ok(['service', 'rm', 'web']);
    await waitFor('web containers gone', async () => {
      const r = await shoal.dockerEngine(['ps', '-aq', '--filter', `label=com.docker.swarm.service.id=${id}`]);
      return r.stdout.trim() === '' ? true : undefined;
    }, 60_000);
    assert.match(await fails(['service', 'ps', 'web']), /no such service: web/);
  });

  test('task containers carry Swarm names and labels', async () => {
    await ok(['service', 'create', '-d', '--name', 'lbl', '--container-label', 'team=a', IMG, 'sleep', '3600']);
    const [t] = await waitRunning('lbl', 1);
    const inspect = JSON.parse((await shoal.dockerEngine(['inspect', t!.Status.ContainerStatus!.ContainerID!])).stdout)[0];
    assert.equal(inspect.Name, `/lbl.1.${t!.ID}`);
    const l = inspect.Config.Labels;
    assert.equal(l['com.docker.swarm.task.id'], t!.ID);
    assert.equal(l['com.docker.swarm.node.id'], nodeId);
    assert.equal(l['com.docker.swarm.service.name'], 'lbl');
    assert.equal(l['com.docker.swarm.task.name'], `lbl.1.${t!.ID}`);
    assert.equal(l.team, 'a');
    await ok(['service', 'rm', 'lbl']);
  });

  test('global mode runs one task on the node; drain stops it, active brings it back', async () => {
    await ok(['service', 'create', '-d', '--name', 'glob', '--mode', 'global', IMG, 'sleep', '3600']);
    await waitRunning('glob', 1);
    assert.match(await ok(['service', 'ls']), /glob\s+global\s+1\/1/);
    const scale = await fails(['service', 'scale', 'glob=3']);
    assert.match(scale, /scale can only be used with replicated|replicated-job/);
    await ok(['node', 'update', '--availability', 'drain', 'self']);
    await waitRunning('glob', 0);
    await ok(['node', 'update', '--availability', 'active', 'self']);
    await waitRunning('glob', 1);
    await ok(['service', 'rm', 'glob']);
  });

  test('constraints: a matching one runs, an impossible one stays pending with Docker\'s explanation', async () => {
    await ok(['service', 'create', '-d', '--name', 'fits', '--constraint', 'node.labels.powerline==2', '--constraint', 'node.role==manager', IMG, 'sleep', '3600']);
    await waitRunning('fits', 1);
    await ok(['service', 'create', '-d', '--name', 'nofit', '--constraint', 'node.labels.env==prod', IMG, 'sleep', '3600']);
    const ps = await waitFor('pending explanation', async () => {
      const out = (await shoal.docker(['service', 'ps', '--no-trunc', 'nofit'])).stdout;
      return /Pending/.test(out) && /no suitable node \(scheduling constraints not satisfied on 1 node\)/.test(out) ? out : undefined;
    }, 30_000);
    assert.ok(ps);
    assert.match(await fails(['service', 'create', '--name', 'badc', '--constraint', 'node.labels.env', IMG]), /constraint|InvalidArgument/);
    await ok(['service', 'rm', 'fits', 'nofit']);
  });

  test('restart conditions: none leaves a failed task alone; on-failure stops after success', async () => {
    await ok(['service', 'create', '-d', '--name', 'once', '--restart-condition', 'none', IMG, 'sh', '-c', 'exit 3']);
    const failed = await waitFor('task failed with exit 3', async () => {
      const r = await shoal.api('GET', `/v1.41/tasks?filters=${encodeURIComponent('{"service":{"once":true}}')}`);
      const ts = r.json as Array<{ Status: { State: string; Err?: string; ContainerStatus?: { ExitCode?: number } } }>;
      return ts.length === 1 && ts[0]!.Status.State === 'failed' ? ts[0] : undefined;
    }, 30_000);
    assert.equal(failed.Status.ContainerStatus?.ExitCode, 3);
    assert.match(failed.Status.Err ?? '', /non-zero exit \(3\)/);
    const ps = await ok(['service', 'ps', '--no-trunc', 'once']);
    assert.match(ps, /Failed/);
    assert.match(ps, /task: non-zero exit \(3\)/);

    await ok(['service', 'create', '-d', '--name', 'okonce', '--restart-condition', 'on-failure', IMG, 'true']);
    await waitFor('task complete', async () => {
      const r = await shoal.api('GET', `/v1.41/tasks?filters=${encodeURIComponent('{"service":{"okonce":true}}')}`);
      const ts = r.json as Array<{ Status: { State: string } }>;
      return ts.length === 1 && ts[0]!.Status.State === 'complete' ? true : undefined;
    }, 30_000);
    assert.match(await ok(['service', 'ls']), /okonce\s+replicated\s+0\/1/);
    await ok(['service', 'rm', 'once', 'okonce']);
  });

  test('bad input is refused with Docker\'s messages and changes nothing', async () => {
    await ok(['service', 'create', '-d', '--name', 'dup', IMG, 'sleep', '3600']);
    const dup = await fails(['service', 'create', '-d', '--name', 'dup', IMG, 'sleep', '3600']);
    assert.match(dup, /Error response from daemon: rpc error: code = AlreadyExists desc = name conflicts with an existing object: service dup already exists/);
    assert.match(await fails(['service', 'create', '-d', '--name', 'bad name', IMG]), /name must be valid as a DNS name component/);
    assert.match(await fails(['service', 'inspect', 'nosuch']), /no such service: nosuch/);
    assert.match(await fails(["service", "rm", "nosuch"]), /No such service: nosuch|service nosuch not found/);
    assert.match(await fails(['node', 'inspect', 'nosuch']), /node nosuch not found|No such node/i);
    const ls = await ok(['service', 'ls', '-q']);
    assert.equal(ls.trim().split('\n').filter(Boolean).length, 1);
    await ok(['service', 'rm', 'dup']);
  });

  test('swarm update sets task history retention', async () => {
    await ok(['swarm', 'update', '--task-history-limit', '2']);
    const lim = await ok(['info', '--format', '{{.Swarm.Cluster.Spec.Orchestration.TaskHistoryRetentionLimit}}']);
    assert.equal(lim.trim(), '2');
  });

  test('docker swarm leave needs --force on the last manager, then removes the task containers', async () => {
    await ok(['service', 'create', '-d', '--name', 'leaver', '--replicas', '2', IMG, 'sleep', '3600']);
    await waitRunning('leaver', 2);
    assert.match(await fails(['swarm', 'leave']), /Use `--force` to ignore this message/);
    assert.match(await ok(['swarm', 'leave', '--force']), /Node left the swarm/);
    const left = await shoal.dockerEngine(['ps', '-aq', '--filter', `label=com.docker.swarm.node.id=${nodeId}`]);
    assert.equal(left.stdout.trim(), '');
    assert.match(await fails(['service', 'ls']), /This node is not a swarm manager/);
    const info = await ok(['info', '--format', '{{.Swarm.LocalNodeState}}']);
    assert.equal(info.trim(), 'inactive');
    assert.match(await fails(['swarm', 'leave']), /This node is not part of a swarm/);
  });
});
