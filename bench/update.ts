// Rolling-update bench: the same update on Shoal and on real Docker Swarm, in
// one run, on this machine; prints both medians and the ratio Shoal/Docker.
//
//   node dist/bench/update.js [--runs 3] [--only shoal|docker] [--replicas 50] [--parallelism 10]
//                             [--deadline 300] [--json FILE] [--docker-offline-images]
//
// Each run: create a service of N replicas of shoal-test/busybox:1 running a
// `sleep` that exits on SIGTERM, wait until N run (not timed), then update it
// to shoal-test/busybox:2 (a second tag of the same image) with Parallelism
// 10, Delay 0, Order start-first, and time from the update request until
//   new      all N running tasks run the new image (polled every 100 ms like the CLI), and
//   done     UpdateStatus says completed (that includes the 5 s Monitor period).
// Then the service is removed (not timed). Shoal runs on the host's dockerd
// through the test harness; Docker Swarm on a second dockerd in its own network
// namespace (bench/docker-host.ts). Everything is removed at the end, also on
// failure or ctrl-c.
import { parseArgs } from 'node:util';
import { runDocker, HOST_ENGINE_SOCKET } from '../test/helpers/daemon';
import { ensureBusyboxImage } from '../test/helpers/images';
import { startBenchDockerd } from './docker-host';
import { removeBenchServices, removeService, withShoalSwarm, waitContainersGone, type SwarmTarget } from './workload';
import { finishBench, runBenchMain, positiveOption, sideOption, http, httpOk, installSignalCleanup, median, onCleanup, pipeHttp, sleep } from './util';

const IMG1 = 'shoal-test/busybox:1';
const IMG2 = 'shoal-test/busybox:2';
const SLEEP = ['sh', '-c', 'trap "exit 0" TERM; sleep 3600 & wait'];
const POLL_MS = 100;
const q = (o: unknown) => encodeURIComponent(JSON.stringify(o));
const say = (s: string) => process.stderr.write(`[bench] ${s}\n`);

interface Options { runs: number; only?: 'shoal' | 'docker'; replicas: number; parallelism: number; deadlineMs: number; json?: string; dockerOfflineImages: boolean }
interface RunTimes { allNew: number; completed: number }
interface SideResult { runs: RunTimes[]; error?: string }

function options(): Options {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string' }, only: { type: 'string' }, replicas: { type: 'string' }, parallelism: { type: 'string' },
      deadline: { type: 'string' }, json: { type: 'string' }, 'docker-offline-images': { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write('usage: node dist/bench/update.js [--runs 3] [--only shoal|docker] [--replicas 50] [--parallelism 10] [--deadline SECONDS] [--json FILE] [--docker-offline-images]\n');
    process.exit(0);
  }
  const num = positiveOption;
  return {
    runs: Math.round(num(values.runs, 3, 'runs')),
    only: sideOption(values.only),
    replicas: Math.round(num(values.replicas, 50, 'replicas')),
    parallelism: Math.round(num(values.parallelism, 10, 'parallelism')),
    deadlineMs: num(values.deadline, 300, 'deadline') * 1000,
    json: values.json,
    dockerOfflineImages: values['docker-offline-images'] ?? false,
  };
}

interface TaskView { DesiredState?: string; Status?: { State?: string }; Spec?: { ContainerSpec?: { Image?: string } } }

// Running tasks (desired running) on `image`, as the CLI's poll would see them.
async function runningOn(t: SwarmTarget, serviceId: string, image: string): Promise<{ onImage: number; running: number }> {
  await httpOk(t.apiSocket, 'GET', `/v1.41/services/${serviceId}?insertDefaults=false`);
  const r = await httpOk(t.apiSocket, 'GET', `/v1.41/tasks?filters=${q({ service: { [serviceId]: true }, 'desired-state': { running: true } })}`);
  const ts = (r.json as TaskView[]).filter((x) => x.Status?.State === 'running');
  // Docker pins the image by digest when it can resolve one; compare the name only.
  return { running: ts.length, onImage: ts.filter((x) => (x.Spec?.ContainerSpec?.Image ?? '').split('@')[0] === image).length };
}

