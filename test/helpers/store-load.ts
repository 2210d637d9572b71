import type { ShoalHandle } from './daemon';
import { waitFor } from './daemon';
import { etcdDump } from './etcd-client';

// A large cluster state without containers: services whose tasks stay
// pending (a constraint no node matches), each task spec carrying ~envBytes
// of environment. Shared by the store's size test and bench/store.ts.

export const NOWHERE = 'node.labels.nothing==here';

export function pendingServiceSpec(name: string, replicas: number, envBytes: number): Record<string, unknown> {
  return {
    Name: name,
    TaskTemplate: {
      ContainerSpec: { Image: 'shoal-test/busybox:1', Command: ['sleep', '3600'], Env: [`PAD=${'p'.repeat(envBytes)}`] },
      Placement: { Constraints: [NOWHERE] },
    },
    Mode: { Replicated: { Replicas: replicas } },
  };
}

// Task count of one service as `docker service ps` sees it (the API's task list).
export async function serviceTaskCount(h: ShoalHandle, name: string, timeoutMs = 60_000): Promise<number> {
  const filters = encodeURIComponent(JSON.stringify({ service: { [name]: true } }));
  const r = await h.api('GET', `/v1.41/tasks?filters=${filters}`, undefined, { timeoutMs });
  if (r.status !== 200) throw new Error(`tasks of ${name}: ${r.status} ${r.text.slice(0, 200)}`);
  return (r.json as unknown[]).length;
}

export async function createPendingServices(h: ShoalHandle, services: number, replicas: number, envBytes: number): Promise<string[]> {
  const names: string[] = [];
  for (let i = 0; i < services; i++) {
    const name = `big${i}`;
    const r = await h.api('POST', '/v1.41/services/create', pendingServiceSpec(name, replicas, envBytes), { timeoutMs: 60_000 });
    if (r.status !== 201) throw new Error(`create ${name}: ${r.status} ${r.text}`);
    names.push(name);
  }
  return names;
}

// Until etcd holds `total` tasks and nothing has been written for `quietMs`
// (the scheduler has written its "no suitable node" message on each).
export async function waitForQuietTasks(h: ShoalHandle, total: number, timeoutMs: number, quietMs = 3000): Promise<void> {
  let lastRev = 0;
  let since = Date.now();
  await waitFor(`${total} tasks in etcd, quiet`, async () => {
    const { kvs, revision } = await etcdDump(h, '/shoal/v1/o/tasks/');
    if (revision !== lastRev) { lastRev = revision; since = Date.now(); }
    return kvs.length === total && Date.now() - since >= quietMs;
  }, timeoutMs, 1000);
}

// Until the daemon answers `service ls` (the API) with every service and
// `service ps` with all tasks of the first and the last (the store loads one
// consistent snapshot, all or nothing; listing every service on each poll
// would cost more than the load). Returns the time it took.
export async function waitServing(h: ShoalHandle, names: string[], replicas: number, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  await waitFor('the daemon to serve every service and task', async () => {
    const r = await h.api('GET', '/v1.41/services', undefined, { timeoutMs: 10_000 });
    if (r.status !== 200 || (r.json as unknown[]).length < names.length) return false;
    for (const n of new Set([names[0]!, names[names.length - 1]!])) if (await serviceTaskCount(h, n) !== replicas) return false;
    return true;
  }, timeoutMs, 200);
  return Date.now() - t0;
}
