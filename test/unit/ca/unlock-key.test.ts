import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatUnlockKey, newUnlockKey, parseUnlockKey, sealUnlockKey, unlockKeyChange, wantedUnlockKey } from '../../../src/manager/ca/unlock-key';
import { SecretBox } from '../../../src/manager/controlapi/secret-box';
import { defaultSwarmSpec } from '../../../src/manager/controlapi/cluster';

test('unlock keys print and parse as Docker\'s (SWMKEY-1-, unpadded base64); a malformed one is "invalid key string"', () => {
  const key = newUnlockKey();
  const text = formatUnlockKey(key);
  assert.match(text, /^SWMKEY-1-[A-Za-z0-9+/]{43}$/);
  assert.deepEqual(parseUnlockKey(text), key);
  for (const bad of ['', 'SWMKEY-2-abc', 'swmkey-1-abc', 'SWMKEY-1-ab!c', 'SWMKEY-1-a']) {
    assert.throws(() => parseUnlockKey(bad), (e) => (e as { kind: string }).kind === 'invalid' && (e as Error).message === 'invalid key string', bad);
  }
});

test('the unlock key managers wrap under: the sealed key while autolock is on, none otherwise', () => {
  const box = new SecretBox(SecretBox.generateKey());
  const key = newUnlockKey();
  const on = { ...defaultSwarmSpec(), EncryptionConfig: { AutoLockManagers: true } };
  const sealed = sealUnlockKey(box, 'c1', key);
  assert.deepEqual(wantedUnlockKey(box, { ID: 'c1', Spec: on, SealedUnlockKey: sealed }), key);
  assert.equal(wantedUnlockKey(box, { ID: 'c1', Spec: defaultSwarmSpec(), SealedUnlockKey: sealed }), undefined);
  assert.equal(wantedUnlockKey(box, { ID: 'c1', Spec: on }), undefined);
  // Bound to the cluster and to the data key.
  assert.throws(() => wantedUnlockKey(box, { ID: 'c2', Spec: on, SealedUnlockKey: sealed }));
  assert.throws(() => wantedUnlockKey(new SecretBox(SecretBox.generateKey()), { ID: 'c1', Spec: on, SealedUnlockKey: sealed }));
});

test('swarm update and the unlock key (SwarmKit\'s rules)', () => {
  assert.equal(unlockKeyChange(false, true, false, false), 'new');   // --autolock=true
  assert.equal(unlockKeyChange(true, true, false, true), 'keep');    // any other update
  assert.equal(unlockKeyChange(true, true, true, true), 'new');      // unlock-key --rotate
  assert.equal(unlockKeyChange(true, false, false, true), 'remove'); // --autolock=false
  assert.equal(unlockKeyChange(false, false, true, false), 'keep');  // rotate with autolock off: nothing
  assert.equal(unlockKeyChange(true, true, false, false), 'new');    // on but no key (damaged): a key again
});
