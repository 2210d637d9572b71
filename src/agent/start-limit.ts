import type { ContainerCreate } from './executor/container-config';
import type { ContainerEvent, ContainerInfo, Executor } from './executor/executor';
import type { NodeDescription } from '../model/types';

// How many container creates and starts the agent has in flight on its
// engine at once. dockerd does them partly one at a time (its container
// store, the network sandbox, containerd): past a few in parallel more only
// queue inside the engine and contend for its locks, so fifty at once finish
// later than ten at a time. Stops and removals are not limited: each mostly
// waits out a grace period.
export const START_CONCURRENCY = 10;

// A counting semaphore; waiters are served in arrival order.
export class Slots {
  private free: number;
  private readonly waiting: Array<() => void> = [];

  constructor(n: number) { this.free = Math.max(1, n); }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next(); else this.free++;
    }
  }
}

// The executor with creates and starts going through `slots`.
export class StartLimitedExecutor implements Executor {
  constructor(private readonly inner: Executor, private readonly slots: Slots) {}

  describeNode(): Promise<NodeDescription> { return this.inner.describeNode(); }
  ensureImage(image: string, registryAuth?: string): Promise<void> { return this.inner.ensureImage(image, registryAuth); }
  create(config: ContainerCreate): Promise<string> { return this.slots.run(() => this.inner.create(config)); }
  start(containerId: string): Promise<void> { return this.slots.run(() => this.inner.start(containerId)); }
  stop(containerId: string, graceSeconds: number): Promise<void> { return this.inner.stop(containerId, graceSeconds); }
  remove(containerId: string): Promise<void> { return this.inner.remove(containerId); }
  inspect(containerId: string): Promise<ContainerInfo | undefined> { return this.inner.inspect(containerId); }
  listTaskContainers(nodeId?: string): Promise<ContainerInfo[]> { return this.inner.listTaskContainers(nodeId); }
  watchEvents(listener: (e: ContainerEvent) => void): { ready: Promise<void>; close(): void } { return this.inner.watchEvents(listener); }
}
