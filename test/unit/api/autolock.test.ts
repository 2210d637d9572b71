import { test } from 'node:test';
import assert from 'node:assert/strict';
import { controlFixture } from '../../helpers/control-fixture';

const update = async (call: Awaited<ReturnType<typeof controlFixture>>['call'], change: (spec: any) => any, query = '') => {
  const before = await call('GET', '/v1.41/swarm');
  return call('POST', `/v1.41/swarm/update?version=${before.json.Version.Index}${query}`, change(before.json.Spec));
};

test('autolock on makes an unlock key, rotation replaces it, off removes it; the key never shows in swarm inspect', async () => {
  const { call } = await controlFixture();
  assert.deepEqual((await call('GET', '/v1.41/swarm/unlockkey')).json, { UnlockKey: '' });
  // Rotating a key that does not exist changes nothing (SwarmKit rotates only under autolock).
  assert.equal((await update(call, (s) => s, '&rotateManagerUnlockKey=true')).status, 200);
  assert.deepEqual((await call('GET', '/v1.41/swarm/unlockkey')).json, { UnlockKey: '' });

  assert.equal((await update(call, (s) => ({ ...s, EncryptionConfig: { AutoLockManagers: true } }))).status, 200);
  const first = (await call('GET', '/v1.41/swarm/unlockkey')).json.UnlockKey;
  assert.match(first, /^SWMKEY-1-[A-Za-z0-9+/]{43}$/);
  const inspect = await call('GET', '/v1.41/swarm');
  assert.equal(inspect.json.Spec.EncryptionConfig.AutoLockManagers, true);
  assert.ok(!inspect.text.includes('Sealed') && !inspect.text.includes(first.slice(9)));
  // Another update keeps the key.
  assert.equal((await update(call, (s) => ({ ...s, Labels: { a: 'b' } }))).status, 200);
  assert.equal((await call('GET', '/v1.41/swarm/unlockkey')).json.UnlockKey, first);
  assert.equal((await update(call, (s) => s, '&rotateManagerUnlockKey=true')).status, 200);
  const second = (await call('GET', '/v1.41/swarm/unlockkey')).json.UnlockKey;
  assert.match(second, /^SWMKEY-1-/);
  assert.notEqual(second, first);
  assert.equal((await update(call, (s) => ({ ...s, EncryptionConfig: { AutoLockManagers: false } }))).status, 200);
  assert.deepEqual((await call('GET', '/v1.41/swarm/unlockkey')).json, { UnlockKey: '' });
  // A bad rotate flag is moby's 400, nothing changed.
  const bad = await update(call, (s) => ({ ...s, EncryptionConfig: { AutoLockManagers: true } }), '&rotateManagerUnlockKey=maybe');
  assert.equal(bad.status, 400);
  assert.deepEqual((await call('GET', '/v1.41/swarm/unlockkey')).json, { UnlockKey: '' });
});

test('unlock on a manager that is not locked is Docker\'s 409; a body that is not JSON is 400', async () => {
  const { call } = await controlFixture();
  const unlock = await call('POST', '/v1.41/swarm/unlock', { UnlockKey: 'SWMKEY-1-x' });
  assert.equal(unlock.status, 409);
  assert.equal(unlock.json.message, 'swarm is not locked');
  assert.equal((await call('POST', '/v1.41/swarm/unlock', 'nope')).status, 400);
});

test('swarm init --autolock passes the request checks', async () => {
  const { validateInitRequest } = await import('../../../src/manager/controlapi/validate-swarm');
  assert.doesNotThrow(() => validateInitRequest({ AutoLockManagers: true } as never));
  assert.doesNotThrow(() => validateInitRequest({ Spec: { EncryptionConfig: { AutoLockManagers: true } } } as never));
});
