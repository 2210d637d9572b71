// The engine's own limit for the bench workload: the same containers created
// and started straight through dockerd's API, with no swarm layer at all, at
// the concurrency Shoal's agent uses, on the same dockerd Shoal runs on. The
// ratio Shoal/engine is how much the swarm layer costs on top of the work the
// engine has to do anyway.
import { http, httpOk } from './util';

export const ENGINE_LABEL = 'shoal.bench.engine';

export interface EngineWorkload {
  socket: string;
  name: string;           // container name prefix
  image: string;
  args: string[];
  concurrency: number;    // creates+starts in flight at once
  graceSeconds: number;   // stop grace period, as a task's (Docker's default 10 s)
}

// Runs `fn` over `items` with at most `limit` at a time; the first error fails the lot.
export async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i + 1);

// What the agent sends for a task of that spec (container-config.ts): image,
// args, labels, no restart policy.
async function create(w: EngineWorkload, slot: number): Promise<string> {
  const name = `${w.name}.${slot}`;
  const body = { Image: w.image, Cmd: w.args, Labels: { [ENGINE_LABEL]: '1', [`${ENGINE_LABEL}.run`]: w.name }, HostConfig: { RestartPolicy: { Name: 'no' } } };
  const c = await httpOk(w.socket, 'POST', `/v1.41/containers/create?name=${encodeURIComponent(name)}`, body);
  return (c.json as { Id: string }).Id;
}

async function start(w: EngineWorkload, id: string): Promise<void> {
  const s = await http(w.socket, 'POST', `/v1.41/containers/${id}/start`);
  if (s.status !== 204 && s.status !== 304) throw new Error(`start ${id}: ${s.status} ${s.text.trim()}`);
}

// The agent's order: a service's tasks all reach `preparing` (create) before
// any reaches `starting`, and creates and starts share its slots; so here all
// the creates, then all the starts, `concurrency` at a time.
async function createAndStartAll(w: EngineWorkload, slots: number[], ids: string[]): Promise<void> {
  const made: string[] = [];
  await pool(slots, w.concurrency, async (slot) => { const id = await create(w, slot); made.push(id); ids.push(id); });
  await pool(made, w.concurrency, (id) => start(w, id));
}

// Stop with the grace period, then remove: what the agent does when a service goes.
async function stopAndRemove(w: EngineWorkload, id: string): Promise<void> {
  await http(w.socket, 'POST', `/v1.41/containers/${id}/stop?t=${w.graceSeconds}`, undefined, (w.graceSeconds + 30) * 1000);
  const r = await http(w.socket, 'DELETE', `/v1.41/containers/${id}?force=1&v=1`);
  if (r.status !== 204 && r.status !== 404) throw new Error(`remove ${id}: ${r.status} ${r.text.trim()}`);
}

export interface EngineTimes { create: number; scale: number; remove: number }

// create N (all started), then M - N more, then stop and remove all; seconds.
export async function engineRun(w: EngineWorkload, replicas: number, scaleTo: number): Promise<EngineTimes> {
  const ids: string[] = [];
  try {
    let t0 = performance.now();
    await createAndStartAll(w, range(0, replicas), ids);
    const created = (performance.now() - t0) / 1000;
    t0 = performance.now();
    await createAndStartAll(w, range(replicas, scaleTo), ids);
    const scale = (performance.now() - t0) / 1000;
    t0 = performance.now();
    // All at once, as the agent stops a removed service's tasks (each waits out its grace period).
    await pool([...ids], ids.length, (id) => stopAndRemove(w, id));
    ids.length = 0;
    return { create: created, scale, remove: (performance.now() - t0) / 1000 };
  } finally {
    if (ids.length) await removeEngineContainers(w.socket);
  }
}

// Force-removes whatever an engine run left (a failure, ctrl-c).
export async function removeEngineContainers(socket: string): Promise<void> {
  const r = await http(socket, 'GET', `/v1.41/containers/json?all=1&filters=${encodeURIComponent(JSON.stringify({ label: [ENGINE_LABEL] }))}`);
  if (r.status !== 200) return;
  await pool(r.json as Array<{ Id: string }>, 10, async (c) => { await http(socket, 'DELETE', `/v1.41/containers/${c.Id}?force=1&v=1`); });
}
