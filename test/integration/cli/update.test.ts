import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Service, Task } from '../../../src/model/types';
import { startShoal, waitFor, type DockerResult, type ShoalHandle } from '../../helpers/daemon';
import { ensureBusyboxImage } from '../../helpers/images';

// Rolling updates and rollbacks as the docker CLI drives them: batches and
// Delay, start-first, FailureAction pause / continue / rollback, `docker
// service rollback`, unhealthy tasks. Short Monitor and restart delays keep
// the file well under three minutes.
const IMG1 = 'shoal-test/busybox:1';
const IMG2 = 'shoal-test/busybox:2';
// Stops at once on SIGTERM (a plain `sleep` as PID 1 would wait out the 10 s grace period).
const SLEEP = ['sh', '-c', 'trap "exit 0" TERM; sleep 3600 & wait'];
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const ms = (iso: string | undefined): number => (iso ? Date.parse(iso) : 0);

describe('rolling updates through the docker CLI', () => {
  let shoal: ShoalHandle;

  const docker = (args: string[], timeoutMs = 90_000): Promise<DockerResult> => shoal.docker(args, { timeoutMs });
  const ok = async (args: string[], timeoutMs?: number): Promise<string> => {
    const r = await docker(args, timeoutMs);
    assert.equal(r.code, 0, `docker ${args.join(' ')}: ${r.stderr}${r.stdout}`);
    return r.stdout + r.stderr;
  };
  const tasks = async (service: string): Promise<Task[]> => {
    const f = encodeURIComponent(JSON.stringify({ service: { [service]: true } }));
    const r = await shoal.api('GET', `/v1.41/tasks?filters=${f}`);
    assert.equal(r.status, 200, r.text);
    return r.json as Task[];
  };
  const service = async (name: string): Promise<Service> => {
    const r = await shoal.api('GET', `/v1.41/services/${name}`);
    assert.equal(r.status, 200, r.text);
    return r.json as Service;
  };
  const image = (t: Task): string => t.Spec.ContainerSpec?.Image ?? '';
  const runningOf = (ts: Task[]): Task[] => ts.filter((t) => t.Status.State === 'running' && t.DesiredState === 'running');
  const waitImages = (name: string, img: string, n: number, timeoutMs = 60_000) =>
    waitFor(`${n} running tasks of ${name} on ${img}`, async () => {
      const r = runningOf(await tasks(name));
      return r.length === n && r.every((t) => image(t) === img) ? r : undefined;
    }, timeoutMs);
  const waitState = (name: string, state: string, timeoutMs = 30_000) =>
    waitFor(`${name} UpdateStatus ${state}`, async () => {
      const s = await service(name);
      return s.UpdateStatus?.State === state ? s : undefined;
    }, timeoutMs);
  const create = async (name: string, replicas: number, extra: string[] = [], cmd: string[] = SLEEP): Promise<void> => {
    await ok(['service', 'create', '-d', '--name', name, '--replicas', String(replicas), '--restart-delay', '1s', ...extra, IMG1, ...cmd]);
    await waitImages(name, IMG1, replicas);
  };
  // Runs `fn` while sampling the service's tasks every 100 ms.
  const sampling = async <T>(name: string, fn: () => Promise<T>): Promise<{ result: T; samples: Task[][] }> => {
    const samples: Task[][] = [];
    let done = false;
    const sampler = (async () => {
      while (!done) {
        samples.push(await tasks(name));
        await sleep(100);
      }
    })();
    try {
      return { result: await fn(), samples };
    } finally {
      done = true;
      await sampler;
    }
  };

  before(async () => {
    await ensureBusyboxImage('/var/run/docker.sock', IMG1);
    shoal = await startShoal({ hostname: 'update-node' });
    const tag = await shoal.dockerEngine(['tag', IMG1, IMG2]);
    assert.equal(tag.code, 0, tag.stderr);
    await ok(['swarm', 'init']);
  });
  after(async () => { await shoal?.cleanup(); });

  test('--update-parallelism 2 --update-delay 2s: batches of two, 2 s apart, never fewer than replicas - 2 running', async () => {
    await create('batch', 6);
    const { result: out, samples } = await sampling('batch', () =>
      ok(['service', 'update', '--image', IMG2, '--update-parallelism', '2', '--update-delay', '2s', '--update-monitor', '1s', 'batch']));
    assert.match(out, /verify: Service (batch )?converged/);
    assert.ok(samples.length > 20, `${samples.length} samples`);
    for (const s of samples) {
      const n = s.filter((t) => t.Status.State === 'running').length;
      assert.ok(n >= 4, `only ${n} running: ${s.map((t) => `${t.Slot}:${image(t)}:${t.Status.State}/${t.DesiredState}`).join(' ')}`);
    }
    const all = await tasks('batch');
    const fresh = all.filter((t) => image(t) === IMG2).sort((a, b) => ms(a.CreatedAt) - ms(b.CreatedAt));
    assert.equal(fresh.length, 6, 'one new task per slot');
    // Batches: tasks created together; each one starts 2 s after the previous one ran.
    const batches: Task[][] = [];
    for (const t of fresh) {
      const last = batches[batches.length - 1];
      if (last && ms(t.CreatedAt) - ms(last[0]!.CreatedAt) < 1000) last.push(t);
      else batches.push([t]);
    }
    assert.deepEqual(batches.map((b) => b.length), [2, 2, 2], batches.map((b) => b.map((t) => t.CreatedAt).join(',')).join(' | '));
    // Each of the two workers sleeps Delay after its own task ran: pair the
    // earlier-running task of a batch with the earlier-created of the next.
    for (let i = 1; i < batches.length; i++) {
      const ran = batches[i - 1]!.map((t) => ms(t.Status.Timestamp)).sort((a, b) => a - b);
      const next = batches[i]!.map((t) => ms(t.CreatedAt)).sort((a, b) => a - b);
      for (let k = 0; k < 2; k++) {
        assert.ok(next[k]! - ran[k]! >= 1990, `batch ${i + 1}: a task started ${next[k]! - ran[k]!} ms after batch ${i}'s ran`);
        assert.ok(next[k]! - ran[k]! < 4000, `batch ${i + 1}: no needless wait (${next[k]! - ran[k]!} ms)`);
      }
    }
    const s = await waitState('batch', 'completed');
    assert.equal(s.UpdateStatus?.Message, 'update completed');
    assert.equal(s.PreviousSpec?.TaskTemplate?.ContainerSpec?.Image, IMG1);
  });

  test('docker service rollback returns to the previous image and ends rollback_completed', async () => {
    const out = await ok(['service', 'rollback', 'batch']);
    assert.match(out, /rollback: manually requested rollback/);
    assert.match(out, /verify: Service (batch )?converged|rollback: rollback completed/);
    await waitImages('batch', IMG1, 6);
    const s = await waitState('batch', 'rollback_completed');
    assert.equal(s.UpdateStatus?.Message, 'rollback completed');
    assert.equal(s.Spec.TaskTemplate?.ContainerSpec?.Image, IMG1);
    assert.equal(s.PreviousSpec?.TaskTemplate?.ContainerSpec?.Image, IMG2, 'a manual rollback swaps the specs');
    await ok(['service', 'rm', 'batch']);
  });

  test('--update-order start-first: the new task runs before the old one stops', async () => {
    await create('sf', 2);
    const { result: out, samples } = await sampling('sf', () =>
      ok(['service', 'update', '--image', IMG2, '--update-order', 'start-first', '--update-monitor', '1s', 'sf']));
    assert.match(out, /verify: Service (sf )?converged/);
    for (const s of samples) assert.ok(runningOf(s).length + s.filter((t) => t.Status.State === 'running' && t.DesiredState !== 'running').length >= 2, 'never fewer than 2 running');
    const all = await tasks('sf');
    for (const slot of [1, 2]) {
      const inSlot = all.filter((t) => t.Slot === slot);
      const fresh = inSlot.find((t) => image(t) === IMG2 && t.Status.State === 'running')!;
      const old = inSlot.find((t) => image(t) === IMG1)!;
      assert.ok(fresh && old, JSON.stringify(inSlot.map((t) => [image(t), t.Status.State])));
      assert.equal(old.Status.State, 'shutdown');
      assert.ok(ms(old.Status.Timestamp) >= ms(fresh.Status.Timestamp), `slot ${slot}: old stopped at ${old.Status.Timestamp}, new ran at ${fresh.Status.Timestamp}`);
    }
    await ok(['service', 'rm', 'sf']);
  });

  test('--update-failure-action pause: a failing new task pauses the update and the CLI fails', async () => {
    await create('failp', 3);
    const r = await docker(['service', 'update', '--update-failure-action', 'pause', '--update-monitor', '3s', '--args', 'sh -c "exit 1"', 'failp']);
    assert.notEqual(r.code, 0, r.stdout);
    const m = /service update paused: update paused due to failure or early termination of task ([0-9a-z]{25})/.exec(r.stderr);
    assert.ok(m, r.stderr);
    const s = await service('failp');
    assert.equal(s.UpdateStatus?.State, 'paused');
    assert.equal(s.UpdateStatus?.Message, `update paused due to failure or early termination of task ${m[1]}`);
    // Paused: the slots not yet replaced stay as they are, however long we
    // wait. (With Delay 0 the single worker moves on as soon as a new task
    // runs, so the next slot may have been started before the first failed.)
    const oldSlots = async () => (await tasks('failp'))
      .filter((t) => t.DesiredState === 'running' && t.Status.State === 'running' && t.Spec.ContainerSpec?.Args?.[2] === SLEEP[2])
      .map((t) => t.Slot).sort();
    const before = await oldSlots();
    assert.ok(before.length >= 1 && before.length <= 2, `old slots ${before.join(',')}`);
    await sleep(3000);
    assert.deepEqual(await oldSlots(), before);
    assert.equal((await service('failp')).UpdateStatus?.State, 'paused');
    // A new update starts afresh.
    const out = await ok(['service', 'update', '--args', SLEEP.map((a) => `'${a}'`).join(' '), '--update-parallelism', '0', '--update-monitor', '1s', 'failp']);
    assert.match(out, /verify: Service (failp )?converged/);
    assert.equal(runningOf(await tasks('failp')).filter((t) => t.Spec.ContainerSpec?.Args?.[2] === SLEEP[2]).length, 3);
    await ok(['service', 'rm', 'failp']);
  });

  test('--update-failure-action rollback: back to the previous spec, rollback_completed', async () => {
    await create('failr', 2);
    const out = await ok(['service', 'update', '--update-failure-action', 'rollback', '--update-monitor', '2s', '--args', 'sh -c "exit 1"', 'failr']);
    assert.match(out, /rollback: update rolled back due to failure or early termination of task [0-9a-z]{25}/);
    assert.match(out, /verify: Service (failr )?converged/);
    const s = await waitState('failr', 'rollback_completed');
    assert.deepEqual(s.Spec.TaskTemplate?.ContainerSpec?.Args, SLEEP);
    assert.equal(s.PreviousSpec, undefined, 'an automatic rollback uses up the previous spec, as in Docker');
    assert.equal(runningOf(await tasks('failr')).filter((t) => t.Spec.ContainerSpec?.Args?.[2] === SLEEP[2]).length, 2);
    await ok(['service', 'rm', 'failr']);
  });

  test('--update-failure-action continue: failures do not stop the update, which completes', async () => {
    await create('failc', 2);
    await ok(['service', 'update', '-d', '--update-failure-action', 'continue', '--update-monitor', '1s', '--args', 'sh -c "exit 1"', 'failc']);
    const s = await waitState('failc', 'completed', 40_000);
    assert.equal(s.UpdateStatus?.Message, 'update completed');
    const all = await tasks('failc');
    for (const slot of [1, 2]) {
      assert.ok(all.some((t) => t.Slot === slot && t.Spec.ContainerSpec?.Args?.[2] === 'exit 1'), `slot ${slot} was updated`);
    }
    await ok(['service', 'rm', 'failc']);
  });

  test('an unhealthy task is replaced, and during an update it counts as a failure', async () => {
    await create('health', 1, ['--health-cmd', 'true', '--health-interval', '1s', '--health-retries', '1']);
    const r = await docker(['service', 'update', '--health-cmd', 'false', '--update-failure-action', 'pause', '--update-monitor', '5s', 'health']);
    assert.notEqual(r.code, 0, r.stdout);
    assert.match(r.stderr, /service update paused: update paused due to failure or early termination of task/);
    // The restart policy replaces the unhealthy task, again and again.
    // The agent reports the failure first; the orchestrator then sets the old task's
    // desired state to shutdown and starts a replacement: wait for both, with a deadline.
    const failed = await waitFor('two unhealthy tasks, each replaced (desired shutdown)', async () => {
      const ts = (await tasks('health')).filter((t) => t.Status.State === 'failed' && /unhealthy/.test(t.Status.Err ?? ''));
      return ts.length >= 2 && ts.every((t) => t.DesiredState === 'shutdown') ? ts : undefined;
    }, 30_000);
    assert.ok(failed.every((t) => t.DesiredState === 'shutdown'));
    assert.equal((await service('health')).UpdateStatus?.State, 'paused');
    await ok(['service', 'rm', 'health']);
  });
});
