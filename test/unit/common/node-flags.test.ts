import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DAEMON_GLIBC_TUNABLES, DAEMON_NODE_FLAGS, daemonEnv, daemonNodeFlags } from '../../../src/common/node-flags';

test('the daemon runs with a young generation of up to 2 x 32 MB unless SHOAL_DAEMON_NODE_FLAGS says otherwise', () => {
  assert.deepEqual(daemonNodeFlags({}), [...DAEMON_NODE_FLAGS]);
  assert.deepEqual(DAEMON_NODE_FLAGS, ['--max-semi-space-size=32']);
  assert.deepEqual(daemonNodeFlags({ SHOAL_DAEMON_NODE_FLAGS: '' }), [], 'empty: node with its defaults');
  assert.deepEqual(daemonNodeFlags({ SHOAL_DAEMON_NODE_FLAGS: ' --no-opt  --max-semi-space-size=64 ' }), ['--no-opt', '--max-semi-space-size=64']);
  const flags = daemonNodeFlags({});
  flags.push('--changed');
  assert.deepEqual(daemonNodeFlags({}), ['--max-semi-space-size=32'], 'each caller gets its own copy');
});

test('the daemon maps blocks of 16 KiB and up of their own, unless told otherwise', () => {
  assert.equal(DAEMON_GLIBC_TUNABLES, 'glibc.malloc.mmap_threshold=16384');
  assert.deepEqual(daemonEnv({}), { GLIBC_TUNABLES: DAEMON_GLIBC_TUNABLES });
  assert.deepEqual(daemonEnv({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' }), {}, 'the caller\'s own setting reaches the daemon as it is');
  assert.deepEqual(daemonEnv({ SHOAL_DAEMON_GLIBC_TUNABLES: '' }), { GLIBC_TUNABLES: '' }, 'empty: glibc\'s defaults');
  assert.deepEqual(daemonEnv({ SHOAL_DAEMON_GLIBC_TUNABLES: 'glibc.malloc.mmap_threshold=65536', GLIBC_TUNABLES: 'x' }), { GLIBC_TUNABLES: 'glibc.malloc.mmap_threshold=65536' });
});
