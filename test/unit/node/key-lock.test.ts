import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, statSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isKeyLockError, isWrapped, readKeyFile, unwrapKey, wrapKey, writeKeyFiles } from '../../../src/node/key-lock';
import { newUnlockKey } from '../../../src/manager/ca/unlock-key';

const CLEAR = Buffer.from('-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n');

test('a wrapped key opens with its unlock key and its name only', () => {
  const key = newUnlockKey();
  const text = wrapKey(CLEAR, key, 'swarm-node.key');
  assert.ok(isWrapped(text));
  assert.ok(!text.includes('PRIVATE KEY'));
  assert.deepEqual(unwrapKey(text, key, 'swarm-node.key'), CLEAR);
  // The same content wraps differently each time (fresh nonce).
  assert.notEqual(wrapKey(CLEAR, key, 'swarm-node.key'), text);
  // Moved onto another file's name: damaged, not a wrong key.
  assert.throws(() => unwrapKey(text, key, 'etcd.key'), (e) => isKeyLockError(e, 'damaged'));
});

test('a wrong key, no key, a truncated or a corrupt file: each its own clear error', () => {
  const key = newUnlockKey();
  const text = wrapKey(CLEAR, key, 'etcd.key');
  assert.throws(() => unwrapKey(text, newUnlockKey(), 'etcd.key'), (e) => isKeyLockError(e, 'wrong-key') && /etcd.key is locked with another unlock key/.test((e as Error).message));
  assert.throws(() => unwrapKey(text, undefined, 'etcd.key'), (e) => isKeyLockError(e, 'locked') && /unlock key is needed/.test((e as Error).message));
  for (const cut of [25, 40, 60]) {
    assert.throws(() => unwrapKey(text.slice(0, cut), key, 'etcd.key'), (e) => isKeyLockError(e, 'truncated'), `cut at ${cut}`);
  }
  // Cut inside the ciphertext: the tag fails with the right key.
  assert.throws(() => unwrapKey(text.trim().slice(0, -8), key, 'etcd.key'), (e) => isKeyLockError(e, 'damaged') || isKeyLockError(e, 'truncated'));
  // One ciphertext character changed.
  const body = text.trim();
  const i = body.length - 5;
  const flipped = body.slice(0, i) + (body[i] === 'A' ? 'B' : 'A') + body.slice(i + 1);
  assert.throws(() => unwrapKey(flipped, key, 'etcd.key'), (e) => isKeyLockError(e, 'damaged'));
  assert.throws(() => unwrapKey(body.replace(/:([^:]*)$/, ':%%%'), key, 'etcd.key'), (e) => isKeyLockError(e, 'damaged'));
  // A clear file reads as is, with or without a key.
  assert.deepEqual(unwrapKey(CLEAR.toString(), key, 'etcd.key'), CLEAR);
  assert.deepEqual(unwrapKey(CLEAR.toString(), undefined, 'etcd.key'), CLEAR);
});

test('key files: written together, mode 0600, wrapped or clear; a missing file reads as undefined', () => {
  const dir = mkdtempSync(join(tmpdir(), 'key-lock-'));
  try {
    const key = newUnlockKey();
    const a = join(dir, 'certs', 'a.key');
    const b = join(dir, 'certs', 'b.key');
    writeKeyFiles([{ path: a, clear: CLEAR }, { path: b, clear: Buffer.from('other') }], key);
    assert.equal(statSync(a).mode & 0o777, 0o600);
    assert.ok(isWrapped(readFileSync(a, 'utf8')));
    assert.deepEqual(readKeyFile(b, key), Buffer.from('other'));
    assert.ok(!existsSync(`${a}.tmp`));
    writeKeyFiles([{ path: a, clear: CLEAR }], undefined);
    assert.deepEqual(readFileSync(a), CLEAR);
    assert.equal(readKeyFile(join(dir, 'none'), key), undefined);
    // A leftover temporary file with other permissions does not survive.
    writeFileSync(`${b}.tmp`, 'junk', { mode: 0o644 });
    writeKeyFiles([{ path: b, clear: CLEAR }], key);
    assert.equal(statSync(b).mode & 0o777, 0o600);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});
