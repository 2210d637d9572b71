import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { newKeyAndCSR, parseCsrChildOutput } from '../../../src/common/x509';

test('a key and certificate request come from a short-lived process, and this process never loads @peculiar/x509', async () => {
  const { keyPem, csrPem } = await newKeyAndCSR();
  assert.equal(createPrivateKey(keyPem).asymmetricKeyType, 'ec');
  assert.match(csrPem, /^-----BEGIN CERTIFICATE REQUEST-----\n/);
  assert.equal(Object.keys(require.cache).some((k) => k.includes('@peculiar/x509')), false);
});

test('what the child wrote is checked where it enters', () => {
  assert.throws(() => parseCsrChildOutput('not json'), /no JSON/);
  assert.throws(() => parseCsrChildOutput('{"keyPem":"x","csrPem":"y"}'), /no key and request/);
  assert.throws(() => parseCsrChildOutput('[]'), /no key and request/);
});
