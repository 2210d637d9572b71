import { test } from 'node:test';
import assert from 'node:assert/strict';
import { controlFixture } from '../../helpers/control-fixture';

test('swarm update --autolock=true is refused and changes nothing', async () => {
  const { call } = await controlFixture();
  const before = await call('GET', '/v1.41/swarm');
  const spec = { ...before.json.Spec, EncryptionConfig: { AutoLockManagers: true }, Labels: { changed: 'yes' } };
  const res = await call('POST', `/v1.41/swarm/update?version=${before.json.Version.Index}`, spec);
  assert.equal(res.status, 400);
  assert.match(res.json.message, /autolock is not supported yet/);
  const after = await call('GET', '/v1.41/swarm');
  assert.deepEqual(after.json, before.json);
  // Turning it off (what every other update sends) is fine.
  const ok = await call('POST', `/v1.41/swarm/update?version=${before.json.Version.Index}`, { ...before.json.Spec, EncryptionConfig: { AutoLockManagers: false } });
  assert.equal(ok.status, 200);
});

test('there is never an unlock key to show, and nothing to unlock', async () => {
  const { call } = await controlFixture();
  const key = await call('GET', '/v1.41/swarm/unlockkey');
  assert.equal(key.status, 400);
  assert.match(key.json.message, /no unlock key is set/);
  assert.equal(key.json.UnlockKey, undefined);
  const unlock = await call('POST', '/v1.41/swarm/unlock', { UnlockKey: 'SWMKEY-1-x' });
  assert.equal(unlock.status, 400);
  assert.match(unlock.json.message, /not locked/);
});
