import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { dockerEngine, startShoal, waitFor, type ShoalHandle } from '../helpers/daemon';

// The harness itself: daemons start side by side on their own sockets and
// ports, the docker CLI reaches dockerd through them, stop/kill9/restart and
// cleanup do what they say.
describe('integration harness', () => {
  const started: ShoalHandle[] = [];
  after(async () => { for (const h of started) await h.cleanup().catch(() => undefined); });

  test('waitFor returns the first truthy value and names what timed out', async () => {
    let n = 0;
    assert.equal(await waitFor('n reaches 3', async () => (++n >= 3 ? n : undefined), 5_000, 10), 3);
    await assert.rejects(waitFor('never', async () => false, 200, 20), /timed out after 200 ms waiting for never; last value: false/);
    await assert.rejects(waitFor('throws', async () => { throw new Error('boom'); }, 200, 20), /waiting for throws; last value: error: boom/);
  });

  test('the host dockerd answers the docker CLI directly', async () => {
    const r = await dockerEngine(['version', '--format', '{{.Server.APIVersion}}']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), '1.41');
  });

  test('two daemons side by side; docker version through each; the environment cannot redirect the CLI', async () => {
    const a = await startShoal({ hostname: 'harness-a' });
    started.push(a);
    const b = await startShoal({ hostname: 'harness-b' });
    started.push(b);
    assert.notEqual(a.socket, b.socket);
    assert.notEqual(a.etcdClientUrl, b.etcdClientUrl);
    assert.ok(a.pid > 0 && b.pid > 0);

    const ping = await a.api('GET', '/_ping');
    assert.equal(ping.status, 200);
    assert.equal(ping.text, 'OK');
    assert.equal(ping.headers['api-version'], '1.41');

    const saved = { host: process.env.DOCKER_HOST, ctx: process.env.DOCKER_CONTEXT };
    process.env.DOCKER_HOST = 'unix:///nonexistent/docker.sock';
    process.env.DOCKER_CONTEXT = 'nonexistent-context';
    try {
      for (const cli of ['/usr/bin/docker', '/usr/local/bin/docker'] as const) {
        if (!existsSync(cli)) continue;
        const v = await b.docker(['version', '--format', '{{.Server.APIVersion}} {{.Client.APIVersion}}'], { cli });
        assert.equal(v.code, 0, `${cli}: ${v.stderr}`);
        assert.match(v.stdout.trim(), /^1\.41 1\.41$/);
      }
    } finally {
      if (saved.host === undefined) delete process.env.DOCKER_HOST; else process.env.DOCKER_HOST = saved.host;
      if (saved.ctx === undefined) delete process.env.DOCKER_CONTEXT; else process.env.DOCKER_CONTEXT = saved.ctx;
    }
    // Forwarded to the engine: the same server version as dockerd reports itself.
    const viaShoal = await a.docker(['version', '--format', '{{.Server.Version}}']);
    const direct = await dockerEngine(['version', '--format', '{{.Server.Version}}']);
    assert.equal(viaShoal.code, 0, viaShoal.stderr);
    assert.equal(viaShoal.stdout.trim(), direct.stdout.trim());
  });

  test('stop, restart, kill9, restart, cleanup', async () => {
    const h = await startShoal({ hostname: 'harness-c' });
    started.push(h);
    const firstPid = h.pid;
    await h.stop();
    assert.equal(h.running(), false);
    await assert.rejects(h.api('GET', '/_ping', undefined, { timeoutMs: 2_000 }));
    await h.restart();
    assert.ok(h.running());
    assert.notEqual(h.pid, firstPid);
    assert.equal((await h.api('GET', '/_ping')).status, 200);
    await h.kill9();
    assert.equal(h.running(), false);
    await h.restart();
    assert.equal((await h.docker(['version'])).code, 0);
    await h.cleanup();
    assert.equal(h.running(), false);
    assert.equal(existsSync(h.dir), false);
  });
});
