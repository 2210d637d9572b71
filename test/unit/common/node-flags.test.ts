import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DAEMON_NODE_FLAGS, daemonNodeFlags } from '../../../src/common/node-flags';

test('the daemon runs with a young generation of up to 2 x 32 MB unless SHOAL_DAEMON_NODE_FLAGS says otherwise', () => {
  assert.deepEqual(daemonNodeFlags({}), [...DAEMON_NODE_FLAGS]);
  assert.deepEqual(DAEMON_NODE_FLAGS, ['--max-semi-space-size=32']);
  assert.deepEqual(daemonNodeFlags({ SHOAL_DAEMON_NODE_FLAGS: '' }), [], 'empty: node with its defaults');
  assert.deepEqual(daemonNodeFlags({ SHOAL_DAEMON_NODE_FLAGS: ' --no-opt  --max-semi-space-size=64 ' }), ['--no-opt', '--max-semi-space-size=64']);
  const flags = daemonNodeFlags({});
  flags.push('--changed');
  assert.deepEqual(daemonNodeFlags({}), ['--max-semi-space-size=32'], 'each caller gets its own copy');
});
