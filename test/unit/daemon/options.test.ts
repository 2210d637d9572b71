import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDaemonOptions } from '../../../src/daemon/options';

test('etcd URLs default to https on loopback', () => {
  const o = parseDaemonOptions([]);
  assert.equal(o.etcdClientUrl, 'https://127.0.0.1:4379');
  assert.equal(o.etcdPeerUrl, 'https://127.0.0.1:4380');
});

test('etcd URLs: https only, with a port, client and peer distinct', () => {
  assert.equal(parseDaemonOptions(['--etcd-client-url', 'https://127.0.0.1:5000', '--etcd-peer-url', 'https://127.0.0.1:5001']).etcdClientUrl, 'https://127.0.0.1:5000');
  assert.throws(() => parseDaemonOptions(['--etcd-client-url', 'http://127.0.0.1:4379']), /only over mutual TLS, use https:\/\/127\.0\.0\.1:4379/);
  assert.throws(() => parseDaemonOptions(['--etcd-peer-url', 'http://127.0.0.1:4380']), /--etcd-peer-url/);
  assert.throws(() => parseDaemonOptions(['--etcd-client-url', 'https://127.0.0.1']), /expected https:\/\/HOST:PORT/);
  assert.throws(() => parseDaemonOptions(['--etcd-client-url', 'unix://etcd:0']), /mutual TLS/);
  assert.throws(() => parseDaemonOptions(['--etcd-client-url', 'https://127.0.0.1:70000']), /out of range/);
  assert.throws(() => parseDaemonOptions(['--etcd-client-url', 'https://127.0.0.1:4380']), /must differ/);
});
