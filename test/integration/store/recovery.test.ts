import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startShoal, waitFor, type ShoalHandle } from '../../helpers/daemon';
import { etcdAnswers, etcdClient, etcdDump } from '../../helpers/etcd-client';

const IMG = 'shoal-test/busybox:1';
// Nothing matches: tasks stay pending, no container is ever made.
const NOWHERE = 'node.labels.nothing==here';

const serviceSpec = (name: string, replicas: number, envBytes = 0) => ({
  Name: name,
  TaskTemplate: {
    ContainerSpec: { Image: IMG, Command: ['sleep', '3600'], Env: envBytes ? [`PAD=${'p'.repeat(envBytes)}`] : [] },
    Placement: { Constraints: [NOWHERE] },
  },
  Mode: { Replicated: { Replicas: replicas } },
});

// Object keys and mod revisions: etcd's, read directly, and the daemon's
// mirror as its API shows it (Version.Index is the mod revision).
async function etcdObjects(h: ShoalHandle): Promise<Map<string, number>> {
  const { kvs } = await etcdDump(h, '/shoal/v1/o/');
  return new Map(kvs.filter((kv) => /\/o\/(tasks|services)\//.test(kv.key)).map((kv) => [kv.key.replace('/shoal/v1/o/', ''), kv.modRevision]));
}
async function mirrorObjects(h: ShoalHandle): Promise<Map<string, number>> {
  const m = new Map<string, number>();
  for (const kind of ['tasks', 'services']) {
    const r = await h.api('GET', `/v1.41/${kind}`, undefined, { timeoutMs: 30_000 });
    if (r.status !== 200) throw new Error(`${kind}: ${r.status} ${r.text}`);
    for (const o of r.json as Array<{ ID: string; Version: { Index: number } }>) m.set(`${kind}/${o.ID}`, o.Version.Index);
  }
  return m;
}
function sameMaps(a: Map<string, number>, b: Map<string, number>): string | undefined {
  if (a.size !== b.size) return `sizes ${a.size} vs ${b.size}`;
  for (const [k, v] of a) if (b.get(k) !== v) return `${k}: ${v} vs ${b.get(k)}`;
  return undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('store recovery', () => {
  let shoal: ShoalHandle;
  before(async () => {
    shoal = await startShoal({ hostname: 'storerec' });
    const r = await shoal.docker(['swarm', 'init']);
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => { await shoal?.cleanup(); });

  test('kill -9 of etcd during a bulk write: the mirror ends equal to etcd, key for key', async () => {
    const created = await shoal.api('POST', '/v1.41/services/create', serviceSpec('bulk', 4000, 1024));
    assert.equal(created.status, 201, created.text);
    // Kill etcd while the orchestrator is creating the tasks.
    await waitFor('the first tasks', async () => (await etcdDump(shoal, '/shoal/v1/o/tasks/')).kvs.length > 200, 30_000, 20);
    const pid = shoal.etcdPid();
    assert.ok(pid, 'etcd runs');
    process.kill(pid!, 'SIGKILL');
    await waitFor('etcd back (supervised)', async () => shoal.etcdPid() !== undefined && shoal.etcdPid() !== pid && etcdAnswers(shoal), 30_000, 50);
    await waitFor('4000 tasks', async () => (await etcdDump(shoal, '/shoal/v1/o/tasks/')).kvs.length === 4000, 60_000, 500);
    let last = '';
    await waitFor('the mirror to equal etcd', async () => {
      const diff = sameMaps(await etcdObjects(shoal), await mirrorObjects(shoal));
      last = diff ?? '';
      return diff === undefined;
    }, 60_000, 1000).catch((e: Error) => { throw new Error(`${e.message}; ${last}`); });
    assert.ok(shoal.running(), 'the daemon kept running');
  });

  test('garbage and foreign objects under the prefix are logged and skipped; the daemon keeps serving, also after a restart', async () => {
    const c = etcdClient(shoal);
    try {
      await c.txn([], [
        { put: '/shoal/v1/o/tasks/garbage1', value: '\u0000not json' },
        { put: '/shoal/v1/o/nodes/garbage2', value: JSON.stringify({ ID: 'garbage2', Spec: 42 }) },
        { put: '/shoal/v1/o/services/garbage3', value: '[]' },
        // Plausible, from another cluster: a task of a service this one never had.
        { put: '/shoal/v1/o/tasks/foreign1', value: JSON.stringify({ ID: 'foreign1', ServiceID: 'nosuchservice', Spec: {}, Status: { State: 'new', Timestamp: '', Message: '' }, DesiredState: 'running', CreatedAt: '', UpdatedAt: '', Labels: {} }) },
      ]);
    } finally { await c.close(); }
    await waitFor('the garbage to be reported', async () => /ignoring a value that is not a valid object/.test(shoal.logs()), 10_000);
    const ok = async () => { const r = await shoal.docker(['service', 'ls']); assert.equal(r.code, 0, r.stderr); };
    await ok();
    await shoal.restart();
    await ok();
    assert.ok(shoal.running());
    assert.equal((await shoal.api('POST', '/v1.41/services/create', serviceSpec('aftergarbage', 1))).status, 201);
  });

  test('a write succeeds within 1 s of etcd answering again after kill -9; nothing acknowledged is lost', async () => {
    const acked: string[] = [];
    let n = 0;
    const create = async (): Promise<boolean> => {
      const name = `w${n++}`;
      const r = await shoal.api('POST', '/v1.41/services/create', serviceSpec(name, 0), { timeoutMs: 20_000 }).catch((err: Error) => { lastRefusal = err.message; return undefined; });
      if (r?.status === 201) { acked.push(name); return true; }
      if (r) lastRefusal = `${r.status} ${r.text}`;
      return false;
    };
    let lastRefusal = '';
    // The daemon was restarted by the test before: writes are taken once its etcd is healthy again.
    await waitFor('a first write', create, 15_000, 100).catch((e: Error) => { throw new Error(`${e.message}; last refusal: ${lastRefusal}`); });
    for (let i = 0; i < 4; i++) assert.ok(await create(), lastRefusal);
    const pid = shoal.etcdPid()!;
    process.kill(pid, 'SIGKILL');
    // etcd is supervised: poll it directly, and the API, side by side.
    let etcdBackAt = 0;
    let writeAt = 0;
    const deadline = Date.now() + 30_000;
    const probeEtcd = (async () => {
      while (!etcdBackAt && Date.now() < deadline) {
        if (shoal.etcdPid() !== undefined && shoal.etcdPid() !== pid && await etcdAnswers(shoal)) etcdBackAt = Date.now();
        else await sleep(20);
      }
    })();
    const writer = (async () => {
      // Writes count once the daemon has started the new etcd: one sent
      // right after the kill can still reach the dying etcd (and succeed)
      // before the daemon has seen it exit.
      while (!writeAt && Date.now() < deadline) {
        const now = shoal.etcdPid();
        if (now === undefined || now === pid) { await sleep(20); continue; }
        if (await create()) writeAt = Date.now(); else await sleep(20);
      }
    })();
    await Promise.all([probeEtcd, writer]);
    assert.ok(etcdBackAt && writeAt, `etcd back at ${etcdBackAt}, first write at ${writeAt}`);
    const delay = writeAt - etcdBackAt;
    process.stderr.write(`[store-recovery] first successful write ${delay} ms after etcd answered\n`);
    assert.ok(delay < 1000, `first write ${delay} ms after etcd answered`);
    for (let i = 0; i < 5; i++) assert.ok(await create(), lastRefusal);
    const r = await shoal.api('GET', '/v1.41/services');
    const names = new Set((r.json as Array<{ Spec: { Name: string } }>).map((s) => s.Spec.Name));
    for (const a of acked) assert.ok(names.has(a), `acknowledged service ${a} is there`);
    const { kvs } = await etcdDump(shoal, '/shoal/v1/n/services/');
    const inEtcd = new Set(kvs.map((kv) => kv.key.split('/').pop()));
    for (const a of acked) assert.ok(inEtcd.has(a), `acknowledged service ${a} is in etcd`);
  });
});
