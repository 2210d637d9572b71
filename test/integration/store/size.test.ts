import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startShoal, type ShoalHandle } from '../../helpers/daemon';
import { createPendingServices, waitForQuietTasks, waitServing } from '../../helpers/store-load';
import { etcdDump } from '../../helpers/etcd-client';

// A big state survives restarts: 20,000 pending tasks with ~4 KB specs (2
// services of 10,000) in `npm test`; `npm run soak:store` runs the same test
// at 100,000 (10 services: STORE_SIZE_SERVICES=10), which takes minutes.
const SERVICES = Number(process.env.STORE_SIZE_SERVICES ?? 2);
const REPLICAS = 10_000;
const ENV_BYTES = 4096;
const TOTAL = (SERVICES * REPLICAS).toLocaleString('en-US');

let shoal: ShoalHandle;
before(async () => {
  shoal = await startShoal({ hostname: 'storesize' });
  const r = await shoal.docker(['swarm', 'init']);
  assert.equal(r.code, 0, r.stderr);
});
after(async () => { await shoal?.cleanup(); });

test(`${TOTAL} tasks with 4 KB specs: restart and kill -9, the daemon serves them all again within 30 s`, async () => {
  const names = await createPendingServices(shoal, SERVICES, REPLICAS, ENV_BYTES);
  await waitForQuietTasks(shoal, SERVICES * REPLICAS, SERVICES * 120_000);
  // Specs are stored once, not with every task.
  const { kvs } = await etcdDump(shoal);
  const bytes = kvs.reduce((n, kv) => n + kv.value.length, 0);
  assert.ok(bytes < SERVICES * REPLICAS * 2048, `etcd holds ${bytes} bytes for ${SERVICES * REPLICAS} tasks`);

  await shoal.restart();
  const afterRestart = await waitServing(shoal, names, REPLICAS, 30_000);
  await shoal.kill9();
  const t0 = Date.now();
  await shoal.restart();
  await waitServing(shoal, names, REPLICAS, 30_000);
  const afterKill = Date.now() - t0;
  process.stderr.write(`[store-size] ${SERVICES * REPLICAS} tasks: serving ${afterRestart} ms after a restart, ${afterKill} ms after kill -9; etcd values ${(bytes / 1e6).toFixed(1)} MB\n`);
  const ls = await shoal.docker(['service', 'ls'], { timeoutMs: 30_000 });
  assert.equal(ls.code, 0, ls.stderr);
  for (const n of names) assert.match(ls.stdout, new RegExp(`${n}\\s+replicated\\s+0/${REPLICAS}`));
  const ps = await shoal.docker(['service', 'ps', '-q', names[0]!], { timeoutMs: 60_000 });
  assert.equal(ps.code, 0, ps.stderr);
  assert.equal(ps.stdout.trim().split('\n').length, REPLICAS);
});