async function waitUntilTrue(what: string, deadlineMs: number, fn: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    if (await fn()) return;
    if (Date.now() >= deadline) throw new Error(`${what}: not reached after ${deadlineMs / 1000} s`);
    await sleep(POLL_MS);
  }
}

async function oneRun(t: SwarmTarget, name: string, o: Options): Promise<RunTimes> {
  const spec = {
    Name: name,
    Labels: { 'shoal.bench': '1' },
    TaskTemplate: { ContainerSpec: { Image: IMG1, Args: SLEEP }, RestartPolicy: { Condition: 'any', Delay: 1e9 } },
    Mode: { Replicated: { Replicas: o.replicas } },
    UpdateConfig: { Parallelism: o.parallelism, Delay: 0, FailureAction: 'pause', Monitor: 5e9, MaxFailureRatio: 0, Order: 'start-first' },
  };
  const c = await http(t.apiSocket, 'POST', '/v1.41/services/create', spec);
  if (c.status !== 201 && c.status !== 200) throw new Error(`service create ${name}: ${c.status} ${c.text.trim()}`);
  const id = (c.json as { ID: string }).ID;
  try {
    await waitUntilTrue(`${o.replicas} running on ${IMG1}`, o.deadlineMs, async () => (await runningOn(t, id, IMG1)).onImage === o.replicas);

    const cur = (await httpOk(t.apiSocket, 'GET', `/v1.41/services/${id}?insertDefaults=false`)).json as { Version: { Index: number }; Spec: typeof spec };
    cur.Spec.TaskTemplate.ContainerSpec.Image = IMG2;
    const t0 = performance.now();
    await httpOk(t.apiSocket, 'POST', `/v1.41/services/${id}/update?version=${cur.Version.Index}`, cur.Spec);
    let allNew = 0;
    await waitUntilTrue(`${o.replicas} running on ${IMG2}`, o.deadlineMs, async () => {
      const r = await runningOn(t, id, IMG2);
      if (r.onImage === o.replicas && r.running === o.replicas) { allNew = (performance.now() - t0) / 1000; return true; }
      return false;
    });
    let state = '';
    await waitUntilTrue('UpdateStatus completed', o.deadlineMs, async () => {
      const s = (await httpOk(t.apiSocket, 'GET', `/v1.41/services/${id}`)).json as { UpdateStatus?: { State?: string; Message?: string } };
      state = s.UpdateStatus?.State ?? '';
      if (state === 'paused' || state === 'rollback_started') throw new Error(`update ${state}: ${s.UpdateStatus?.Message}`);
      return state === 'completed';
    });
    return { allNew, completed: (performance.now() - t0) / 1000 };
  } finally {
    await removeService(t, id);
    await waitContainersGone(t, id, o.deadlineMs).catch(() => undefined);
  }
}

async function runSide(side: string, target: SwarmTarget, o: Options, res: SideResult): Promise<void> {
  for (let i = 1; i <= o.runs; i++) {
    const r = await oneRun(target, `bench-update-${side}-${i}`, o);
    res.runs.push(r);
    say(`${side} run ${i}/${o.runs}: all ${o.replicas} on the new image after ${r.allNew.toFixed(2)} s, UpdateStatus completed after ${r.completed.toFixed(2)} s`);
    await sleep(1000);
  }
}

async function benchShoal(o: Options): Promise<SideResult> {
  const res: SideResult = { runs: [] };
  say('Shoal: starting a daemon on the host dockerd');
  await withShoalSwarm(async (h, target) => {
    await runSide('shoal', target, o, res);
  });
  return res;
}

