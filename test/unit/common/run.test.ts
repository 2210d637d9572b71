import { test } from 'node:test';
import assert from 'node:assert/strict';
import { run } from '../../../src/common/run';

test('run: a command that exits without reading its input gives its exit code (no EPIPE escapes)', async () => {
  // 4 MB is far beyond a pipe's buffer: the write fails once `false` has exited.
  const r = await run('false', [], { input: 'x'.repeat(4 << 20), timeoutMs: 10_000 });
  assert.equal(r.code, 1);
  const ok = await run('sh', ['-c', 'wc -c'], { input: 'abc', timeoutMs: 10_000 });
  assert.deepEqual([ok.code, ok.stdout.trim()], [0, '3']);
});

test('run: a command that cannot start gives 127; one past its deadline is killed and gives 124', async () => {
  assert.equal((await run('/nonexistent/shoal-no-such-command', [])).code, 127);
  const late = await run('sleep', ['5'], { timeoutMs: 100 });
  assert.equal(late.code, 124);
  assert.match(late.stderr, /no end within 100 ms/);
});
