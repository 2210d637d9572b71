import { test } from 'node:test';
import assert from 'node:assert/strict';
import { counterDelta, parseEtcdCounters } from '../../../bench/etcd-counters';

const metrics = (puts: number): string => [
  '# HELP etcd_mvcc_put_total Total number of puts seen by this member.',
  '# TYPE etcd_mvcc_put_total counter',
  `etcd_mvcc_put_total ${puts}`,
  'etcd_debugging_mvcc_total_put_size_in_bytes 9462',
  'etcd_mvcc_txn_total 4',
  'etcd_disk_wal_write_bytes_total 2.2768e+06',
  'etcd_network_client_grpc_sent_bytes_total 15874',
  'etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds_bucket{le="1"} 0',
].join('\n');

test('etcd counters: read from /metrics, exponents included; a missing counter leaves the figure out', () => {
  const a = parseEtcdCounters(metrics(9));
  assert.deepEqual(a, { puts: 9, putBytes: 9462, txns: 4, walBytes: 2_276_800, sentBytes: 15874 });
  const b = parseEtcdCounters(metrics(20));
  assert.equal(counterDelta(a!, b!).puts, 11);
  assert.equal(counterDelta(a!, b!).putBytes, 0);
  assert.equal(parseEtcdCounters(metrics(9).replace(/^etcd_mvcc_txn_total.*$/m, '')), undefined);
  assert.equal(parseEtcdCounters('not metrics'), undefined);
});
