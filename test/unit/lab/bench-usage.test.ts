import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { usageOf } from '../../../bench/util';

test('usageOf: the comment a built bench file starts with, after tsc\'s own lines, up to the first code', () => {
  const built = '"use strict";\nObject.defineProperty(exports, "__esModule", { value: true });\n// `node x.js --n N`: what it measures.\n//\n//   --n  how many\nconst a = 1;\n// not this\n';
  assert.equal(usageOf(built), '`node x.js --n N`: what it measures.\n\n  --n  how many');
  assert.equal(usageOf('"use strict";\nconst a = 1;\n// late\n'), '', 'no leading comment: no usage');
});

test('usageOf: the scale bench\'s built file says its command and its options', () => {
  const text = usageOf(readFileSync(join(__dirname, '../../../bench/scale.js'), 'utf8'));
  assert.match(text, /^`node dist\/bench\/scale\.js`/);
  assert.match(text, /--sim-procs/);
});
