import { test } from 'node:test';
import assert from 'node:assert/strict';
import { controlFixture } from '../../helpers/control-fixture';
import { createRootCA, issuerInfo } from '../../../src/manager/ca/ca';
import { EXTERNAL_CA_ROTATION_NOT_BUILT } from '../../../src/manager/controlapi/validate-swarm';

const NOW = Date.parse('2026-11-23T00:00:00Z');

test('docker swarm ca --rotate starts a root rotation: TrustRoot kept, a new issuer, no key in the spec', async () => {
  const ca = await createRootCA(NOW);
  const { call } = await controlFixture({ ca });
  const before = await call('GET', '/v1.41/swarm');
  const res = await call('POST', `/v1.41/swarm/update?version=${before.json.Version.Index}`, { ...before.json.Spec, CAConfig: { ...before.json.Spec.CAConfig, ForceRotate: 1 } });
  assert.equal(res.status, 200);
  const after = (await call('GET', '/v1.41/swarm')).json;
  assert.equal(after.RootRotationInProgress, true);
  assert.equal(after.TLSInfo.TrustRoot, before.json.TLSInfo.TrustRoot);
  assert.notEqual(after.TLSInfo.CertIssuerPublicKey, (await issuerInfo(ca.certPem)).CertIssuerPublicKey);
  assert.equal(after.Spec.CAConfig.ForceRotate, 1);
  assert.equal(after.RootRotation, undefined);
});

test('a given root CA: its issuer is the one nodes move to; the key never shows in the spec', async () => {
  const ca = await createRootCA(NOW);
  const given = await createRootCA(NOW);
  const { call } = await controlFixture({ ca });
  const before = await call('GET', '/v1.41/swarm');
  const res = await call('POST', `/v1.41/swarm/update?version=${before.json.Version.Index}`, { ...before.json.Spec, CAConfig: { ...before.json.Spec.CAConfig, SigningCACert: given.certPem, SigningCAKey: given.keyPem } });
  assert.equal(res.status, 200, JSON.stringify(res.json));
  const after = (await call('GET', '/v1.41/swarm')).json;
  assert.equal(after.TLSInfo.CertIssuerPublicKey, (await issuerInfo(given.certPem)).CertIssuerPublicKey);
  assert.equal(after.Spec.CAConfig.SigningCAKey, undefined);
  assert.equal(after.Spec.CAConfig.SigningCACert, undefined);
});

test('bad root CAs are refused with InvalidArgument, nothing changed', async () => {
  const ca = await createRootCA(NOW);
  const other = await createRootCA(NOW);
  const { call } = await controlFixture({ ca });
  const before = await call('GET', '/v1.41/swarm');
  const url = `/v1.41/swarm/update?version=${before.json.Version.Index}`;
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ SigningCACert: ca.certPem.replace(/^-----BEGIN CERTIFICATE-----/, ''), SigningCAKey: ca.keyPem }, /not a PEM certificate/],
    [{ SigningCACert: other.certPem, SigningCAKey: ca.keyPem }, /desc = certificate key mismatch$/],
    [{ SigningCACert: other.certPem }, /without its key/],
    [{ SigningCAKey: other.keyPem }, /the signing CA cert must also be provided/],
    [{ ForceRotate: 1, ExternalCAs: [{ Protocol: 'cfssl', URL: 'https://127.0.0.1:9' }] }, new RegExp(EXTERNAL_CA_ROTATION_NOT_BUILT.replace(/[()]/g, '.'))],
  ];
  for (const [extra, message] of cases) {
    const res = await call('POST', url, { ...before.json.Spec, CAConfig: { ...before.json.Spec.CAConfig, ...extra } });
    assert.equal(res.status, 400, JSON.stringify(extra));
    assert.match(res.json.message, /^rpc error: code = InvalidArgument desc = /);
    assert.match(res.json.message, message);
  }
  assert.deepEqual((await call('GET', '/v1.41/swarm')).json, before.json);
  assert.equal((await call('POST', url, { ...before.json.Spec, Labels: { x: 'y' } })).status, 200);
});
