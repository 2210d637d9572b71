import type { Node, Task, TaskSpec } from '../src/model/types';
import { schedule } from '../src/manager/scheduler/scheduler';

// Placement throughput of the pure scheduler: N simulated nodes (10 zones,
// two thirds with an SSD label), T pending tasks of one service constrained
// to SSD nodes and spread over zones, all placed in one call, as SwarmKit's
// BenchmarkScheduler* do. Run: node dist/bench/scheduler.js [--quick]

export interface BenchResult { nodes: number; tasks: number; ms: number; tasksPerSec: number; placed: number; heapMB: number }

function makeNodes(n: number): Node[] {
  const nodes: Node[] = new Array(n);
  for (let i = 0; i < n; i++) {
    nodes[i] = {
      ID: `node${String(i).padStart(6, '0')}`, Version: { Index: 1 }, CreatedAt: '', UpdatedAt: '',
      Spec: { Role: 'worker', Availability: 'active', Labels: { zone: `zone${i % 10}`, disk: i % 3 ? 'ssd' : 'hdd' } },
      Description: {
        Hostname: `host${i}`, Platform: { Architecture: 'x86_64', OS: 'linux' },
        Resources: { NanoCPUs: 64e9, MemoryBytes: 256 * 1024 ** 3 },
        Engine: { EngineVersion: '20.10.24', Plugins: [] }, TLSInfo: {},
      },
      Status: { State: 'ready', Addr: `10.0.${(i >> 8) & 255}.${i & 255}` },
    };
  }
  return nodes;
}

function makeTasks(n: number): Task[] {
  // Distinct spec objects per task, as tasks read from the store have.
  const spec = (): TaskSpec => ({
    ContainerSpec: { Image: 'nginx:1' },
    Placement: { Constraints: ['node.labels.disk==ssd'], Preferences: [{ Spread: { SpreadDescriptor: 'node.labels.zone' } }] },
  });
  const tasks: Task[] = new Array(n);
  for (let i = 0; i < n; i++) {
    tasks[i] = {
      ID: `task${i}`, Version: { Index: 1 }, CreatedAt: '', UpdatedAt: '', Labels: {}, Spec: spec(), ServiceID: 'bench',
      Slot: i + 1, Status: { Timestamp: '', State: 'pending', Message: '' }, DesiredState: 'running',
    };
  }
  return tasks;
}

export function runSchedulerBench(nodeCount: number, taskCount: number): BenchResult {
  const nodes = makeNodes(nodeCount);
  const tasks = makeTasks(taskCount);
  const t0 = performance.now();
  const r = schedule({ nodes, tasks });
  const ms = performance.now() - t0;
  if (r.failures.length) throw new Error(`unexpected failures: ${r.failures[0]!.message}`);
  return { nodes: nodeCount, tasks: taskCount, ms, tasksPerSec: taskCount / (ms / 1000), placed: r.assignments.length, heapMB: process.memoryUsage().heapUsed / 1024 ** 2 };
}

function main(): void {
  const quick = process.argv.includes('--quick');
  const cases: Array<[number, number]> = quick ? [[1_000, 100_000]] : [[1_000, 1_000], [1_000, 100_000], [10_000, 1_000_000]];
  for (const [n, t] of cases) {
    const r = runSchedulerBench(n, t);
    console.log(`scheduler: ${r.tasks.toLocaleString('en')} tasks on ${r.nodes.toLocaleString('en')} nodes (constraint + spread): ${r.ms.toFixed(0)} ms, ${Math.round(r.tasksPerSec).toLocaleString('en')} tasks/s, placed ${r.placed.toLocaleString('en')}, heap ${r.heapMB.toFixed(0)} MB`);
  }
}

if (require.main === module) main();
