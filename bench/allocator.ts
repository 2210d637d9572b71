import type { Service, Task } from '../src/model/types';
import { AllocatorCore } from '../src/manager/allocator/core';
import { makeNetwork, svc, task } from '../test/unit/allocator/fixtures';

// Throughput of the pure allocator (manager/allocator/core.ts): T new tasks
// of one service attached to K networks, each given an address per network
// and moved to `pending`, one after the other as the loop does (decide, then
// observe the written task). Networks are /14s so that no pool runs out.
// Wall time and this process's CPU time are both printed: on a loaded
// machine the first is the waiting, the second the allocator's own cost.
// Run: node dist/bench/allocator.js [--quick]

export interface AllocatorBenchResult { tasks: number; networks: number; ms: number; cpuMs: number; tasksPerSec: number; heapMB: number }

const NOW = '2026-12-02T00:00:00.000Z';

export function runAllocatorBench(taskCount: number, networkCount: number): AllocatorBenchResult {
  const core = new AllocatorCore();
  const nets: string[] = [];
  for (let i = 0; i < networkCount; i++) {
    const d = core.allocateNetwork(makeNetwork(`net${i}`, { subnet: `10.${64 + 4 * i}.0.0/14` }));
    if (!d.ok || !d.next) throw new Error(`network ${i}: ${d.ok ? 'no decision' : d.error}`);
    core.observeNetwork(d.next.ID, d.next);
    nets.push(d.next.ID);
  }
  let service: Service = svc('bench', { networks: nets });
  core.observeService(service.ID, service);
  const s = core.allocateService(service);
  if (!s.ok) throw new Error(s.error);
  service = s.next ?? service;
  core.observeService(service.ID, service);
  const tasks: Task[] = Array.from({ length: taskCount }, (_, i) => task(service, { id: `task${i}` }));
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  for (const t of tasks) {
    const d = core.allocateTask(t, service, NOW);
    if (!d.ok || !d.next) throw new Error(`task ${t.ID}: ${d.ok ? 'no decision' : d.error}`);
    core.observeTask(t.ID, d.next);
  }
  const ms = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return { tasks: taskCount, networks: networkCount, ms, cpuMs: (c.user + c.system) / 1000, tasksPerSec: taskCount / (ms / 1000), heapMB: process.memoryUsage().heapUsed / 1024 ** 2 };
}

function main(): void {
  const quick = process.argv.includes('--quick');
  const cases: Array<[number, number]> = quick ? [[5_000, 2]] : [[5_000, 2], [150_000, 1], [150_000, 2]];
  for (const [t, k] of cases) {
    const r = runAllocatorBench(t, k);
    console.log(`allocator: ${r.tasks.toLocaleString('en')} tasks on ${r.networks} network(s): ${r.ms.toFixed(0)} ms (CPU ${r.cpuMs.toFixed(0)} ms: the machine's load shows as the gap), ${Math.round(r.tasksPerSec).toLocaleString('en')} tasks/s, heap ${r.heapMB.toFixed(0)} MB`);
  }
}

if (require.main === module) main();
