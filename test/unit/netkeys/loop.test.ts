import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../../src/common/log';
import { MemoryBackend } from '../../../src/store/memory-backend';
import { Store } from '../../../src/store/store';
import { SecretBox } from '../../../src/manager/controlapi/secret-box';
import { startNetworkKeys } from '../../../src/manager/netkeys/loop';
import { NetworkKeyReader } from '../../../src/manager/netkeys/reader';
import { publicSwarm } from '../../../src/manager/controlapi/cluster';
import { untilStore as until } from '../../helpers/store-wait';
import { makeNetwork } from '../allocator/fixtures';

test('network keys loop: no key until an encrypted network exists, then one, sealed; rotation steps on the leader\'s clock; hidden from swarm inspect', async () => {
  const store = await Store.open(new MemoryBackend(), silentLogger);
  await store.txn().create('cluster', {
    ID: 'cluster1', Version: { Index: 0 }, CreatedAt: 't', UpdatedAt: 't', Spec: {}, TLSInfo: {}, RootRotationInProgress: false,
    DefaultAddrPool: [], SubnetSize: 24, DataPathPort: 4789, JoinTokens: { Worker: 'w', Manager: 'm' },
  }).create('networks', makeNetwork('plain')).commit();
  const box = new SecretBox(SecretBox.generateKey());
  let clock = 1_000_000;
  const keys = startNetworkKeys({ store, log: silentLogger, sealer: box, now: () => clock, timing: { periodMs: 60_000, stepMs: 20 } });
  const cluster = () => store.list('cluster')[0]!;
  try {
    await keys.settled();
    assert.equal(cluster().NetworkKeys, undefined, 'no encrypted network, no key');

    const enc = makeNetwork('secret');
    enc.Spec.DriverConfiguration = { Name: 'overlay', Options: { encrypted: '' } };
    await store.txn().create('networks', enc).commit();
    await until(store, () => !!cluster().NetworkKeys, 'the first key');
    const first = cluster().NetworkKeys!;
    assert.deepEqual({ tags: first.Keys.map((k) => k.Tag), primary: first.PrimaryTag, at: first.ChangedAt }, { tags: [1], primary: 1, at: 1_000_000 });
    assert.doesNotMatch(JSON.stringify(first), new RegExp(new NetworkKeyReader(box).keys(cluster())![0]!.Key.replace(/[+/=]/g, '.')), 'sealed at rest');
    assert.equal('NetworkKeys' in publicSwarm(cluster()), false);

    // A period later (the loop's own wake-up is hours away: a store event makes it look).
    clock += 60_000;
    await store.txn().create('networks', makeNetwork('another')).commit();
    await until(store, () => cluster().NetworkKeys!.Keys.length === 2, 'the next key added');
    assert.equal(cluster().NetworkKeys!.PrimaryTag, 1, 'received with first, sent with the old one');
    clock += 20;
    await until(store, () => cluster().NetworkKeys!.PrimaryTag === 2, 'the new key promoted after a step');
    clock += 20;
    await until(store, () => cluster().NetworkKeys!.Keys.length === 1, 'the old key retired');
    assert.deepEqual(new NetworkKeyReader(box).keys(cluster())!.map((k) => [k.Tag, k.Primary]), [[2, true]]);
  } finally {
    keys.stop();
    await store.close();
  }
});
