import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startShoal, waitFor, type ShoalHandle } from '../../helpers/daemon';
import { ensureBusyboxImage } from '../../helpers/images';

const IMG = 'shoal-test/busybox:1';

// Restarting or killing the daemon, or its etcd, loses nothing acknowledged
// and restarts no running container.
describe('durability across restarts', () => {
  let shoal: ShoalHandle;

  const ok = async (args: string[]) => {
    const r = await shoal.docker(args);
    assert.equal(r.code, 0, `docker ${args.join(' ')}: ${r.stderr}${r.stdout}`);
    return r.stdout;
  };
  // Container ID -> StartedAt of each running task of a service, from the engine.
  const containers = async (service: string): Promise<Map<string, string>> => {
    // This daemon's node only: the host engine may hold containers of other runs' daemons.
    const node = shoal.nodeIds().slice(-1).flatMap((id) => ['--filter', `label=com.docker.swarm.node.id=${id}`]);
    const ids = (await shoal.dockerEngine(['ps', '-q', '--no-trunc', '--filter', `label=com.docker.swarm.service.name=${service}`, ...node])).stdout.trim().split('\n').filter(Boolean);
    const out = new Map<string, string>();
    for (const id of ids) out.set(id, (await shoal.dockerEngine(['inspect', '--format', '{{.State.StartedAt}}', id])).stdout.trim());
    return out;
  };
  const running = async (service: string): Promise<number> => {
    const r = await shoal.api('GET', `/v1.41/tasks?filters=${encodeURIComponent(JSON.stringify({ service: { [service]: true }, 'desired-state': { running: true } }))}`);
    if (r.status !== 200) return -1;
    return (r.json as Array<{ Status: { State: string } }>).filter((t) => t.Status.State === 'running').length;
  };
  const waitRunning = (service: string, n: number) => waitFor(`${n} running ${service}`, async () => (await running(service)) === n || undefined, 60_000);

  before(async () => {
    await ensureBusyboxImage('/var/run/docker.sock', IMG);
    shoal = await startShoal({ hostname: 'durable' });
    await ok(['swarm', 'init']);
    await ok(['service', 'create', '-d', '--name', 'keep', '--replicas', '2', IMG, 'sleep', '3600']);
    await waitRunning('keep', 2);
  });
  after(async () => { await shoal?.cleanup(); });

  test('a clean restart adopts the running containers', async () => {
    const before = await containers('keep');
    assert.equal(before.size, 2);
    await shoal.restart();
    await waitRunning('keep', 2);
    assert.deepEqual(await containers('keep'), before);
    assert.match(await ok(['service', 'ls']), /keep\s+replicated\s+2\/2/);
  });

  test('kill -9 of the daemon right after an acknowledged change loses nothing', async () => {
    const before = await containers('keep');
    await ok(['service', 'create', '-d', '--name', 'justmade', IMG, 'sleep', '3600']);
    await ok(['node', 'update', '--label-add', 'zone=a', 'self']);
    await shoal.kill9();
    await shoal.restart();
    await waitRunning('keep', 2);
    await waitRunning('justmade', 1);
    assert.deepEqual(await containers('keep'), before, 'running containers were adopted, not restarted');
    assert.match(await ok(['node', 'inspect', '--format', '{{index .Spec.Labels "zone"}}', 'self']), /^a$/m);
  });

  test('kill -9 of etcd: the daemon restarts it and keeps serving', async () => {
    const before = await containers('keep');
    assert.ok(shoal.etcdPid(), 'etcd pid known');
    process.kill(shoal.etcdPid()!, 'SIGKILL');
    // The next write may wait for etcd to come back; it must then succeed.
    await waitFor('scale accepted after etcd restart', async () => (await shoal.docker(['service', 'scale', '-d', 'keep=3'])).code === 0 || undefined, 60_000);
    await waitRunning('keep', 3);
    const after = await containers('keep');
    for (const [id, started] of before) assert.equal(after.get(id), started, `container ${id} kept running`);
  });
});
