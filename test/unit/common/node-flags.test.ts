import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { DAEMON_GLIBC_TUNABLES, DAEMON_NODE_FLAGS, daemonEnv, daemonNodeFlags } from '../../../src/common/node-flags';

test('the daemon runs with a young generation of up to 2 x 32 MB and an old one of up to twice its live size unless SHOAL_DAEMON_NODE_FLAGS says otherwise', () => {
  assert.deepEqual(daemonNodeFlags({}), [...DAEMON_NODE_FLAGS]);
  assert.deepEqual(DAEMON_NODE_FLAGS, ['--max-semi-space-size=32', '--heap-growing-percent=100']);
  assert.deepEqual(daemonNodeFlags({ SHOAL_DAEMON_NODE_FLAGS: '' }), [], 'empty: node with its defaults');
  assert.deepEqual(daemonNodeFlags({ SHOAL_DAEMON_NODE_FLAGS: ' --no-opt  --max-semi-space-size=64 ' }), ['--no-opt', '--max-semi-space-size=64']);
  const flags = daemonNodeFlags({});
  flags.push('--changed');
  assert.deepEqual(daemonNodeFlags({}), ['--max-semi-space-size=32', '--heap-growing-percent=100'], 'each caller gets its own copy');
});

test('the daemon maps blocks of 16 KiB and up of their own, unless told otherwise', () => {
  assert.equal(DAEMON_GLIBC_TUNABLES, 'glibc.malloc.mmap_threshold=16384');
  assert.deepEqual(daemonEnv({}), { GLIBC_TUNABLES: DAEMON_GLIBC_TUNABLES });
  assert.deepEqual(daemonEnv({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' }), {}, 'the caller\'s own setting reaches the daemon as it is');
  assert.deepEqual(daemonEnv({ SHOAL_DAEMON_GLIBC_TUNABLES: '' }), { GLIBC_TUNABLES: '' }, 'empty: glibc\'s defaults');
  assert.deepEqual(daemonEnv({ SHOAL_DAEMON_GLIBC_TUNABLES: 'glibc.malloc.mmap_threshold=65536', GLIBC_TUNABLES: 'x' }), { GLIBC_TUNABLES: 'glibc.malloc.mmap_threshold=65536' });
});

test('this node takes the daemon\'s flags (V8 refuses one it does not know, and the daemon would not start)', () => {
  const ok = spawnSync(process.execPath, [...DAEMON_NODE_FLAGS, '-e', 'process.stdout.write(JSON.stringify(process.execArgv))'], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(ok.status, 0, ok.stderr);
  assert.deepEqual((JSON.parse(ok.stdout) as string[]).slice(0, DAEMON_NODE_FLAGS.length), [...DAEMON_NODE_FLAGS]);
  const bad = spawnSync(process.execPath, ['--heap-growing-percentx=100', '-e', '0'], { encoding: 'utf8', timeout: 20_000 });
  assert.notEqual(bad.status, 0, 'a flag node does not know is refused');
});
