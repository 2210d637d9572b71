import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SecretBox } from '../../../src/manager/controlapi/secret-box';
import { NetworkKeyReader } from '../../../src/manager/netkeys/reader';
import { networkKeyAad } from '../../../src/manager/netkeys/schedule';
import type { ClusterObject } from '../../../src/store/objects';

const box = new SecretBox(SecretBox.generateKey());
const k1 = Buffer.alloc(32, 1);
const k2 = Buffer.alloc(32, 2);
const cluster = (keys: ClusterObject['NetworkKeys']): ClusterObject => ({ ID: 'c1', NetworkKeys: keys } as unknown as ClusterObject);

test('network key reader: opens the sealed set once per stored set, marks the primary', () => {
  const c = cluster({ Keys: [{ Tag: 2, SealedKey: box.seal(k2, networkKeyAad('c1', 2)), CreatedAt: 1 }, { Tag: 1, SealedKey: box.seal(k1, networkKeyAad('c1', 1)), CreatedAt: 0 }], PrimaryTag: 1, ChangedAt: 1 });
  const r = new NetworkKeyReader(box);
  const keys = r.keys(c);
  assert.deepEqual(keys, [{ Tag: 1, Key: k1.toString('base64'), Primary: true }, { Tag: 2, Key: k2.toString('base64'), Primary: false }]);
  assert.equal(r.keys(c), keys, 'the same stored set is not opened again');
  assert.equal(r.keys(undefined), undefined);
  assert.equal(r.keys(cluster(undefined)), undefined);
});

test('network key reader: a key sealed for another tag or cluster does not open; without the primary there is no set', () => {
  const errors: number[] = [];
  const r = new NetworkKeyReader(box, (tag) => errors.push(tag));
  const moved = cluster({ Keys: [{ Tag: 1, SealedKey: box.seal(k1, networkKeyAad('c1', 1)), CreatedAt: 0 }, { Tag: 2, SealedKey: box.seal(k2, networkKeyAad('other', 2)), CreatedAt: 0 }], PrimaryTag: 1, ChangedAt: 0 });
  assert.deepEqual(r.keys(moved)?.map((k) => k.Tag), [1]);
  assert.deepEqual(errors, [2]);
  r.keys(moved);
  assert.deepEqual(errors, [2, 2], 'a set that did not open whole is opened again next time');
  const noPrimary = cluster({ Keys: [{ Tag: 1, SealedKey: box.seal(k1, networkKeyAad('c1', 9)), CreatedAt: 0 }], PrimaryTag: 1, ChangedAt: 0 });
  assert.equal(r.keys(noPrimary), undefined);
});
