import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, promises as fsp, rmSync, statSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../../src/common/log';
import { HostTaskFiles, isMountPoint, type TaskFile } from '../../../src/agent/executor/task-files';

// The host side of secrets for real: tmpfs mounts need root.
const ROOT = process.getuid?.() === 0;
const TMPFS_MAGIC = 0x01021994;
const file = (target: string, data: string, uid = 0, gid = 0, mode = 0o444): TaskFile =>
  ({ kind: 'secret', name: target, target, data: Buffer.from(data), uid, gid, mode });

test('HostTaskFiles: a read-only tmpfs per task with the files\' owners and modes; release unmounts it', { skip: !ROOT && 'needs root to mount tmpfs' }, async () => {
  const runRoot = mkdtempSync(join(tmpdir(), 'shoal-run-'));
  const files = new HostTaskFiles(runRoot, 'node1', silentLogger);
  try {
    const mounts = await files.prepare('task1', [file('/run/secrets/a', 's3cret'), file('/run/secrets/b', 'other', 1000, 1001, 0o400)]);
    const dir = files.taskDir('task1');
    assert.equal(dir, join(runRoot, 'node1', 'secrets', 'task1'));
    assert.ok(await isMountPoint(dir));
    assert.equal(statfsSync(dir).type, TMPFS_MAGIC);
    assert.equal((statSync(dir).mode & 0o777).toString(8), '700');
    assert.deepEqual(mounts.map((m) => [m.Type, m.Target, m.ReadOnly]), [['bind', '/run/secrets/a', true], ['bind', '/run/secrets/b', true]]);
    assert.equal(await fsp.readFile(mounts[0]!.Source!, 'utf8'), 's3cret');
    const b = statSync(mounts[1]!.Source!);
    assert.deepEqual([b.uid, b.gid, (b.mode & 0o7777).toString(8)], [1000, 1001, '400']);
    await assert.rejects(fsp.writeFile(join(dir, 'x'), 'y'), /EROFS/);
    // Preparing again gives a fresh tmpfs, not a second one on top.
    await files.prepare('task1', [file('/run/secrets/a', 'v2')]);
    assert.equal(await fsp.readFile(join(dir, 's0'), 'utf8'), 'v2');
    assert.equal((await fsp.readFile('/proc/self/mountinfo', 'utf8')).split('\n').filter((l) => l.split(' ')[4] === dir).length, 1);
    await files.prepare('task2', [file('/run/secrets/a', 'x')]);
    await files.sweep(new Set(['task1']));
    assert.ok(!existsSync(files.taskDir('task2')), 'swept');
    assert.ok(await isMountPoint(dir), 'kept');
    await files.release('task1');
    await files.release('task1'); // twice is fine
    assert.ok(!(await isMountPoint(dir)));
    assert.ok(!existsSync(dir));
  } finally {
    await files.releaseAll().catch(() => undefined);
    rmSync(runRoot, { recursive: true, force: true });
  }
});

test('HostTaskFiles: refuses odd task IDs (no path tricks)', () => {
  const files = new HostTaskFiles('/nonexistent', 'n', silentLogger);
  assert.throws(() => files.taskDir('../etc'), /invalid task ID/);
});
