import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { createRootCA, newJoinToken } from '../../../src/manager/ca/ca';
import {
  caMismatch, checkIssueRequest, checkIssueResponse, checkRenewRequest, checkGetRootCAResponse, INVALID_JOIN_TOKEN, parseJoinToken, rootCADigest, tokenMatchesCA,
} from '../../../src/protocol/ca';

const D = '1'.repeat(50);
const S = 'a'.repeat(25);

test('a token made for a CA parses back to that CA bundle digest and secret', async () => {
  const ca = await createRootCA();
  const token = newJoinToken(ca);
  assert.match(token, /^SWMTKN-1-[0-9a-z]{50}-[0-9a-z]{25}$/);
  const p = parseJoinToken(token);
  assert.equal(p.version, 1);
  assert.equal(p.fips, false);
  assert.equal(p.rootDigest, createHash('sha256').update(ca.certPem).digest('hex'));
  assert.equal(p.rootDigest, rootCADigest(ca.certPem));
  assert.equal(p.secret, token.split('-')[3]);
  assert.ok(tokenMatchesCA(p, ca.certPem));
  const other = await createRootCA();
  assert.ok(!tokenMatchesCA(p, other.certPem));
  // A second root appended to the bundle is not the bundle the token names.
  assert.ok(!tokenMatchesCA(p, ca.certPem + other.certPem));
  assert.equal(caMismatch(p.rootDigest), `remote CA does not match fingerprint. Expected: ${p.rootDigest}`);
});

test('tokens of the earlier release (digest of the DER) still match a one-certificate bundle', async () => {
  const ca = await createRootCA();
  const der = new X509Certificate(ca.certPem).raw;
  const digest36 = BigInt('0x' + createHash('sha256').update(der).digest('hex')).toString(36).padStart(50, '0');
  assert.ok(tokenMatchesCA(parseJoinToken(`SWMTKN-1-${digest36}-${S}`), ca.certPem));
});

test('malformed tokens are refused with Docker\'s text', () => {
  for (const bad of ['', 'SWMTKN', `SWMTKN-1-${D}`, `SWMTKN-3-${D}-${S}`, `SWMTKN-1-${D}-${S}-x`, `XWMTKN-1-${D}-${S}`, `SWMTKN-1-${D}1-${S}`, `SWMTKN-1-${D}-${S}a`,
    `SWMTKN-2-2-${D}-${S}`, `SWMTKN-1-${'A'.repeat(50)}-${S}`, `SWMTKN-1-${'z'.repeat(50)}-${S}`]) {
    assert.throws(() => parseJoinToken(bad), (e: Error) => e.message === INVALID_JOIN_TOKEN, bad);
  }
  assert.equal(parseJoinToken(`SWMTKN-2-1-${D}-${S}`).fips, true);
});

test('message checks are strict', () => {
  const csr = '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n';
  const cert = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n';
  assert.deepEqual(checkIssueRequest({ Token: 't', CSR: csr, Availability: 'drain', Hostname: 'h', Extra: 1 }), { Token: 't', CSR: csr, Availability: 'drain', Hostname: 'h' });
  assert.throws(() => checkIssueRequest({ Token: 't', CSR: cert }), /CSR is not one PEM certificate request/);
  assert.throws(() => checkIssueRequest({ Token: 't', CSR: csr + csr }), /CSR/);
  assert.throws(() => checkIssueRequest({ Token: 1, CSR: csr }), /Token must be a string/);
  assert.throws(() => checkIssueRequest({ Token: 't', CSR: csr, Availability: 'gone' }), /Availability/);
  assert.throws(() => checkIssueRequest({ Token: 't', CSR: csr, Hostname: 'h'.repeat(300) }), /Hostname is longer/);
  assert.throws(() => checkIssueRequest([]), /not an object/);
  assert.throws(() => checkRenewRequest({ CSR: 'junk' }), /CSR/);
  assert.throws(() => checkGetRootCAResponse({ Certificate: 'x' + cert }), /not PEM certificates/);
  const ok = { NodeID: 'a'.repeat(25), Role: 'worker', ClusterID: 'b'.repeat(25), Certificate: cert + cert, CACertificate: cert };
  assert.deepEqual(checkIssueResponse(ok), ok);
  assert.throws(() => checkIssueResponse({ ...ok, Role: 'boss' }), /Role/);
  assert.throws(() => checkIssueResponse({ ...ok, NodeID: '../x' }), /NodeID/);
  // The managers' list is optional (an older manager leaves it out), and checked when there.
  const managers = { LeaderAddr: '10.0.0.1:2377', Addrs: ['10.0.0.2:2377', '10.0.0.1:2377'] };
  assert.deepEqual(checkIssueResponse({ ...ok, Managers: managers }), { ...ok, Managers: managers });
  assert.deepEqual(checkIssueResponse({ ...ok, Managers: { Addrs: [] } }), { ...ok, Managers: { Addrs: [] } });
  assert.throws(() => checkIssueResponse({ ...ok, Managers: { Addrs: 'a:1' } }), /Managers\.Addrs: want an array/);
  assert.throws(() => checkIssueResponse({ ...ok, Managers: { Addrs: [7] } }), /Managers\.Addrs\[0\]: want a string/);
  assert.throws(() => checkIssueResponse({ ...ok, Managers: { LeaderAddr: 1, Addrs: [] } }), /Managers\.LeaderAddr/);
  assert.throws(() => checkIssueResponse({ ...ok, Managers: { Addrs: Array(101).fill('a:1') } }), /more than 100/);
  // So is the heartbeat interval.
  assert.deepEqual(checkIssueResponse({ ...ok, HeartbeatMs: 2500 }), { ...ok, HeartbeatMs: 2500 });
  assert.throws(() => checkIssueResponse({ ...ok, HeartbeatMs: 0 }), /HeartbeatMs: must be a positive whole number/);
  assert.throws(() => checkIssueResponse({ ...ok, HeartbeatMs: 2.5 }), /HeartbeatMs: must be a positive whole number/);
  assert.throws(() => checkIssueResponse({ ...ok, HeartbeatMs: '2500' }), /HeartbeatMs/);
});
