import { test } from 'node:test';
import assert from 'node:assert/strict';
import { controlFixture } from '../../helpers/control-fixture';
import { CA_ROTATION_NOT_BUILT } from '../../../src/manager/controlapi/validate-swarm';

test('docker swarm ca --rotate (a new ForceRotate, or a signing CA) is refused as not built, nothing changed; other updates pass', async () => {
  const { call } = await controlFixture();
  const before = await call('GET', '/v1.41/swarm');
  const url = `/v1.41/swarm/update?version=${before.json.Version.Index}`;
  for (const CAConfig of [{ ...before.json.Spec.CAConfig, ForceRotate: 1 }, { ...before.json.Spec.CAConfig, SigningCACert: 'x', SigningCAKey: 'y' }]) {
    const res = await call('POST', url, { ...before.json.Spec, CAConfig });
    assert.equal(res.status, 400);
    assert.equal(res.json.message, CA_ROTATION_NOT_BUILT);
    assert.match(res.json.message, /^rpc error: code = InvalidArgument desc = root CA rotation \(docker swarm ca --rotate\) is not built yet/);
  }
  assert.deepEqual((await call('GET', '/v1.41/swarm')).json, before.json);
  assert.equal((await call('POST', url, { ...before.json.Spec, Labels: { x: 'y' } })).status, 200);
});
