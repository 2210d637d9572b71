import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDaemonOptions } from '../../../src/daemon/options';

test('-H tcp:// without TLS is refused unless --insecure-tcp says so', () => {
  assert.throws(() => parseDaemonOptions(['-H', 'tcp://127.0.0.1:2375']), /refusing to serve the Docker API on tcp:\/\/127.0.0.1:2375 without TLS[^]*--insecure-tcp/);
  const o = parseDaemonOptions(['-H', 'tcp://127.0.0.1:2375', '--insecure-tcp']);
  assert.equal(o.insecureTcp, true);
  assert.equal(o.tls, undefined);
  assert.deepEqual(parseDaemonOptions(['-H', 'unix:///tmp/x.sock']).hosts, ['unix:///tmp/x.sock']);
});

test('--tlsverify implies TLS with client certificates; paths as given, else dockerd\'s defaults', () => {
  const o = parseDaemonOptions(['-H', 'tcp://127.0.0.1:2376', '--tlsverify', '--tlscacert', '/c/ca.pem', '--tlscert', '/c/s.pem', '--tlskey', '/c/k.pem']);
  assert.deepEqual(o.tls, { verify: true, caCert: '/c/ca.pem', cert: '/c/s.pem', key: '/c/k.pem' });
  const saved = process.env.DOCKER_CERT_PATH;
  process.env.DOCKER_CERT_PATH = '/certs';
  try {
    assert.deepEqual(parseDaemonOptions(['-H', 'tcp://127.0.0.1:2376', '--tls']).tls, { verify: false, caCert: '/certs/ca.pem', cert: '/certs/cert.pem', key: '/certs/key.pem' });
  } finally {
    if (saved === undefined) delete process.env.DOCKER_CERT_PATH; else process.env.DOCKER_CERT_PATH = saved;
  }
});
