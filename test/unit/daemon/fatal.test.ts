import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';

// dist/test/unit/daemon -> dist/src/daemon/fatal.js
const FATAL = resolve(__dirname, '../../../src/daemon/fatal.js');

function runWith(fault: string): { status: number | null; stderr: string } {
  const script = `
    const { exitOnFatalErrors } = require(${JSON.stringify(FATAL)});
    const { createLogger } = require(${JSON.stringify(resolve(__dirname, '../../../src/common/log.js'))});
    exitOnFatalErrors(createLogger('info'), () => ({ killNow: () => { process.stderr.write('etcd stopped\\n'); } }));
    setTimeout(() => { ${fault} }, 10);
    setTimeout(() => { process.stderr.write('still running\\n'); }, 500);
  `;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 10_000 });
  return { status: r.status, stderr: r.stderr };
}

test('an uncaught exception is logged, etcd is stopped, and the daemon exits non-zero', () => {
  const r = runWith("throw new Error('boom in a timer')");
  assert.equal(r.status, 70);
  assert.match(r.stderr, /"level":60.*uncaught exception: exiting/);
  assert.match(r.stderr, /boom in a timer/);
  assert.match(r.stderr, /etcd stopped/);
  assert.doesNotMatch(r.stderr, /still running/);
});

test('an unhandled promise rejection is fatal too', () => {
  const r = runWith("Promise.reject(new Error('lost rejection'))");
  assert.equal(r.status, 70);
  assert.match(r.stderr, /unhandled promise rejection: exiting/);
  assert.match(r.stderr, /lost rejection/);
});
