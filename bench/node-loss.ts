// `node dist/bench/node-loss.js`: what a burst of lost nodes costs the
// leader's control loops, in-process (issue 10). A memory store holds N ready
// nodes and one service of T running tasks spread over them; the orchestrator,
// scheduler and allocator start on it; then D nodes are marked down in one
// go, and the bench reports the longest the event loop was held (a ticker's
// lateness) and the time until every replacement is placed on a ready node.
//
// Why: on a real leader a hold past the lease's margin (about 3.5 s) loses
// the leadership, and the next leader meets the same work (bench/scale.ts,
// docs/SCALE.md). The dispatcher marks at most a tenth of the nodes down per
// allowance (dispatcher/liveness.ts takeExpired), so D = N/10 is what a
// leader meets at once; larger D shows what is left to make yield.
// The memory store applies its watch synchronously, so the hold includes the
// mirror's work that etcd would spread over several callbacks: an upper bound.
//
//   node dist/bench/node-loss.js [--nodes 1000] [--tasks 30000] [--down 100,750] [--json FILE]
import { parseArgs } from 'node:util';
import { silentLogger } from '../src/common/log';
import { nowIso } from '../src/common/time';
import type { ClusterObject } from '../src/store/objects';
import { MemoryBackend } from '../src/store/memory-backend';
import { commitInBatches, Store, type StoreTxn } from '../src/store/store';
import { startOrchestrator } from '../src/manager/orchestrator/loop';
import { startScheduler } from '../src/manager/scheduler/loop';
import { startAllocator } from '../src/manager/allocator/loop';
import { makeNode, makeService } from '../test/unit/orchestrator/fixtures';
import { makeTask } from '../test/unit/agent/fakes';
import { finishBench, positiveOption, runBenchMain } from './util';

const TICK_MS = 10;
const DEADLINE_MS = 300_000;

interface Step { down: number; worstHoldMs: number; placedMs: number; startHoldMs: number }

async function step(nodes: number, tasks: number, down: number): Promise<Step> {
  const store = await Store.open(new MemoryBackend(), silentLogger);
  const svc = makeService('scale', { replicas: tasks, image: 'img:1' });
  const now = nowIso(Date.now());
  const cluster = {
    ID: 'bench', Version: { Index: 0 }, CreatedAt: now, UpdatedAt: now,
    Spec: { Orchestration: { TaskHistoryRetentionLimit: 5 }, Dispatcher: {} }, TLSInfo: {}, RootRotationInProgress: false,
    DefaultAddrPool: [], SubnetSize: 24, DataPathPort: 4789, JoinTokens: { Worker: 'w', Manager: 'm' },
  } as unknown as ClusterObject;
  const writes: Array<(t: StoreTxn) => void> = [(t) => t.create('cluster', cluster), (t) => t.create('services', svc)];
  for (let i = 0; i < nodes; i++) writes.push((t) => t.create('nodes', makeNode(`n${i}`)));
  for (let i = 0; i < tasks; i++) {
    writes.push((t) => t.create('tasks', makeTask(`t${i}`, {
      ServiceID: svc.ID, Slot: i + 1, NodeID: `n${i % nodes}`, Spec: svc.Spec.TaskTemplate!,
      Status: { Timestamp: now, State: 'running', Message: 'started' }, DesiredState: 'running',
    })));
  }
  await commitInBatches(store, writes);

  let last = Date.now();
  let worst = 0;
  const ticker = setInterval(() => { const t = Date.now(); worst = Math.max(worst, t - last - TICK_MS); last = t; }, TICK_MS);
  const components = [startOrchestrator({ store, log: silentLogger }), startScheduler({ store, log: silentLogger }), startAllocator({ store, log: silentLogger })];
  try {
    const wait = async (done: () => boolean): Promise<number> => {
      const t0 = Date.now();
      while (!done()) {
        if (Date.now() - t0 > DEADLINE_MS) throw new Error(`not settled within ${DEADLINE_MS} ms`);
        await new Promise((r) => setTimeout(r, 50));
      }
      return Date.now() - t0;
    };
    // The components' first pass over a settled store.
    await new Promise((r) => setTimeout(r, 2000));
    const startHoldMs = worst;
    worst = 0;
    const downs: Array<(t: StoreTxn) => void> = [];
    for (let i = 0; i < down; i++) {
      downs.push((t) => { const n = structuredClone(store.get('nodes', `n${i}`)!); n.Status = { ...n.Status, State: 'down' }; t.update('nodes', n); });
    }
    await commitInBatches(store, downs);
    const placed = (): boolean => {
      let ok = 0;
      for (const t of store.tasksOfService(svc.ID)) if (t.DesiredState === 'running' && t.NodeID && store.get('nodes', t.NodeID)!.Status.State !== 'down') ok++;
      return ok >= tasks;
    };
    const placedMs = await wait(placed);
    return { down, worstHoldMs: worst, placedMs, startHoldMs };
  } finally {
    clearInterval(ticker);
    for (const c of components) c.stop();
    await store.close();
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({ strict: true, options: { nodes: { type: 'string' }, tasks: { type: 'string' }, down: { type: 'string' }, json: { type: 'string' } } });
  const nodes = positiveOption(values.nodes, 1000, 'nodes');
  const tasks = positiveOption(values.tasks, 30 * nodes, 'tasks');
  const downs = (values.down ?? `${Math.ceil(nodes / 10)},${Math.floor(nodes * 0.75)}`).split(',').map((x) => {
    const n = Number(x);
    if (!Number.isInteger(n) || n <= 0 || n > nodes) throw new Error(`--down wants whole numbers from 1 to --nodes, got "${x}"`);
    return n;
  });
  const steps: Step[] = [];
  let error: string | undefined;
  try {
    for (const d of downs) {
      const s = await step(nodes, tasks, d);
      process.stderr.write(`[node-loss] ${d} of ${nodes} nodes down: loop held ${s.worstHoldMs} ms at most, every task placed again in ${s.placedMs} ms\n`);
      steps.push(s);
    }
  } catch (err) { error = (err as Error).message; }
  const rows = steps.map((s) => `| ${nodes} | ${tasks} | ${s.down} | ${s.startHoldMs} ms | ${s.worstHoldMs} ms | ${s.placedMs} ms |`);
  const report = [
    `In-process leader components (orchestrator, scheduler, allocator) on a memory store${error ? ` (failed: ${error})` : ''}.`,
    '',
    '| nodes | tasks | nodes down at once | longest hold, first pass | longest hold after the loss | all replacements placed |',
    '|---|---|---|---|---|---|',
    ...rows,
  ].join('\n');
  return finishBench(report, values.json, { options: { nodes, tasks, downs }, shoal: { ...(error ? { error } : {}), steps } as { error?: string } });
}

runBenchMain(main);
