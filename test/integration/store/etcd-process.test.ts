import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EtcdProcess } from '../../../src/store/etcd-process';
import { silentLogger } from '../../../src/common/log';
import { freePort, waitFor } from '../../helpers/daemon';
import { makeEtcdTls } from '../../helpers/etcd-tls';

// Descriptors of this process open on `path`.
const fdsOn = (path: string): number => readdirSync('/proc/self/fd').filter((fd) => { try { return readlinkSync(`/proc/self/fd/${fd}`) === path; } catch { return false; } }).length;

test('etcd that cannot be run fails the start at once with the reason', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-etcdp-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const tls = await makeEtcdTls(join(dir, 'certificates'));
  const etcd = new EtcdProcess({ binary: join(dir, 'no-such-etcd'), dataDir: join(dir, 'etcd'), name: 'n1', clientUrl: `https://127.0.0.1:${await freePort()}`, peerUrl: `https://127.0.0.1:${await freePort()}`, tls, log: silentLogger });
  const started = Date.now();
  await assert.rejects(etcd.start(), /etcd exited while starting \(cannot run .*no-such-etcd: spawn .*ENOENT\)/);
  assert.ok(Date.now() - started < 5_000);
  assert.equal(fdsOn(etcd.logPath), 0, 'the log descriptor is closed');
  assert.equal(etcd.health().ok, false);
});

test('restarts after kill -9 reuse one log descriptor; the log is 0600', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-etcdp-'));
  const tls = await makeEtcdTls(join(dir, 'certificates'));
  const etcd = new EtcdProcess({ binary: '/usr/bin/etcd', dataDir: join(dir, 'etcd'), name: 'n1', clientUrl: `https://127.0.0.1:${await freePort()}`, peerUrl: `https://127.0.0.1:${await freePort()}`, tls, log: silentLogger });
  t.after(async () => { await etcd.stop(); rmSync(dir, { recursive: true, force: true }); });
  await etcd.start();
  assert.deepEqual(etcd.health(), { ok: true, reason: '' });
  for (let i = 0; i < 3; i++) {
    const pid = etcd.pid!;
    process.kill(pid, 'SIGKILL');
    await waitFor('etcd reported down', async () => !etcd.health().ok || etcd.pid !== pid, 5_000, 20);
    await waitFor('etcd back', async () => etcd.health().ok && etcd.pid !== pid, 20_000);
  }
  assert.equal(fdsOn(etcd.logPath), 1);
  assert.equal(statSync(etcd.logPath).mode & 0o777, 0o600);
  await etcd.stop();
  assert.equal(fdsOn(etcd.logPath), 0);
});

// This process's TCP connections to `port` on loopback, by socket inode.
function connectionsTo(port: number): Set<string> {
  const mine = new Set(readdirSync('/proc/self/fd').map((fd) => { try { return readlinkSync(`/proc/self/fd/${fd}`); } catch { return ''; } })
    .map((l) => /^socket:\[(\d+)\]$/.exec(l)?.[1]).filter((x): x is string => x !== undefined));
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const found = new Set<string>();
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    // remote address 0100007F:PORT, state 01 (established), inode in column 10
    if (f[2] === `0100007F:${hexPort}` && f[3] === '01' && mine.has(f[9] ?? '')) found.add(f[9]!);
  }
  return found;
}

test('the health probe keeps one TLS connection to etcd instead of a new one every second', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-etcdp-'));
  const tls = await makeEtcdTls(join(dir, 'certificates'));
  const port = await freePort();
  const etcd = new EtcdProcess({ binary: '/usr/bin/etcd', dataDir: join(dir, 'etcd'), name: 'n1', clientUrl: `https://127.0.0.1:${port}`, peerUrl: `https://127.0.0.1:${await freePort()}`, tls, log: silentLogger });
  t.after(async () => { await etcd.stop(); rmSync(dir, { recursive: true, force: true }); });
  await etcd.start();
  await waitFor('the probe connected', async () => connectionsTo(port).size === 1, 5_000, 50);
  const first = [...connectionsTo(port)][0];
  // Over three more probe periods (1 s each), always that one connection.
  const until = Date.now() + 3_500;
  while (Date.now() < until) {
    assert.deepEqual([...connectionsTo(port)], [first]);
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.deepEqual(etcd.health(), { ok: true, reason: '' });
});