async function benchDocker(o: Options): Promise<SideResult> {
  const res: SideResult = { runs: [] };
  say(`Docker Swarm: starting a second dockerd in its own network namespace${o.dockerOfflineImages ? ' (DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1)' : ''}`);
  const d = await startBenchDockerd({ env: o.dockerOfflineImages ? { DOCKER_SERVICE_PREFER_OFFLINE_IMAGE: '1' } : {} });
  const unregister = onCleanup('bench dockerd', d.stop);
  const target: SwarmTarget = { apiSocket: d.socket, engineSocket: d.socket };
  try {
    const version = (await http(d.socket, 'GET', '/version')).json as { Version?: string };
    say(`Docker Swarm: dockerd ${version.Version ?? '?'} (pid ${d.pid}); loading ${IMG1} and ${IMG2}`);
    for (const img of [IMG1, IMG2]) await pipeHttp(HOST_ENGINE_SOCKET, `/images/${encodeURIComponent(img)}/get`, d.socket, '/images/load?quiet=1');
    const init = await runDocker(`unix://${d.socket}`, ['swarm', 'init', '--advertise-addr', d.addr], { timeoutMs: 60_000 });
    if (init.code !== 0) throw new Error(`docker swarm init on the bench dockerd failed: ${init.stderr.trim()}`);
    await runSide('docker', target, o, res);
  } finally {
    unregister();
    await removeBenchServices(target).catch(() => undefined);
    await d.stop();
  }
  return res;
}

function report(o: Options, shoal?: SideResult, docker?: SideResult): string {
  const med = (s: SideResult | undefined, f: (r: RunTimes) => number) => (s && s.runs.length ? median(s.runs.map(f)) : undefined);
  const fmt = (n?: number) => (n === undefined || Number.isNaN(n) ? '-' : `${n.toFixed(2)} s`);
  const ratio = (a?: number, b?: number) => (a !== undefined && b !== undefined && b > 0 ? (a / b).toFixed(2) : '-');
  const w = [52, 10, 10, 13];
  const line = (c: string[]) => c.map((x, i) => (i === 0 ? x.padEnd(w[i]!) : x.padStart(w[i]!))).join(' ');
  const out = [
    `\nRolling update, Shoal vs Docker Swarm (one node; ${o.replicas} replicas ${IMG1} -> ${IMG2}, parallelism ${o.parallelism}, delay 0, start-first; medians of ${o.runs} run(s))`,
    line(['step', 'Shoal', 'Docker', 'Shoal/Docker']),
    '-'.repeat(w.reduce((a, b) => a + b + 1, -1)),
  ];
  const rows: Array<[string, (r: RunTimes) => number]> = [
    [`update until all ${o.replicas} run the new image`, (r) => r.allNew],
    ['update until UpdateStatus completed (+ 5 s Monitor)', (r) => r.completed],
  ];
  for (const [name, f] of rows) out.push(line([name, fmt(med(shoal, f)), fmt(med(docker, f)), ratio(med(shoal, f), med(docker, f))]));
  out.push('');
  for (const [name, s] of [['Shoal', shoal], ['Docker', docker]] as const) {
    if (!s) continue;
    if (s.error) out.push(`${name}: FAILED: ${s.error}`);
    else out.push(`${name} runs (all new / completed, s): ${s.runs.map((r) => `${r.allNew.toFixed(2)}/${r.completed.toFixed(2)}`).join(', ')}`);
  }
  return out.join('\n');
}

async function main(): Promise<number> {
  const o = options();
  installSignalCleanup();
  await ensureBusyboxImage(HOST_ENGINE_SOCKET, IMG1);
  const [repo, tag] = IMG2.split(':') as [string, string];
  await httpOk(HOST_ENGINE_SOCKET, 'POST', `/images/${encodeURIComponent(IMG1)}/tag?repo=${encodeURIComponent(repo)}&tag=${tag}`);
  let shoal: SideResult | undefined;
  let docker: SideResult | undefined;
  const side = async (name: string, fn: (o: Options) => Promise<SideResult>): Promise<SideResult> => {
    try { return await fn(o); } catch (err) {
      say(`${name} half failed: ${(err as Error).message}`);
      return { runs: [], error: (err as Error).message.split('\n')[0] };
    }
  };
  if (o.only !== 'docker') shoal = await side('shoal', benchShoal);
  if (o.only !== 'shoal') {
    if (process.getuid?.() !== 0) docker = { runs: [], error: 'the Docker Swarm half needs root (network namespace, a second dockerd)' };
    else docker = await side('docker', benchDocker);
  }
  return finishBench(report(o, shoal, docker), o.json, { options: o, shoal, docker });
}

runBenchMain(main);
