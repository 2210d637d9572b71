import type { NodeDescription } from '../model/types';
import { TASK_ID_LABEL, type ContainerCreate } from '../agent/executor/container-config';
import { ExecutorError, type ContainerEvent, type ContainerInfo, type Executor } from '../agent/executor/executor';

// A container runtime that only pretends: containers are records in memory
// that start at once and run until stopped. It lets one process act as many
// nodes (issue 10's scale figures) with the real agent, session, heartbeats
// and status reports, and no engine behind them.
//
// Each call answers on a later turn of the event loop, as an engine's answer
// comes back over its socket. With answers in the same turn (microtasks only),
// the tasks of a big assignment ran through their lifecycles without letting
// timers run: at 5,000 nodes the simulators' loops stalled 10-35 s and 1,511
// nodes went down in the 80 s after `service create`; answering on later
// turns, 45 in the same 80 s (bench/scale.ts).
//
// And at most ANSWERS_PER_TURN answers per turn, for all the nodes of the
// process: otherwise the 37,500 tasks a process gets from one create are all
// answered in the one turn after, with their agents' work, while the
// heartbeat timers of its 1,250 nodes wait. An engine has a bounded rate too.
const ANSWERS_PER_TURN = 64;

class EngineTurns {
  private waiting: Array<() => void> = [];
  private head = 0;
  private scheduled = false;

  next(): Promise<void> {
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      if (!this.scheduled) { this.scheduled = true; setImmediate(this.pump); }
    });
  }

  private readonly pump = (): void => {
    const end = Math.min(this.waiting.length, this.head + ANSWERS_PER_TURN);
    for (; this.head < end; this.head++) this.waiting[this.head]!();
    if (this.head === this.waiting.length) { this.waiting = []; this.head = 0; this.scheduled = false; return; }
    if (this.head > 4096) { this.waiting = this.waiting.slice(this.head); this.head = 0; }
    setImmediate(this.pump);
  };
}

const turns = new EngineTurns();
const engineTurn = (): Promise<void> => turns.next();

interface SimContainer extends ContainerInfo { image: string }

export interface SimNodeFacts { hostname: string; nanoCPUs: number; memoryBytes: number }

export class SimExecutor implements Executor {
  private readonly containers = new Map<string, SimContainer>();
  private readonly listeners = new Set<(e: ContainerEvent) => void>();
  private seq = 0;

  constructor(private readonly facts: SimNodeFacts) {}

  get running(): number {
    let n = 0;
    for (const c of this.containers.values()) if (c.running) n++;
    return n;
  }

  async describeNode(): Promise<NodeDescription> {
    await engineTurn();
    return {
      Hostname: this.facts.hostname,
      Platform: { Architecture: 'x86_64', OS: 'linux' },
      Resources: { NanoCPUs: this.facts.nanoCPUs, MemoryBytes: this.facts.memoryBytes },
      Engine: { EngineVersion: 'shoal-sim', Labels: { 'io.shoal.simulated': 'true' }, Plugins: [] },
      TLSInfo: {},
    };
  }

  async ensureImage(): Promise<void> { await engineTurn(); /* every image is present */ }

  async create(config: ContainerCreate): Promise<string> {
    await engineTurn();
    const taskId = config.body.Labels[TASK_ID_LABEL];
    if (!taskId) throw new ExecutorError('simulated engine: a task container needs its task label', false, 400);
    for (const c of this.containers.values()) if (c.name === config.name && c.taskId === taskId) return c.id;
    const id = `sim${(++this.seq).toString(16).padStart(12, '0')}`;
    this.containers.set(id, { id, taskId, name: config.name, running: false, pid: 0, exitCode: 0, image: String(config.body.Image ?? '') });
    return id;
  }

  async start(id: string): Promise<void> {
    await engineTurn();
    const c = this.get(id);
    c.running = true;
    c.pid = 1;
    c.startedAt = new Date().toISOString();
  }

  async stop(id: string): Promise<void> {
    await engineTurn();
    const c = this.containers.get(id);
    if (!c?.running) return;
    c.running = false;
    c.exitCode = 0;
    this.emit({ type: 'die', containerId: id, taskId: c.taskId, exitCode: 0 });
  }

  async remove(id: string): Promise<void> {
    await engineTurn();
    const c = this.containers.get(id);
    if (!c) return;
    this.containers.delete(id);
    this.emit({ type: 'destroy', containerId: id, taskId: c.taskId });
  }

  async inspect(id: string): Promise<ContainerInfo | undefined> {
    await engineTurn();
    const c = this.containers.get(id);
    return c ? { ...c } : undefined;
  }

  async listTaskContainers(): Promise<ContainerInfo[]> {
    await engineTurn();
    return [...this.containers.values()].map((c) => ({ ...c }));
  }

  watchEvents(listener: (e: ContainerEvent) => void): { ready: Promise<void>; close(): void } {
    this.listeners.add(listener);
    return { ready: Promise.resolve(), close: () => { this.listeners.delete(listener); } };
  }

  private get(id: string): SimContainer {
    const c = this.containers.get(id);
    if (!c) throw new ExecutorError(`No such container: ${id}`, false, 404);
    return c;
  }

  // Events are delivered after the call that caused them returns, as the engine's stream does.
  private emit(e: ContainerEvent): void {
    for (const l of this.listeners) queueMicrotask(() => l(e));
  }
}
