import { test } from 'node:test';
import assert from 'node:assert/strict';
import { goFloat, goQuote } from '../../../src/common/go/go-format';
import { parseFilters } from '../../../src/common/filters';
import { boolValue, parseGoBool, parseGoInt, parseGoUint, parseObjectVersion, strictBool, wrappedParseBoolError } from '../../../src/common/go/query';

const q = (s: string) => new URLSearchParams(s);

test('boolValue is httputils.BoolValue: only "", 0, no, false, none (any case, trimmed) are false', () => {
  for (const v of ['', '0', 'no', 'NO', 'false', 'False', ' none ', 'None']) assert.equal(boolValue(q(`force=${encodeURIComponent(v)}`), 'force'), false, v);
  for (const v of ['1', 'true', 'True', 'yes', 'on', 'x', '2']) assert.equal(boolValue(q(`force=${v}`), 'force'), true, v);
  assert.equal(boolValue(q(''), 'force'), false, 'absent');
  assert.equal(boolValue(q('force'), 'force'), false, 'present but empty');
});

test('parseGoBool is strconv.ParseBool', () => {
  for (const v of ['1', 't', 'T', 'TRUE', 'true', 'True']) assert.equal(parseGoBool(v), true, v);
  for (const v of ['0', 'f', 'F', 'FALSE', 'false', 'False']) assert.equal(parseGoBool(v), false, v);
  for (const v of ['yes', 'tRUE', ' true', '']) assert.equal(parseGoBool(v), undefined, v);
});

test('strictBool: empty is false, ParseBool values parse, anything else is a 400 with the route\'s text', () => {
  const d = wrappedParseBoolError('status');
  assert.equal(strictBool(q(''), 'status', d), false);
  assert.equal(strictBool(q('status='), 'status', d), false);
  assert.equal(strictBool(q('status=True'), 'status', d), true);
  assert.equal(strictBool(q('status=f'), 'status', d), false);
  assert.throws(() => strictBool(q('status=yes'), 'status', d), (e: Error & { kind?: string }) =>
    e.kind === 'invalid' && e.message === 'invalid value for status: yes: strconv.ParseBool: parsing "yes": invalid syntax');
});

test('integers as strconv parses them, errors in Go\'s words', () => {
  assert.deepEqual(parseGoUint('42'), { value: 42 });
  assert.deepEqual(parseGoUint('+1'), { error: 'strconv.ParseUint: parsing "+1": invalid syntax' });
  assert.deepEqual(parseGoUint('18446744073709551616'), { error: 'strconv.ParseUint: parsing "18446744073709551616": value out of range' });
  assert.deepEqual(parseGoInt('-7'), { value: -7 });
  assert.deepEqual(parseGoInt('9223372036854775808'), { error: 'strconv.ParseInt: parsing "9223372036854775808": value out of range' });
  assert.deepEqual(parseGoInt('1.5'), { error: 'strconv.ParseInt: parsing "1.5": invalid syntax' });
});

test('object versions: dockerd\'s message with the ParseUint error', () => {
  assert.equal(parseObjectVersion('12', 'service'), 12);
  assert.throws(() => parseObjectVersion(null, 'service'), { message: 'invalid service version \'\': strconv.ParseUint: parsing "": invalid syntax' });
  assert.throws(() => parseObjectVersion('-1', 'node'), { message: 'invalid node version \'-1\': strconv.ParseUint: parsing "-1": invalid syntax' });
});

test('Go\'s %q and %g, as Docker\'s messages print values', () => {
  assert.equal(goQuote('a"b\\c\n\u0001'), '"a\\"b\\\\c\\n\\x01"');
  assert.equal(goQuote('\u0007\u000b\u007f'), '"\\a\\v\\x7f"');
  assert.equal(goQuote('\\u0007'), '"\\\\u0007"', 'a backslash and text stay text');
  assert.equal(goFloat(-1e-9), '-1e-09');
  assert.equal(goFloat(0.0005), '0.0005');
  assert.equal(goFloat(1.5), '1.5');
  assert.equal(goFloat(2e6), '2e+06');
  assert.equal(goFloat(1.25e-7), '1.25e-07');
});

test('filters as moby\'s FromJSON: every named value counts, legacy lists, Go\'s error for neither form', () => {
  const f = (v: unknown) => parseFilters(JSON.stringify(v), ['name', 'label']);
  assert.deepEqual([...f({ name: { a: true, b: false } })], [['name', ['a', 'b']]]);
  assert.deepEqual([...f({ name: ['a', 'b'], label: null })], [['name', ['a', 'b']], ['label', []]]);
  assert.deepEqual([...f(null)], []);
  assert.throws(() => f({ name: ['a', 1] }), { message: 'json: cannot unmarshal array into Go value of type map[string]bool' });
  assert.throws(() => f({ name: 'a' }), { message: 'json: cannot unmarshal string into Go value of type map[string]bool' });
  assert.throws(() => f({ bogus: { x: true } }), { message: "Invalid filter 'bogus'" });
  assert.throws(() => parseFilters('{', ['name']), { message: 'invalid filter: {' });
});
