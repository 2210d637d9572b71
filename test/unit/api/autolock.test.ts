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

test('the unlock key is empty (as Docker answers with autolock off), and nothing is locked', async () => {
  const { call } = await controlFixture();
  const key = await call('GET', '/v1.41/swarm/unlockkey');
  assert.equal(key.status, 200);
  assert.deepEqual(key.json, { UnlockKey: '' });
  const unlock = await call('POST', '/v1.41/swarm/unlock', { UnlockKey: 'SWMKEY-1-x' });
  assert.equal(unlock.status, 409);
  assert.equal(unlock.json.message, 'swarm is not locked');
  // Rotating a key that does not exist changes nothing (SwarmKit rotates only under autolock).
  const before = await call('GET', '/v1.41/swarm');
  const rotate = await call('POST', `/v1.41/swarm/update?version=${before.json.Version.Index}&rotateManagerUnlockKey=true`, before.json.Spec);
  assert.equal(rotate.status, 200);
  assert.deepEqual((await call('GET', '/v1.41/swarm/unlockkey')).json, { UnlockKey: '' });
});

test('swarm init --autolock is refused before anything is made', async () => {
  const { validateInitRequest } = await import('../../../src/manager/controlapi/validate-swarm');
  assert.throws(() => validateInitRequest({ AutoLockManagers: true } as never), /autolock is not supported yet/);
  assert.throws(() => validateInitRequest({ Spec: { EncryptionConfig: { AutoLockManagers: true } } } as never), /autolock is not supported yet/);
  assert.doesNotThrow(() => validateInitRequest({ Spec: { EncryptionConfig: { AutoLockManagers: false } } } as never));
});
