import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRootCA } from '../../../src/manager/ca/ca';
import { openCAKey, sealCAKey, withSealedCAKey } from '../../../src/manager/ca/ca-key';
import { SecretBox } from '../../../src/manager/controlapi/secret-box';
import { defaultSwarmSpec, publicSwarm } from '../../../src/manager/controlapi/cluster';
import type { ClusterObject } from '../../../src/store/objects';

const cluster = (extra: Partial<ClusterObject>): ClusterObject => ({
  ID: 'clus0000000000000000000001', Version: { Index: 7 }, CreatedAt: 't', UpdatedAt: 't', Spec: defaultSwarmSpec(), TLSInfo: {},
  RootRotationInProgress: false, DefaultAddrPool: ['10.0.0.0/8'], SubnetSize: 24, DataPathPort: 4789,
  JoinTokens: { Worker: 'w', Manager: 'm' }, ...extra,
});

test('a cluster object of the earlier release (CA key in clear) is migrated to a sealed key', async () => {
  const ca = await createRootCA();
  const box = new SecretBox(SecretBox.generateKey());
  const old = cluster({ CAKey: ca.keyPem });
  assert.equal(openCAKey(box, old), ca.keyPem, 'the clear key still opens before migration');
  const migrated = withSealedCAKey(box, old)!;
  assert.ok(migrated, 'a migration is due');
  assert.equal(migrated.CAKey, undefined);
  assert.doesNotMatch(JSON.stringify(migrated), /PRIVATE KEY/, 'no PEM left in the stored value');
  assert.match(migrated.SealedCAKey!, /^v1:/);
  assert.equal(migrated.Version.Index, 7, 'same version: written as a compare-and-swap on the object read');
  assert.equal(openCAKey(box, migrated), ca.keyPem);
  assert.equal(withSealedCAKey(box, migrated), undefined, 'nothing to do once sealed');
  assert.equal(old.CAKey, ca.keyPem, 'the input is not changed');
});

test('a sealed CA key opens only with the same data key and in the same cluster', async () => {
  const ca = await createRootCA();
  const box = new SecretBox(SecretBox.generateKey());
  const sealed = cluster({ SealedCAKey: sealCAKey(box, 'clus0000000000000000000001', ca.keyPem) });
  assert.equal(openCAKey(box, sealed), ca.keyPem);
  assert.throws(() => openCAKey(new SecretBox(SecretBox.generateKey()), sealed), /does not open with this node's data key/);
  assert.throws(() => openCAKey(box, { ...sealed, ID: 'other000000000000000000001' }), /does not open/);
  assert.throws(() => openCAKey(box, cluster({})), /holds no CA key/);
});

test('the swarm as the API shows it carries neither the sealed nor the clear CA key', async () => {
  const shown = publicSwarm(cluster({ SealedCAKey: 'v1:abc', CAKey: 'pem' })) as unknown as Record<string, unknown>;
  assert.equal(shown.SealedCAKey, undefined);
  assert.equal(shown.CAKey, undefined);
});
