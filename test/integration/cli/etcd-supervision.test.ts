import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startShoal, waitFor, type ShoalHandle } from '../../helpers/daemon';
import { alive } from '../../../src/common/proc';

const swarmInfo = async (shoal: ShoalHandle): Promise<{ ControlAvailable: boolean; Error: string; LocalNodeState: string }> =>
  (await shoal.api('GET', '/v1.41/info', undefined, { timeoutMs: 10_000 })).json.Swarm;

describe('the etcd child is supervised', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  after(async () => { for (const c of cleanups.reverse()) await c(); });

  test('etcd crash-looping: /info says the control plane is unavailable and why, calls fail fast with 503; it recovers', async () => {
    // An etcd "binary" that fails while the flag file exists.
    const dir = mkdtempSync(join(tmpdir(), 'shoal-etcdbin-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const flag = join(dir, 'broken');
    const bin = join(dir, 'etcd');
    writeFileSync(bin, `#!/bin/sh\nif [ -e ${flag} ]; then echo "etcd: simulated start failure" >&2; exit 3; fi\nexec /usr/bin/etcd "$@"\n`, { mode: 0o755 });
    const shoal = await startShoal({ hostname: 'crashy', extraArgs: ['--etcd-binary', bin] });
    cleanups.push(() => shoal.cleanup());
    assert.equal((await shoal.docker(['swarm', 'init'])).code, 0);
    assert.equal((await swarmInfo(shoal)).ControlAvailable, true);

    writeFileSync(flag, '');
    process.kill(shoal.etcdPid()!, 'SIGKILL');
    const down = await waitFor('ControlAvailable false', async () => { const s = await swarmInfo(shoal); return !s.ControlAvailable && s; }, 10_000);
    assert.equal(down.LocalNodeState, 'active');
    assert.match(down.Error, /etcd/);
    const started = Date.now();
    const ls = await shoal.api('GET', '/v1.41/services', undefined, { timeoutMs: 10_000 });
    assert.equal(ls.status, 503);
    assert.match(ls.json.message, /store is not available.*etcd/);
    assert.ok(Date.now() - started < 2_000, 'refused at once, not after a wait');
    const cli = await shoal.docker(['service', 'create', '--name', 'x', 'shoal-test/busybox:1', 'sleep', '1'], { timeoutMs: 20_000 });
    assert.notEqual(cli.code, 0);
    assert.match(cli.stderr, /store is not available/);

    const looping = await waitFor('crash loop reported', async () => { const s = await swarmInfo(shoal); return /crash-looping/.test(s.Error) && s; }, 20_000);
    assert.equal(looping.ControlAvailable, false);
    assert.match(shoal.logs(), /etcd is crash-looping/);

    rmSync(flag);
    await waitFor('ControlAvailable true again', async () => { const s = await swarmInfo(shoal); return s.ControlAvailable && s.Error === '' && s; }, 40_000);
    const back = await shoal.docker(['service', 'ls']);
    assert.equal(back.code, 0, back.stderr);

    // Alive but not answering (stopped): the status probe notices, /info does not hang.
    const pid = shoal.etcdPid()!;
    process.kill(pid, 'SIGSTOP');
    try {
      const hung = await waitFor('hung etcd reported', async () => { const s = await swarmInfo(shoal); return !s.ControlAvailable && s; }, 30_000);
      assert.match(hung.Error, /etcd does not answer/);
    } finally { process.kill(pid, 'SIGCONT'); }
    await waitFor('ControlAvailable true after SIGCONT', async () => (await swarmInfo(shoal)).ControlAvailable, 20_000);
  });

  test('a foreign process on the etcd client port: start refuses to attach; a stray etcd of our own data root is stopped', async () => {
    const shoal = await startShoal({ hostname: 'guarded' });
    cleanups.push(() => shoal.cleanup());
    const init = await shoal.docker(['swarm', 'init']);
    assert.equal(init.code, 0, init.stderr);
    assert.equal((await shoal.docker(['config', 'create', 'kept', '-'], { input: 'v' })).code, 0);
    await shoal.stop();

    // Something else answers on etcd's client port (it even accepts connections).
    const port = Number(new URL(shoal.etcdClientUrl).port);
    const sockets = new Set<Socket>();
    const foreign: Server = createServer((s) => { sockets.add(s); s.on('error', () => undefined); s.on('close', () => sockets.delete(s)); });
    await new Promise<void>((resolve, reject) => { foreign.once('error', reject); foreign.listen(port, '127.0.0.1', () => resolve()); });
    try {
      await assert.rejects(shoal.restart(), /etcd client address 127\.0\.0\.1:\d+ is already in use by another process \(not this daemon's etcd\): refusing to attach/);
      assert.equal(sockets.size, 0, 'the daemon did not keep a connection to it');
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => foreign.close(() => r()));
    }
    await shoal.restart();
    assert.match((await shoal.docker(['config', 'ls'])).stdout, /kept/);

    // kill -9 of the daemon, and its etcd's pid file lost: the stray etcd is still found and stopped.
    const stray = shoal.etcdPid()!;
    await shoal.kill9();
    rmSync(join(shoal.dataRoot, 'etcd', 'etcd.pid'));
    await shoal.restart();
    // Gone or a zombie: it was orphaned by the kill -9, and pid 1 here does not reap.
    await waitFor('the stray etcd is gone', async () => !alive(stray), 10_000);
    assert.notEqual(shoal.etcdPid(), stray);
    assert.equal((await swarmInfo(shoal)).ControlAvailable, true);
    assert.match((await shoal.docker(['config', 'ls'])).stdout, /kept/);
  });
});
