import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { dockerEngine, startShoal, waitFor, type ShoalHandle } from '../../helpers/daemon';
import { ensureBusyboxImage } from '../../helpers/images';

// A task container that bind-mounts /var/run/docker.sock (as seed 003's
// visualizer and seed 004's Portainer agent do) reaches Shoal's API there, so
// the docker CLI inside it lists the swarm's services.
const IMG = 'shoal-test/busybox:1';
const CLI = '/usr/local/bin/docker'; // statically linked: runs in a busybox container

describe('task containers that mount the engine socket', () => {
  let shoal: ShoalHandle;
  before(async () => {
    await ensureBusyboxImage('/var/run/docker.sock', IMG);
    shoal = await startShoal({ hostname: 'shoal-socket-1' });
    const r = await shoal.docker(['swarm', 'init']);
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => { await shoal?.cleanup(); });

  test('see the swarm through Shoal\'s socket', async () => {
    const watched = await shoal.docker(['service', 'create', '--detach', '--name', 'watched', IMG, 'sleep', '100000']);
    assert.equal(watched.code, 0, watched.stderr);
    const w = await shoal.docker(['service', 'create', '--detach', '--name', 'watcher', '--restart-condition', 'none',
      '--mount', 'type=bind,source=/var/run/docker.sock,target=/var/run/docker.sock',
      '--mount', `type=bind,source=${CLI},target=/bin/dockercli,readonly`,
      IMG, 'sh', '-c', 'dockercli service ls --format "svc={{.Name}}"; sleep 100000']);
    assert.equal(w.code, 0, w.stderr);
    const cid = await waitFor('the watcher container', async () => {
      const t = (await shoal.api('GET', `/v1.41/tasks?filters=${encodeURIComponent('{"service":{"watcher":true}}')}`)).json as Array<{ Status: { State: string; ContainerStatus?: { ContainerID?: string } } }>;
      return t.find((x) => x.Status.State === 'running')?.Status.ContainerStatus?.ContainerID;
    }, 60_000, 250);
    const mount = JSON.parse((await dockerEngine(['inspect', '--format', '{{json .Mounts}}', cid])).stdout) as Array<{ Source: string; Destination: string }>;
    assert.equal(mount.find((m) => m.Destination === '/var/run/docker.sock')?.Source, shoal.socket);
    const out = await waitFor('the CLI inside the task to list the services', async () => {
      const logs = await dockerEngine(['logs', cid]);
      return /svc=watched/.test(logs.stdout) ? logs.stdout : undefined;
    }, 30_000, 250);
    assert.match(out, /svc=watcher/);
  });
});
