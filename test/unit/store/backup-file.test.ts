import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { decodeBackup, encodeBackup, type BackupContents } from '../../../src/store/backup-file';
import { seedBatches } from '../../../src/store/seed';
import { LEADER_KEY, presenceKey } from '../../../src/store/keys';
import { MAX_TXN_OPS } from '../../../src/store/backend';
import { isShoalError } from '../../../src/common/errors';

const contents = (): BackupContents => ({
  clusterId: 'c1', createdAt: '2026-12-02T03:00:00.000Z', revision: 42,
  caCertPem: '-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n',
  dataKey: Buffer.alloc(32, 7).toString('base64'),
  kvs: [['/shoal/v1/o/cluster/c1', '{"ID":"c1"}'], ['/shoal/v1/o/secrets/s1', '{"ID":"s1","Spec":{}}']],
});

// Every refusal is an `invalid` error (HTTP 400) whose text says what is wrong.
const refused = (file: Buffer, what: RegExp): void => {
  assert.throws(() => decodeBackup(file), (e: unknown) => isShoalError(e) && e.kind === 'invalid' && what.test(e.message));
};

test('a backup reads back as written', () => {
  const file = encodeBackup(contents());
  assert.match(file.subarray(0, 16).toString(), /^SHOAL-BACKUP 1 /);
  assert.deepEqual(decodeBackup(file), contents());
});

test('a truncated file is refused, at any length', () => {
  const file = encodeBackup(contents());
  for (const n of [0, 5, 20, file.indexOf(0x0a), file.indexOf(0x0a) + 1, file.length - 1]) {
    refused(file.subarray(0, n), /not a Shoal backup|truncated/);
  }
  refused(file.subarray(0, file.length - 1), /truncated: \d+ of \d+ payload bytes/);
});

test('a corrupt file is refused by its checksum', () => {
  const file = Buffer.from(encodeBackup(contents()));
  file[file.length - 5]! ^= 0xff;
  refused(file, /corrupt: the checksum does not match/);
  refused(Buffer.concat([encodeBackup(contents()), Buffer.from('x')]), /1 bytes after the end/);
});

test('another format version, or another kind of file, is refused', () => {
  const file = encodeBackup(contents());
  refused(Buffer.concat([Buffer.from('SHOAL-BACKUP 2'), file.subarray('SHOAL-BACKUP 1'.length)]), /format version 2 is not supported \(this Shoal reads version 1\)/);
  refused(Buffer.from('{"hello":1}\n'), /not a Shoal backup/);
});

test('a payload with a valid checksum but a wrong shape is refused', () => {
  const make = (v: unknown): Buffer => {
    const payload = gzipSync(Buffer.from(JSON.stringify(v)));
    return Buffer.concat([Buffer.from(`SHOAL-BACKUP 1 ${payload.length} ${createHash('sha256').update(payload).digest('hex')}\n`), payload]);
  };
  refused(make([1]), /not an object/);
  refused(make({ ...contents(), dataKey: 'AAAA' }), /data key is not 32 bytes/);
  refused(make({ ...contents(), kvs: [['k']] }), /malformed/);
  refused(make({ ...contents(), revision: 0 }), /no revision/);
  const raw = Buffer.from('not gzip');
  refused(Buffer.concat([Buffer.from(`SHOAL-BACKUP 1 ${raw.length} ${createHash('sha256').update(raw).digest('hex')}\n`), raw]), /corrupt payload/);
});

test('seed batches stay within a transaction, skip lease keys and refuse keys outside the store', () => {
  const kvs: Array<[string, string]> = [[LEADER_KEY, 'n1'], [presenceKey('n1'), '1']];
  for (let i = 0; i < 300; i++) kvs.push([`/shoal/v1/o/tasks/t${i}`, '{}']);
  const batches = seedBatches(kvs);
  assert.deepEqual(batches.map((b) => b.length), [MAX_TXN_OPS, MAX_TXN_OPS, 300 - 2 * MAX_TXN_OPS]);
  assert.ok(batches.flat().every((op) => 'put' in op && op.put.startsWith('/shoal/v1/o/')));
  const big = 'x'.repeat(600 * 1024);
  assert.deepEqual(seedBatches([['/shoal/v1/b/a', big], ['/shoal/v1/b/b', big]]).map((b) => b.length), [1, 1]);
  assert.throws(() => seedBatches([['/other', 'v']]), /outside \/shoal\/v1\//);
});
