import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { startShoal, waitFor, type ShoalHandle } from '../../helpers/daemon';
import { readKeyFile } from '../../../src/node/key-lock';
import { parseUnlockKey } from '../../../src/manager/ca/unlock-key';
import { ManagerKeys } from '../../../src/daemon/manager-keys';

const SWARM_LOCKED = 'Swarm is encrypted and needs to be unlocked before it can be used. Please use "docker swarm unlock" to unlock it.';
const KEY_FILES = ['swarm-node.key', 'etcd.key', 'swarm-secrets.key'];

// Autolock with the real docker CLI on one daemon: init --autolock, restart
// (locked), a wrong key refused, unlock, rotation, autolock off and on again.
describe('autolock', () => {
  let shoal: ShoalHandle;
  let key = '';
  const ok = async (args: string[], input?: string) => {
    const r = await shoal.docker(args, input === undefined ? {} : { input });
    assert.equal(r.code, 0, `docker ${args.join(' ')}: ${r.stderr}${r.stdout}`);
    return r.stdout;
  };
  const fail = async (args: string[], input?: string) => {
    const r = await shoal.docker(args, input === undefined ? {} : { input });
    assert.notEqual(r.code, 0, `docker ${args.join(' ')} should fail: ${r.stdout}`);
    return r.stderr;
  };
  const file = (name: string) => join(shoal.dataRoot, 'certificates', name);
  const snapshot = () => KEY_FILES.map((f) => readFileSync(file(f), 'utf8'));
  // Every key file opens with this key (and is wrapped), or is in clear when undefined.
  const wrappedUnder = (k: string | undefined): boolean => KEY_FILES.every((f) => {
    const text = readFileSync(file(f), 'utf8');
    if (!k) return !text.startsWith('shoal-locked-key:');
    try { return text.startsWith('shoal-locked-key:') && readKeyFile(file(f), parseUnlockKey(k)) !== undefined; } catch { return false; }
  });
  const state = async () => (await ok(['info', '--format', '{{.Swarm.LocalNodeState}}'])).trim();
  const keyOf = (out: string): string => {
    const m = /SWMKEY-1-[A-Za-z0-9+/]+/.exec(out);
    assert.ok(m, out);
    return m[0];
  };

  before(async () => {
    shoal = await startShoal({ hostname: 'autolocked' });
    const out = await ok(['swarm', 'init', '--autolock']);
    // The CLI prints the key as Docker's init does.
    assert.match(out, /To unlock a swarm manager after it restarts, run the `docker swarm unlock`/);
    key = keyOf(out);
    await ok(['secret', 'create', 'db_pass', '-'], 'hunter2');
  });
  after(async () => { await shoal?.cleanup(); });

  test('the key files are wrapped under the unlock key; etcd reads a clear copy on tmpfs only', async () => {
    assert.equal((await ok(['swarm', 'unlock-key', '-q'])).trim(), key);
    assert.ok(wrappedUnder(key));
    for (const f of KEY_FILES) assert.ok(!readFileSync(file(f), 'utf8').includes('PRIVATE KEY'), f);
    const runtime = new ManagerKeys(shoal.dataRoot);
    assert.equal(statSync(runtime.runtimeEtcdKey).mode & 0o777, 0o600);
    assert.equal(statSync(runtime.runtimeDir).mode & 0o777, 0o700);
    assert.match(readFileSync(runtime.runtimeEtcdKey, 'utf8'), /PRIVATE KEY/);
    assert.equal((await shoal.api('GET', '/v1.41/swarm')).json.Spec.EncryptionConfig.AutoLockManagers, true);
  });

  test('restarted, the manager is locked: Docker\'s 503, a wrong key refused with nothing changed, then unlocked it serves', async () => {
    await shoal.restart();
    assert.equal(await state(), 'locked');
    assert.ok(!existsSync(new ManagerKeys(shoal.dataRoot).runtimeDir), 'no etcd key in clear while locked');
    assert.ok((await fail(['node', 'ls'])).includes(SWARM_LOCKED));
    const api = await shoal.api('GET', '/v1.41/swarm/unlockkey');
    assert.equal(api.status, 503);
    assert.equal(api.json.message, SWARM_LOCKED);
    assert.match(await fail(['swarm', 'leave']), /Swarm is encrypted and locked\. Please unlock it first or use `--force` to ignore this message\./);
    assert.match(await fail(['swarm', 'init']), /already part of a swarm/);

    const before = snapshot();
    const wrong = 'SWMKEY-1-' + Buffer.alloc(32, 7).toString('base64').replace(/=+$/, '');
    assert.match(await fail(['swarm', 'unlock'], `${wrong}\n`), /Error response from daemon: swarm could not be unlocked: invalid key provided/);
    const wrongApi = await shoal.api('POST', '/v1.41/swarm/unlock', { UnlockKey: wrong });
    assert.equal(wrongApi.status, 401);
    assert.match(await fail(['swarm', 'unlock'], 'not-a-key\n'), /invalid key string/);
    assert.deepEqual(snapshot(), before, 'a refused key changes no file');
    assert.equal(await state(), 'locked');

    await ok(['swarm', 'unlock'], `${key}\n`);
    assert.equal(await state(), 'active');
    assert.match(await ok(['node', 'ls']), /autolocked/);
    assert.match(await ok(['secret', 'ls']), /db_pass/);
    assert.match(await fail(['swarm', 'unlock'], `${key}\n`), /swarm is not locked/);
  });

  test('unlock-key --rotate: the files follow the new key; the old key no longer opens after a restart', async () => {
    const out = await ok(['swarm', 'unlock-key', '--rotate']);
    assert.match(out, /Successfully rotated manager unlock key\./);
    const next = keyOf(out);
    assert.notEqual(next, key);
    await waitFor('files re-wrapped under the new key', async () => wrappedUnder(next), 10_000);
    await shoal.restart();
    assert.equal(await state(), 'locked');
    assert.match(await fail(['swarm', 'unlock'], `${key}\n`), /invalid key provided/);
    await ok(['swarm', 'unlock'], `${next}\n`);
    assert.equal(await state(), 'active');
    key = next;
  });

  test('docker swarm ca prints the root CA; --rotate under autolock: a new root, keys still wrapped, a restart unlocks', async () => {
    const root = (await shoal.api('GET', '/v1.41/swarm')).json.ClusterInfo?.TLSInfo?.TrustRoot ?? (await shoal.api('GET', '/v1.41/swarm')).json.TLSInfo.TrustRoot;
    assert.equal((await ok(['swarm', 'ca'])).trim(), String(root).trim());
    const out = await ok(['swarm', 'ca', '--rotate', '-q']);
    const next = (await ok(['swarm', 'ca'])).trim();
    assert.notEqual(next, String(root).trim());
    assert.equal(out.trim(), '', '-q: the CLI waits and prints nothing');
    assert.equal((await shoal.api('GET', '/v1.41/swarm')).json.RootRotationInProgress, false);
    await waitFor('files wrapped after the rotation', async () => wrappedUnder(key), 10_000);
    await shoal.restart();
    assert.equal(await state(), 'locked');
    await ok(['swarm', 'unlock'], `${key}\n`);
    assert.equal((await ok(['swarm', 'ca'])).trim(), next);
    assert.match(await ok(['secret', 'ls']), /db_pass/);
  });

  test('autolock off: keys in clear, a restart is not locked; on again: a new key', async () => {
    await ok(['swarm', 'update', '--autolock=false']);
    await waitFor('files in clear', async () => wrappedUnder(undefined), 10_000);
    assert.match(await fail(['swarm', 'unlock-key']), /no unlock key is set/);
    assert.match(await fail(['swarm', 'unlock-key', '--rotate']), /cannot rotate because autolock is not turned on/);
    await shoal.restart();
    assert.equal(await state(), 'active');
    const out = await ok(['swarm', 'update', '--autolock=true']);
    const again = keyOf(out);
    assert.notEqual(again, key);
    await waitFor('files wrapped under the new key', async () => wrappedUnder(again), 10_000);
    assert.match(await ok(['secret', 'ls']), /db_pass/);
  });
});
