// The bench workload, through the Engine API only (the same requests on
// Shoal and on Docker Swarm): create a replicated service, scale it, remove
// it, timing each step until the engine shows the result. Polls every 100 ms
// the way the CLI's progress loop does (GET /services/ID, GET /tasks), not
// the CLI's fixed verify wait.
import { startShoal, HOST_ENGINE_SOCKET, type ShoalHandle } from '../test/helpers/daemon';
import { http, httpOk, onCleanup, sleep } from './util';

export interface SwarmTarget {
  apiSocket: string;     // where the swarm API is served (Shoal's socket, or the bench dockerd)
  engineSocket: string;  // the engine that runs the task containers
}

const POLL_MS = 100;
const q = (o: unknown) => encodeURIComponent(JSON.stringify(o));

async function runningTasks(t: SwarmTarget, serviceId: string): Promise<number> {
  // Like the CLI's progress poll: the service first, then its tasks.
  await httpOk(t.apiSocket, 'GET', `/v1.41/services/${serviceId}?insertDefaults=false`);
  const r = await httpOk(t.apiSocket, 'GET', `/v1.41/tasks?filters=${q({ service: { [serviceId]: true }, 'desired-state': { running: true } })}`);
  return (r.json as Array<{ Status?: { State?: string } }>).filter((x) => x.Status?.State === 'running').length;
}

async function waitRunning(t: SwarmTarget, serviceId: string, n: number, deadlineMs: number, what: string): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  let last = -1;
  for (;;) {
    last = await runningTasks(t, serviceId);
    if (last === n) return;
    if (Date.now() >= deadline) throw new Error(`${what}: ${last} of ${n} tasks running after ${deadlineMs / 1000} s`);
    await sleep(POLL_MS);
  }
}

async function containerCount(engineSocket: string, serviceId: string): Promise<number> {
  const r = await httpOk(engineSocket, 'GET', `/v1.41/containers/json?all=1&filters=${q({ label: [`com.docker.swarm.service.id=${serviceId}`] })}`);
  return (r.json as unknown[]).length;
}

export async function createService(t: SwarmTarget, name: string, image: string, replicas: number): Promise<string> {
  const spec = {
    Name: name,
    Labels: { 'shoal.bench': '1' },
    TaskTemplate: { ContainerSpec: { Image: image, Args: ['sleep', '3600'] } },
    Mode: { Replicated: { Replicas: replicas } },
  };
  const r = await http(t.apiSocket, 'POST', '/v1.41/services/create', spec);
  if (r.status !== 201 && r.status !== 200) throw new Error(`service create ${name}: ${r.status} ${r.text.trim()}`);
  return (r.json as { ID: string }).ID;
}

export async function scaleService(t: SwarmTarget, serviceId: string, replicas: number): Promise<void> {
  const s = (await httpOk(t.apiSocket, 'GET', `/v1.41/services/${serviceId}?insertDefaults=false`)).json as { Version: { Index: number }; Spec: { Mode: { Replicated: { Replicas: number } } } };
  s.Spec.Mode.Replicated.Replicas = replicas;
  await httpOk(t.apiSocket, 'POST', `/v1.41/services/${serviceId}/update?version=${s.Version.Index}`, s.Spec);
}

export async function removeService(t: SwarmTarget, serviceId: string): Promise<void> {
  const r = await http(t.apiSocket, 'DELETE', `/v1.41/services/${serviceId}`);
  if (r.status !== 200 && r.status !== 204 && r.status !== 404) throw new Error(`service rm: ${r.status} ${r.text.trim()}`);
}

export async function waitContainersGone(t: SwarmTarget, serviceId: string, deadlineMs: number): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const n = await containerCount(t.engineSocket, serviceId);
    if (n === 0) return;
    if (Date.now() >= deadline) throw new Error(`service rm: ${n} containers still there after ${deadlineMs / 1000} s`);
    await sleep(POLL_MS);
  }
}

// Removes every service this bench made (label shoal.bench=1) and waits for their containers.
export async function removeBenchServices(t: SwarmTarget, deadlineMs = 120_000): Promise<void> {
  const r = await http(t.apiSocket, 'GET', `/v1.41/services?filters=${q({ label: { 'shoal.bench=1': true } })}`);
  if (r.status !== 200) return;
  for (const s of r.json as Array<{ ID: string }>) {
    await removeService(t, s.ID);
    await waitContainersGone(t, s.ID, deadlineMs).catch(() => undefined);
  }
}

export interface RunTimes {
  create: number; scale: number; remove: number; rssWithTasks: number;
  at: { create: [number, number]; scale: [number, number] }; // each step's request and result, epoch ms (for --trace)
}

// One run: create `replicas` → all running; scale to `scaleTo` → all running
// (then `measure()` the memory); remove → all containers gone. Seconds.
export async function oneRun(t: SwarmTarget, opts: { name: string; image: string; replicas: number; scaleTo: number; deadlineMs: number; settleMs: number; measure: () => number }): Promise<RunTimes> {
  const createAt = Date.now();
  let t0 = performance.now();
  const id = await createService(t, opts.name, opts.image, opts.replicas);
  await waitRunning(t, id, opts.replicas, opts.deadlineMs, `create ${opts.replicas}`);
  const create = (performance.now() - t0) / 1000;
  const created = Date.now();

  t0 = performance.now();
  await scaleService(t, id, opts.scaleTo);
  await waitRunning(t, id, opts.scaleTo, opts.deadlineMs, `scale to ${opts.scaleTo}`);
  const scale = (performance.now() - t0) / 1000;
  const scaled = Date.now();

  await sleep(opts.settleMs);
  const rssWithTasks = opts.measure();

  t0 = performance.now();
  await removeService(t, id);
  await waitContainersGone(t, id, opts.deadlineMs);
  const remove = (performance.now() - t0) / 1000;
  return { create, scale, remove, rssWithTasks, at: { create: [createAt, created], scale: [created, scaled] } };
}

// Runs `body` against a fresh Shoal daemon in a one-node swarm on the host's
// dockerd, and always tears it down (also on ctrl-c, through onCleanup).
export async function withShoalSwarm<T>(body: (h: ShoalHandle, target: SwarmTarget) => Promise<T>, logLevel = 'warn'): Promise<T> {
  const h = await startShoal({ hostname: 'bench-shoal', logLevel });
  const target: SwarmTarget = { apiSocket: h.socket, engineSocket: HOST_ENGINE_SOCKET };
  const teardown = async (): Promise<void> => {
    await removeBenchServices(target).catch(() => undefined);
    if (h.running()) await h.docker(['swarm', 'leave', '--force'], { timeoutMs: 60_000 });
    await h.cleanup();
  };
  const unregister = onCleanup('Shoal daemon', teardown);
  try {
    const init = await h.docker(['swarm', 'init'], { timeoutMs: 60_000 });
    if (init.code !== 0) throw new Error(`docker swarm init via Shoal failed: ${init.stderr.trim()}`);
    return await body(h, target);
  } finally {
    unregister();
    await teardown();
  }
}
