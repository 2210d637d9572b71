import { test } from 'node:test';
import assert from 'node:assert/strict';
import { linesNaming, storeLines } from '../../faults/host-logs';

const line = (time: string, msg: string, component = 'agent', part?: string) => JSON.stringify({ level: 30, time, component, ...(part ? { part } : {}), msg });

test('lines naming an anomaly\'s objects: from every host, in time order across them, the last ones only', () => {
  const host1 = [line('2026-12-06T10:00:03.000Z', 'task abc123def456 removed'), line('2026-12-06T10:00:01.000Z', 'unrelated')].join('\n');
  const host2 = [line('2026-12-06T10:00:02.000Z', 'container 0123456789ab created for abc123def456'), line('2026-12-06T10:00:04.000Z', 'container 0123456789ab left')].join('\n');
  const out = linesNaming([['host1', host1], ['host2', host2]], ['abc123def456', '0123456789ab']).split('\n');
  assert.equal(out.length, 3);
  assert.match(out[0]!, /^ {4}host2: .*created for/);
  assert.match(out[1]!, /^ {4}host1: .*removed/);
  assert.match(out[2]!, /^ {4}host2: .*left/);
  assert.deepEqual(linesNaming([['host1', host1], ['host2', host2]], ['abc123def456', '0123456789ab'], 1).split('\n').map((x) => x.slice(0, 11)), ['    host2: ']);
  assert.equal(linesNaming([['host1', host1]], ['nothere000000']), '    (none)');
});

test('a long line is cut; a manager\'s store lines are its store and etcd components\' only', () => {
  const long = line('2026-12-06T10:00:00.000Z', `task abc123def456 ${'x'.repeat(1000)}`);
  assert.equal(linesNaming([['h', long]], ['abc123def456']).length, 4 + 3 + 400);
  const text = [line('t1', 'mirror reloaded', 'store'), line('t2', 'beat', 'dispatcher'), line('t3', 'etcd restarted', 'etcd'), line('t4', 'compacted', 'store', 'maintenance')].join('\n');
  assert.deepEqual(storeLines(text).split('\n').map((x) => JSON.parse(x.trim()).msg), ['mirror reloaded', 'etcd restarted', 'compacted']);
  assert.equal(storeLines(text, 1).split('\n').length, 1);
});
