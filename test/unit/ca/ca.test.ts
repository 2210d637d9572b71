import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { certSubjectFields, createRootCA, issueEtcdCert, issueNodeCert, newJoinToken, tlsInfo } from '../../../src/manager/ca/ca';

test('root CA is swarm-ca, and TLSInfo encodes its subject as Docker does', async () => {
  const ca = await createRootCA();
  const cert = new X509Certificate(ca.certPem);
  assert.equal(cert.subject, 'CN=swarm-ca');
  assert.equal(cert.ca, true);
  const info = await tlsInfo(ca);
  // The same bytes a real Docker swarm shows (docker-api-samples/swarm-inspect.json).
  assert.equal(info.CertIssuerSubject, 'MBMxETAPBgNVBAMTCHN3YXJtLWNh');
  assert.equal(info.TrustRoot, ca.certPem);
});

test('node certificates carry node ID, role and cluster ID, signed by the root', async () => {
  const ca = await createRootCA();
  const node = await issueNodeCert(ca, 'abcdefghijklmnopqrstuvwxy', 'manager', 'clusterid0000000000000000', 3600e9 * 24);
  assert.deepEqual(certSubjectFields(node.certPem), { cn: 'abcdefghijklmnopqrstuvwxy', ou: 'swarm-manager', o: 'clusterid0000000000000000' });
  const cert = new X509Certificate(node.certPem);
  assert.ok(cert.verify(new X509Certificate(ca.certPem).publicKey));
  assert.equal(cert.checkIssued(new X509Certificate(ca.certPem)), true);
});

test('join tokens: SWMTKN-1-<CA digest, 50 base-36>-<secret, 25 base-36>, fresh secret each time', async () => {
  const ca = await createRootCA();
  const a = newJoinToken(ca);
  const b = newJoinToken(ca);
  assert.match(a, /^SWMTKN-1-[0-9a-z]{50}-[0-9a-z]{25}$/);
  assert.equal(a.split('-')[2], b.split('-')[2], 'same CA, same digest');
  assert.notEqual(a.split('-')[3], b.split('-')[3]);
});

test('an etcd member certificate can name its advertise address for its peers', async () => {
  const ca = await createRootCA();
  const c = await issueEtcdCert(ca, 'abcdefghijklmnopqrstuvwxy', 'clusterid0000000000000000', Date.now(), ['10.199.4.11']);
  const san = new X509Certificate(c.certPem).subjectAltName ?? '';
  assert.match(san, /IP Address:127\.0\.0\.1/);
  assert.match(san, /IP Address:10\.199\.4\.11/);
  assert.match(san, /DNS:localhost/);
});
