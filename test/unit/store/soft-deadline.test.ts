import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { soft, SoftDeadlineError } from '../../../src/store/etcd-backend';

const busy = (ms: number): void => { const end = Date.now() + ms; while (Date.now() < end) { /* the event loop held */ } };

test('a soft deadline gives up on a call that does not answer, and leaves the call be', async () => {
  let late!: (v: string) => void;
  const call = new Promise<string>((resolve) => { late = resolve; });
  await assert.rejects(soft(call, 30, 'a test call'), (e: unknown) => e instanceof SoftDeadlineError && /DEADLINE_EXCEEDED: etcd did not answer a test call within 30 ms/.test((e as Error).message));
  late('after'); // a late answer goes nowhere, and throws nowhere
  assert.equal(await soft(Promise.resolve('now'), 30, 'a test call'), 'now');
});

test('an answer that arrived while the event loop was held is read before the deadline counts', async (t) => {
  // cat answers from another process while this one is held: when the loop
  // turns again, the overdue timer runs before the pipe is read.
  const cat = spawn('cat', [], { stdio: ['pipe', 'pipe', 'ignore'] });
  t.after(() => { cat.kill(); });
  const answer = new Promise<string>((resolve) => cat.stdout.once('data', (d: Buffer) => resolve(d.toString().trim())));
  // Held inside a timer of the same length, set first: the deadline's timer,
  // overdue by then, runs right after it, before the loop reads the pipe.
  let p!: Promise<string>;
  await new Promise<void>((resolve) => {
    setTimeout(() => { cat.stdin.write('answer\n'); busy(400); resolve(); }, 50);
    p = soft(answer, 50, 'a test call');
  });
  assert.equal(await p, 'answer');
});

test('soft tells its watcher whether the call settled (a value or an error) or the deadline came first', async () => {
  const heard: string[] = [];
  const calls = { answered: () => heard.push('answered'), unanswered: () => heard.push('unanswered') };
  assert.equal(await soft(Promise.resolve(1), 1000, 'a read', calls), 1);
  await assert.rejects(soft(Promise.reject(new Error('9 FAILED_PRECONDITION')), 1000, 'a write', calls), /FAILED_PRECONDITION/);
  await assert.rejects(soft(new Promise(() => {}), 20, 'a write', calls), SoftDeadlineError);
  assert.deepEqual(heard, ['answered', 'answered', 'unanswered']);
});
