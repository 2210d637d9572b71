import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startShoal, waitFor, type ShoalHandle } from '../../helpers/daemon';
import { ensureBusyboxImage } from '../../helpers/images';

const IMG = 'shoal-test/busybox:1';

// Placement as the scheduler decides it, seen through the CLI on one node:
// reservations that do not fit leave tasks pending with Docker's explanation,
// max replicas per node caps a node, preferences and limits are accepted and applied.
describe('placement and resources through the docker CLI', () => {
  let shoal: ShoalHandle;
  const ok = async (args: string[]) => {
    const r = await shoal.docker(args);
    assert.equal(r.code, 0, `docker ${args.join(' ')}: ${r.stderr}${r.stdout}`);
    return r.stdout;
  };
  const tasks = async (service: string) => {
    const r = await shoal.api('GET', `/v1.41/tasks?filters=${encodeURIComponent(JSON.stringify({ service: { [service]: true } }))}`);
    return r.json as Array<{ ID: string; Status: { State: string; Err?: string; ContainerStatus?: { ContainerID?: string } }; DesiredState: string }>;
  };

  before(async () => {
    await ensureBusyboxImage('/var/run/docker.sock', IMG);
    shoal = await startShoal({ hostname: 'placer' });
    await ok(['swarm', 'init']);
    await ok(['node', 'update', '--label-add', 'zone=a', 'self']);
  });
  after(async () => { await shoal?.cleanup(); });

  test('a reservation larger than the node stays pending: insufficient resources on 1 node', async () => {
    await ok(['service', 'create', '-d', '--name', 'huge', '--reserve-memory', '100T', IMG, 'sleep', '3600']);
    const t = await waitFor('pending with explanation', async () => {
      const ts = await tasks('huge');
      return ts.length === 1 && ts[0]!.Status.State === 'pending' && ts[0]!.Status.Err ? ts[0] : undefined;
    }, 30_000);
    assert.equal(t.Status.Err, 'no suitable node (insufficient resources on 1 node)');
    assert.match(await ok(['service', 'ps', '--no-trunc', 'huge']), /insufficient resources on 1 node/);
    await ok(['service', 'rm', 'huge']);
  });

  test('reservations that fit run; limits reach the container', async () => {
    await ok(['service', 'create', '-d', '--name', 'fit', '--reserve-memory', '64M', '--reserve-cpu', '0.1', '--limit-memory', '96M', '--limit-cpu', '0.5', IMG, 'sleep', '3600']);
    const t = await waitFor('running', async () => {
      const ts = (await tasks('fit')).filter((x) => x.Status.State === 'running');
      return ts.length === 1 ? ts[0] : undefined;
    }, 30_000);
    const hc = JSON.parse((await shoal.dockerEngine(['inspect', '--format', '{{json .HostConfig}}', t.Status.ContainerStatus!.ContainerID!])).stdout);
    assert.equal(hc.Memory, 96 * 1024 * 1024);
    assert.equal(hc.NanoCpus, 500_000_000);
    assert.equal(hc.MemoryReservation, 64 * 1024 * 1024);
    await ok(['service', 'rm', 'fit']);
  });

  test('--replicas-max-per-node 2 places two of four on the one node', async () => {
    await ok(['service', 'create', '-d', '--name', 'capped', '--replicas', '4', '--replicas-max-per-node', '2', IMG, 'sleep', '3600']);
    await waitFor('two running, two pending', async () => {
      const ts = await tasks('capped');
      const running = ts.filter((x) => x.Status.State === 'running').length;
      const pending = ts.filter((x) => x.Status.State === 'pending' && /max replicas per node limit exceed/.test(x.Status.Err ?? '')).length;
      return running === 2 && pending === 2 ? true : undefined;
    }, 30_000);
    await ok(['service', 'rm', 'capped']);
  });

  test('a spread preference over a node label places every task', async () => {
    await ok(['service', 'create', '-d', '--name', 'spread', '--replicas', '3', '--placement-pref', 'spread=node.labels.zone', IMG, 'sleep', '3600']);
    await waitFor('three running', async () => (await tasks('spread')).filter((x) => x.Status.State === 'running').length === 3 || undefined, 30_000);
    const pretty = await ok(['service', 'inspect', '--pretty', 'spread']);
    assert.match(pretty, /Preferences:\s+\[spread=node\.labels\.zone\]/);
    await ok(['service', 'rm', 'spread']);
  });
});
