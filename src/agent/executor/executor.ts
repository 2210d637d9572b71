import type { NodeDescription, PortConfig } from '../../model/types';
import type { ContainerCreate } from './container-config';

// What the agent needs from a container runtime. DockerExecutor implements it
// against dockerd; unit tests inject a fake.

// A task's container as the engine sees it.
export interface ContainerInfo {
  id: string;
  taskId: string;
  name: string;
  running: boolean;
  pid: number;
  exitCode: number;
  startedAt?: string;
  health?: string;       // 'starting' | 'healthy' | 'unhealthy' when a health check is set
  ports?: PortConfig[];  // its host-mode published ports as bound (from inspect)
}

// What the engine's event stream reports about task containers. `resync` means
// events may have been missed (the stream broke and came back): re-inspect.
export type ContainerEvent =
  | { type: 'die'; containerId: string; taskId: string; exitCode: number }
  | { type: 'health_status'; containerId: string; taskId: string; status: string }
  | { type: 'destroy'; containerId: string; taskId: string }
  | { type: 'oom'; containerId: string; taskId: string }
  | { type: 'resync' };

export interface Executor {
  describeNode(): Promise<NodeDescription>;
  // Pulls through the engine when the image is not present, with the
  // service's registry credentials (X-Registry-Auth) when it has them. A pull
  // the engine refuses is logged, not thrown (Docker's swarm executor): the
  // create that follows then fails with the engine's "No such image: …".
  ensureImage(image: string, registryAuth?: string): Promise<void>;
  // Creates the container; if one of that name exists for the same task, returns it.
  create(config: ContainerCreate): Promise<string>;
  start(containerId: string): Promise<void>;
  // Stops with the grace period, then the engine kills. Gone or stopped is fine.
  stop(containerId: string, graceSeconds: number): Promise<void>;
  // Force-removes with anonymous volumes. Gone is fine.
  remove(containerId: string): Promise<void>;
  // undefined when the container does not exist.
  inspect(containerId: string): Promise<ContainerInfo | undefined>;
  // Containers carrying the task label, of this node only when nodeId is given.
  listTaskContainers(nodeId?: string): Promise<ContainerInfo[]>;
  // One engine event stream shared by all subscribers; `ready` resolves once it
  // is connected, so nothing that happens after it can be missed.
  watchEvents(listener: (e: ContainerEvent) => void): { ready: Promise<void>; close(): void };
}

// Errors from the executor say whether trying again may help (the engine was
// unreachable) or the task must fail (the engine refused).
export class ExecutorError extends Error {
  constructor(message: string, readonly temporary: boolean, readonly statusCode?: number) {
    super(message);
    this.name = 'ExecutorError';
  }
}

export function isTemporary(err: unknown): boolean {
  return err instanceof ExecutorError && err.temporary;
}
