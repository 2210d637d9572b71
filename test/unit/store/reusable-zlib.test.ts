import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createDeflateRaw, createInflateRaw, deflateRawSync } from 'node:zlib';
import { ReusableZlib } from '../../../src/store/reusable-zlib';
import { packingDictionary, packValue, unpackValue } from '../../../src/store/value-packing';

const dictionary = packingDictionary();
const small = { dictionary, windowBits: 12, memLevel: 4 } as const;
const copy = (out: Buffer, n: number): Buffer => Buffer.from(out.subarray(0, n));

// Values unlike each other, so a stream that kept anything of the last one
// (its window, its dictionary spent) would deflate the next one differently.
const values = Array.from({ length: 200 }, (_, i) => JSON.stringify({
  ID: `task${i}`.padEnd(25, String.fromCharCode(97 + (i % 26))), Slot: i, Labels: i % 3 ? {} : { tier: 'web'.repeat(i % 7) },
  Status: { State: ['assigned', 'running', 'shutdown'][i % 3], Message: 'x'.repeat(i % 50) }, DesiredState: 'running',
}));

test('a reused deflate stream gives the bytes of a fresh one for every value, one after another', () => {
  const z = new ReusableZlib(() => createDeflateRaw({ ...small, chunkSize: 64 }), 8192);
  for (const v of values) {
    const plain = Buffer.from(v);
    assert.deepEqual(z.run(plain, copy), deflateRawSync(plain, small), v);
  }
});

test('a reused inflate stream reads each value whole; a corrupt one throws alone and the next reads again', () => {
  const z = new ReusableZlib(() => createInflateRaw({ dictionary, chunkSize: 64 }), 4096);
  const packed = values.map((v) => deflateRawSync(Buffer.from(v), small));
  for (let i = 0; i < packed.length; i++) {
    if (i % 50 === 25) {
      assert.throws(() => z.run(packed[i]!.subarray(0, packed[i]!.length - 5), copy), /unexpected end of file/);
      assert.throws(() => z.run(Buffer.from([0xff, 0xff, 0xff]), copy), /invalid/);
    }
    assert.equal(z.run(packed[i]!, (out, n) => out.toString('utf8', 0, n)), values[i]);
  }
});

test('output that does not fit the buffer, or input left over, is left to the one-shot call (undefined), and the stream goes on', () => {
  const z = new ReusableZlib(() => createInflateRaw({ dictionary, chunkSize: 64 }), 1024);
  const big = 'y'.repeat(5000);
  assert.equal(z.run(deflateRawSync(Buffer.from(big), { dictionary }), copy), undefined);
  const one = deflateRawSync(Buffer.from(values[0]!), small);
  assert.equal(z.run(Buffer.concat([one, Buffer.from('trailing')]), copy), undefined);
  assert.equal(z.run(one, (out, n) => out.toString('utf8', 0, n)), values[0]);
});

test('a stream without the internals it drives (another Node) is never used: undefined, every time', () => {
  let made = 0;
  const z = new ReusableZlib(() => {
    made++;
    const s = createDeflateRaw(small);
    (s as unknown as { _writeState?: Uint32Array })._writeState = undefined;
    return s;
  }, 8192);
  assert.equal(z.run(Buffer.from(values[0]!), copy), undefined);
  assert.equal(z.run(Buffer.from(values[1]!), copy), undefined);
  assert.equal(made, 1, 'looked once');
});

test('packValue stores the bytes it stored before the streams were kept; unpackValue reads past a corrupt value', () => {
  for (const v of values.filter((t) => t.length >= 96)) {
    const plain = Buffer.from(v);
    const deflated = deflateRawSync(plain, small);
    const before = deflated.length + 2 < plain.length ? Buffer.concat([Buffer.from([0x00, 0x01]), deflated]) : plain;
    assert.deepEqual(packValue(v), before);
  }
  const stored = packValue(values[199]!);
  assert.equal(unpackValue(stored.subarray(0, stored.length - 3)).ok, false);
  assert.deepEqual(unpackValue(stored), { ok: true, value: values[199] });
});
