import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { MAX_UNPACKED_BYTES, PACK_MIN_BYTES, packingDictionary, packValue, unpackValue } from '../../../src/store/value-packing';

const task = JSON.stringify({
  ID: '3c9yqz0n1k5x8w2v7u4t6s0r1', CreatedAt: '2026-12-05T22:47:38.313000000Z', UpdatedAt: '2026-12-05T22:47:41.002000000Z', Labels: {},
  ServiceID: '0f8e7d6c5b4a39281706f5e4d', Slot: 101955, NodeID: '2lcry08xcvfyfwvak0wslcuml',
  Status: { Timestamp: '2026-12-05T22:47:41.002000000Z', State: 'running', Message: 'started', ContainerStatus: { ContainerID: '7a349422ece4adc7f67b70e874217fa5a983f0018506cc15eb24c3ccc8fae3ef', PID: 4242, ExitCode: 0 } },
  DesiredState: 'running', SpecRef: 'ee7dc163d9c6adcaccf305fc8fb92cbe0a206063',
});

const roundTrip = (v: string): string => {
  const r = unpackValue(packValue(v));
  assert.ok(r.ok, `unpacks: ${r.ok ? '' : r.problem}`);
  return r.value;
};

test('a task is stored in well under half its JSON and reads back the same', () => {
  const stored = packValue(task);
  assert.equal(stored[0], 0x00);
  assert.equal(stored[1], 0x01);
  assert.ok(stored.length < task.length * 0.45, `${task.length} bytes stored in ${stored.length}`);
  assert.equal(roundTrip(task), task);
});

test('short values, and values deflate would not shrink, are stored as their text', () => {
  for (const v of ['', 'x', '10.0.0.1', 'n'.repeat(PACK_MIN_BYTES - 1)]) {
    assert.deepEqual(packValue(v), Buffer.from(v));
    assert.equal(roundTrip(v), v);
  }
  // 120 characters without repeats do not deflate below their own size: kept as text.
  let x = 12345;
  const random = Array.from({ length: 120 }, () => { x = (x * 1103515245 + 12345) % 2147483648; return String.fromCharCode(33 + ((x >> 8) % 94)); }).join('');
  assert.deepEqual(packValue(random), Buffer.from(random));
  const noise = Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 7919 + 13) % 251)).toString('base64');
  assert.equal(roundTrip(noise), noise);
});

test('what packValue returns is the caller\'s: values kept as text, short or not shrinking, are unchanged by the calls after them', () => {
  let x = 777;
  const random = Array.from({ length: 150 }, () => { x = (x * 1103515245 + 12345) % 2147483648; return String.fromCharCode(33 + ((x >> 8) % 94)); }).join('');
  const kept = ['short', random, `${'é'.repeat(2000)}!`].map((v) => ({ v, stored: packValue(v) }));
  assert.deepEqual(kept[0]!.stored, Buffer.from('short'));
  assert.deepEqual(kept[1]!.stored, Buffer.from(random), 'not shrunk by deflate: kept as text');
  for (let i = 0; i < 50; i++) packValue(`${task}${i}`.replace(/"/g, i % 2 ? '"' : "'"));
  for (const { v, stored } of kept) assert.equal(unpackValue(stored).ok && (unpackValue(stored) as { value: string }).value, v);
  assert.deepEqual(kept[1]!.stored, Buffer.from(random));
});

test('any text survives, multi-byte characters and a leading NUL included', () => {
  for (const v of ['{"Name":"café ☕ 日本"}'.repeat(10), '\u0000not json', '\u0000\u0001x', '\u0000', `{"a":"${'é'.repeat(500)}"}`]) {
    assert.equal(roundTrip(v), v);
  }
  // A leading NUL is always packed, so a stored 0x00 0x01 is never plain text.
  assert.equal(packValue('\u0000\u0001x')[0], 0x00);
  assert.notDeepEqual(packValue('\u0000\u0001x'), Buffer.from('\u0000\u0001x'));
});

test('values packed with zlib\'s default window (as before the small one) read back the same; values of any size round-trip', () => {
  // Around the small state's bound, and repeats further back than its window.
  const spec = (n: number): string => JSON.stringify({ Env: Array.from({ length: n }, (_, i) => `VAR_${i}=${'v'.repeat(i % 40)}`) });
  const dictionary = packingDictionary();
  // A short stored value that refers 5 KB back: why inflating keeps the full
  // window (inflated in small pieces, as unpackValue does, a 4 KiB one refuses it).
  let x = 7;
  const unique = Array.from({ length: 900 }, () => { x = (x * 1103515245 + 12345) % 2147483648; return String.fromCharCode(97 + ((x >> 8) % 26)); }).join('');
  const farBack = `{"a":"${unique}","b":"${'y'.repeat(5000)}","c":"${unique}"}`;
  for (const v of [task, spec(5000), farBack]) {
    const deflated = deflateRawSync(Buffer.from(v), { dictionary });
    const old = Buffer.concat([Buffer.from([0x00, 0x01]), deflated]);
    assert.deepEqual(unpackValue(old), { ok: true, value: v });
    if (v === farBack) {
      assert.ok(old.length < 1200, `${old.length} bytes stored`);
      assert.throws(() => inflateRawSync(deflated, { dictionary, windowBits: 12, chunkSize: 1024 }), /invalid distance too far back/);
    }
  }
  for (const v of [spec(120), spec(160), spec(5000), task.repeat(10)]) {
    const stored = packValue(v);
    assert.equal(stored[0], 0x00, `${v.length} bytes packed`);
    assert.equal(roundTrip(v), v);
  }
});

test('values written before packing (plain JSON) read as they are', () => {
  assert.deepEqual(unpackValue(Buffer.from(task)), { ok: true, value: task });
});

test('a packed value that does not inflate, or of an unknown dictionary, is a problem, not a throw', () => {
  const stored = packValue(task);
  const truncated = stored.subarray(0, stored.length - 20);
  const r1 = unpackValue(truncated);
  assert.equal(r1.ok, false);
  assert.match(r1.ok ? '' : r1.problem, /packed value that does not inflate/);
  const r2 = unpackValue(Buffer.from([0x00, 0x01, 0xff, 0xff, 0xff]));
  assert.equal(r2.ok, false);
  const newer = Buffer.from(stored); newer[1] = 0x07;
  const r3 = unpackValue(newer);
  assert.equal(r3.ok, false);
  assert.match(r3.ok ? '' : r3.problem, /unknown dictionary \(version 7\)/);
});

test('a value inflating past the bound is refused', () => {
  const bomb = Buffer.concat([Buffer.from([0x00, 0x01]), deflateRawSync(Buffer.alloc(MAX_UNPACKED_BYTES + 1, 0x20))]);
  assert.ok(bomb.length < 200_000);
  const r = unpackValue(bomb);
  assert.equal(r.ok, false);
  assert.match(r.ok ? '' : r.problem, new RegExp(`larger than ${MAX_UNPACKED_BYTES} bytes`));
});
