import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { secureDataRoot } from '../../../src/daemon/data-root';

test('the data root and everything in it lose group and other permissions', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-dr-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const root = join(dir, 'data');
  mkdirSync(join(root, 'certificates'), { recursive: true });
  chmodSync(root, 0o755);
  chmodSync(join(root, 'certificates'), 0o777);
  writeFileSync(join(root, 'etcd.log'), 'x', { mode: 0o644 });
  writeFileSync(join(root, 'certificates', 'swarm-node.key'), 'k', { mode: 0o666 });
  writeFileSync(join(dir, 'outside'), 'o', { mode: 0o644 });
  symlinkSync(join(dir, 'outside'), join(root, 'link'));
  secureDataRoot(root);
  const mode = (p: string) => statSync(p).mode & 0o777;
  assert.equal(mode(root), 0o700);
  assert.equal(mode(join(root, 'certificates')), 0o700);
  assert.equal(mode(join(root, 'etcd.log')), 0o600);
  assert.equal(mode(join(root, 'certificates', 'swarm-node.key')), 0o600);
  assert.equal(mode(join(dir, 'outside')), 0o644, 'a symbolic link is not followed');
  secureDataRoot(join(dir, 'fresh'));
  assert.equal(mode(join(dir, 'fresh')), 0o700);
});
