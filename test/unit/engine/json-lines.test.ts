import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { LineSplitter, onJsonLines } from '../../../src/engine/json-lines';

// '€' is three bytes in UTF-8 (e2 82 ac): a socket may cut it anywhere.
test('a 3-byte character split across two chunks comes out whole', () => {
  const bytes = Buffer.from('{"m":"a€b"}\n{"m":"c"}\n', 'utf8');
  const cut = bytes.indexOf(0x82); // after the first byte of '€'
  for (const at of [cut, cut + 1]) {
    const s = new LineSplitter();
    const lines = [...s.push(bytes.subarray(0, at)), ...s.push(bytes.subarray(at)), ...s.end()];
    assert.deepEqual(lines, ['{"m":"a€b"}', '{"m":"c"}'], `cut at byte ${at}`);
  }
});

test('lines cut mid-line are reassembled; blank ones dropped; the last one without newline kept', async () => {
  const stream = new PassThrough();
  const seen: string[] = [];
  onJsonLines(stream, (l) => seen.push(l));
  const text = Buffer.from('{"a":1}\r\n\n{"b":"é"}\n{"c":3}', 'utf8');
  for (let i = 0; i < text.length; i++) stream.write(text.subarray(i, i + 1)); // one byte at a time
  stream.end();
  await new Promise((resolve) => stream.on('end', resolve));
  assert.deepEqual(seen, ['{"a":1}', '{"b":"é"}', '{"c":3}']);
});
