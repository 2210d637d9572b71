import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  finishedRotation, rederiveJoinToken, rotationDecision, rotationRequest, startedRotation, storedSpec, wantedTrust,
} from '../../../src/manager/ca/rotation';
import { nodeNeedsRenewal, parseJoinToken, rootCADigest } from '../../../src/protocol/ca';
import type { Node } from '../../../src/model/types';
import type { ClusterObject } from '../../../src/store/objects';

const OLD = '-----BEGIN CERTIFICATE-----\nOLD\n-----END CERTIFICATE-----\n';
const NEW = '-----BEGIN CERTIFICATE-----\nNEW\n-----END CERTIFICATE-----\n';
const OLD_ISSUER = { CertIssuerSubject: 'subj', CertIssuerPublicKey: 'oldkey' };
const NEW_ISSUER = { CertIssuerSubject: 'subj', CertIssuerPublicKey: 'newkey' };
const TOKEN = `SWMTKN-1-${'1'.repeat(50)}-${'a'.repeat(25)}`;

function cluster(): ClusterObject {
  return {
    ID: 'c', Version: { Index: 3 }, CreatedAt: 't', UpdatedAt: 't', Spec: { CAConfig: { ForceRotate: 0 } },
    TLSInfo: { TrustRoot: OLD, ...OLD_ISSUER }, RootRotationInProgress: false, DefaultAddrPool: [], SubnetSize: 24, DataPathPort: 4789,
    JoinTokens: { Worker: TOKEN, Manager: TOKEN.replace(/a+$/, 'b'.repeat(25)) }, SealedCAKey: 'sealed-old',
  };
}
const node = (id: string, tls: Node['Description']['TLSInfo']): Node => ({
  ID: id, Version: { Index: 1 }, CreatedAt: 't', UpdatedAt: 't', Spec: { Role: 'worker', Availability: 'active' },
  Description: { Hostname: id, Platform: { Architecture: '', OS: '' }, Resources: {}, Engine: { EngineVersion: '', Plugins: [] }, TLSInfo: tls },
  Status: { State: 'ready', Addr: '' },
});
const rotating = (): ClusterObject => startedRotation(cluster(), { certPem: NEW, crossSignedPem: 'CROSS', sealedKey: 'sealed-new', issuer: NEW_ISSUER }, 'now');

test('what a swarm update asks: nothing, a generated root, a given root; a key without a cert is refused', () => {
  const c = cluster();
  assert.deepEqual(rotationRequest({ CAConfig: { ForceRotate: 0 } }, c), { kind: 'none' });
  assert.deepEqual(rotationRequest({ CAConfig: { ForceRotate: 1 } }, c), { kind: 'generate' });
  assert.deepEqual(rotationRequest({ CAConfig: { SigningCACert: NEW, SigningCAKey: 'K' } }, c), { kind: 'given', certPem: NEW, keyPem: 'K\n' });
  // The root in use already: nothing to do.
  assert.deepEqual(rotationRequest({ CAConfig: { SigningCACert: OLD, SigningCAKey: 'K' } }, c), { kind: 'none' });
  assert.throws(() => rotationRequest({ CAConfig: { SigningCAKey: 'K' } }, c), /signing CA cert must also be provided/);
  assert.throws(() => rotationRequest({ CAConfig: { SigningCACert: NEW } }, c), /without its key/);
  assert.deepEqual(storedSpec({ CAConfig: { SigningCACert: NEW, SigningCAKey: 'K', ForceRotate: 2 } }), { CAConfig: { ForceRotate: 2 } });
});

test('a started rotation keeps the trust root, names the new issuer, and waits for every node (down ones too)', () => {
  const c = rotating();
  assert.equal(c.RootRotationInProgress, true);
  assert.equal(c.TLSInfo.TrustRoot, OLD);
  assert.equal(c.TLSInfo.CertIssuerPublicKey, 'newkey');
  assert.equal(c.SealedCAKey, 'sealed-old');
  assert.deepEqual(rotationDecision(cluster(), [node('a', {})]), { kind: 'idle' });
  const renewed = node('a', { TrustRoot: OLD, ...NEW_ISSUER });
  const old = node('b', { TrustRoot: OLD, ...OLD_ISSUER });
  const down = { ...node('c', {}), Status: { State: 'down' as const, Addr: '' } };
  assert.deepEqual(rotationDecision(c, [renewed, old, down]), { kind: 'waiting', pending: ['b', 'c'] });
  assert.deepEqual(rotationDecision(c, [renewed]), { kind: 'finish' });
});

test('finishing: the new root alone, its key the CA key, join tokens with its digest and the same secrets', () => {
  const c = finishedRotation(rotating(), 'later')!;
  assert.equal(c.RootRotation, undefined);
  assert.equal(c.RootRotationInProgress, false);
  assert.equal(c.SealedCAKey, 'sealed-new');
  assert.deepEqual(c.TLSInfo, { TrustRoot: NEW, ...NEW_ISSUER });
  for (const k of ['Worker', 'Manager'] as const) {
    const before = parseJoinToken(cluster().JoinTokens[k]);
    const after = parseJoinToken(c.JoinTokens[k]);
    assert.equal(after.secret, before.secret);
    assert.equal(after.rootDigest, rootCADigest(NEW));
  }
  assert.equal(finishedRotation(cluster(), 'x'), undefined);
  assert.match(rederiveJoinToken(`SWMTKN-2-1-${'1'.repeat(50)}-${'a'.repeat(25)}`, NEW), /^SWMTKN-2-1-/);
});

test('a node renews when it trusts other roots, or its certificate is not from the wanted CA', () => {
  const want = wantedTrust(rotating());
  assert.equal(want.bundle, OLD + NEW);
  assert.equal(want.issuerPublicKey, 'newkey');
  assert.equal(nodeNeedsRenewal({ bundle: OLD, issuedByWanted: false }, want), true);
  assert.equal(nodeNeedsRenewal({ bundle: OLD + NEW, issuedByWanted: false }, want), true);
  assert.equal(nodeNeedsRenewal({ bundle: OLD + NEW, issuedByWanted: true }, want), false);
  const after = wantedTrust(finishedRotation(rotating(), 'x')!);
  assert.equal(after.bundle, NEW);
  assert.equal(nodeNeedsRenewal({ bundle: OLD + NEW, issuedByWanted: true }, after), true);
  assert.equal(nodeNeedsRenewal({ bundle: NEW, issuedByWanted: true }, after), false);
  assert.equal(nodeNeedsRenewal({ bundle: OLD, issuedByWanted: true }, { bundle: '', issuerPublicKey: '' }), false);
});
