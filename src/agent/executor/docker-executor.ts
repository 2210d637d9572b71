import type Dockerode from 'dockerode';
import type { NodeDescription } from '../../api/types';
import type { Logger } from '../../common/log';
import { NODE_ID_LABEL, TASK_ID_LABEL, type ContainerCreate } from './container-config';
import { EngineEventStream } from './engine-events';
import { onJsonLines } from './json-lines';
import { ExecutorError, type ContainerEvent, type ContainerInfo, type Executor } from './executor';

// The agent's hands on the host's dockerd, through dockerode. Every engine
// error comes out as an ExecutorError carrying the engine's own message.
export class DockerExecutor implements Executor {
  private readonly events: EngineEventStream;
  private readonly pulls = new Map<string, Promise<void>>();

  constructor(readonly docker: Dockerode, private readonly log: Logger) {
    this.events = new EngineEventStream(docker, log);
  }

  async describeNode(): Promise<NodeDescription> {
    const info = await engine(() => this.docker.info()) as EngineInfo;
    return describeFromInfo(info);
  }

  async ensureImage(image: string): Promise<void> {
    if (!image) throw new ExecutorError('dockerexec: image required', false);
    try {
      await this.docker.getImage(image).inspect();
      return;
    } catch (err) {
      const e = toExecutorError(err);
      if (e.statusCode !== 404) throw e;
    }
    // One pull per image at a time, however many tasks want it.
    let pull = this.pulls.get(image);
    if (!pull) {
      pull = this.pull(image).finally(() => this.pulls.delete(image));
      this.pulls.set(image, pull);
    }
    await pull;
  }

  private async pull(image: string): Promise<void> {
    this.log.info({ image }, 'pulling image');
    const stream = await engine(() => this.docker.createImage({ fromImage: withDefaultTag(image) }));
    // The engine answers 200 and reports a failed pull inside the progress stream.
    await new Promise<void>((resolve, reject) => {
      let failure: string | undefined;
      onJsonLines(stream, (line) => {
        try {
          const msg = JSON.parse(line) as { error?: string; errorDetail?: { message?: string } };
          if (msg.error || msg.errorDetail) failure = msg.errorDetail?.message ?? msg.error;
        } catch { /* progress noise */ }
      });
      stream.on('error', (err: Error) => reject(new ExecutorError(err.message, true)));
      stream.on('end', () => (failure ? reject(new ExecutorError(failure, false)) : resolve()));
    });
  }

  async create(config: ContainerCreate): Promise<string> {
    try {
      const c = await this.docker.createContainer({ name: config.name, ...config.body } as Dockerode.ContainerCreateOptions);
      return c.id;
    } catch (err) {
      const e = toExecutorError(err);
      if (e.statusCode !== 409) throw e;
      // Created earlier by us (an agent restart between create and report).
      const existing = await this.inspect(config.name);
      if (existing && existing.taskId === config.body.Labels[TASK_ID_LABEL]) return existing.id;
      throw e;
    }
  }

  async start(containerId: string): Promise<void> {
    try {
      await this.docker.getContainer(containerId).start();
    } catch (err) {
      const e = toExecutorError(err);
      if (e.statusCode !== 304) throw e; // 304: already started
    }
  }

  async stop(containerId: string, graceSeconds: number): Promise<void> {
    try {
      await this.docker.getContainer(containerId).stop({ t: graceSeconds });
    } catch (err) {
      const e = toExecutorError(err);
      if (e.statusCode !== 304 && e.statusCode !== 404) throw e;
    }
  }

  async remove(containerId: string): Promise<void> {
    try {
      await this.docker.getContainer(containerId).remove({ force: true, v: true });
    } catch (err) {
      const e = toExecutorError(err);
      // 404: gone; 409: the engine is removing it already.
      if (e.statusCode !== 404 && e.statusCode !== 409) throw e;
    }
  }

  async inspect(containerId: string): Promise<ContainerInfo | undefined> {
    try {
      const c = await this.docker.getContainer(containerId).inspect();
      return {
        id: c.Id,
        taskId: c.Config.Labels?.[TASK_ID_LABEL] ?? '',
        name: c.Name.replace(/^\//, ''),
        running: c.State.Running,
        pid: c.State.Pid,
        exitCode: c.State.ExitCode,
        startedAt: c.State.StartedAt,
        health: c.State.Health?.Status,
      };
    } catch (err) {
      const e = toExecutorError(err);
      if (e.statusCode === 404) return undefined;
      throw e;
    }
  }

  async listTaskContainers(nodeId?: string): Promise<ContainerInfo[]> {
    const label = [TASK_ID_LABEL];
    if (nodeId) label.push(`${NODE_ID_LABEL}=${nodeId}`);
    const list = await engine(() => this.docker.listContainers({ all: true, filters: { label } }));
    return list.map((c) => ({
      id: c.Id,
      taskId: c.Labels[TASK_ID_LABEL] ?? '',
      name: (c.Names[0] ?? '').replace(/^\//, ''),
      running: c.State === 'running',
      pid: 0,
      exitCode: 0,
    }));
  }

  watchEvents(listener: (e: ContainerEvent) => void): { ready: Promise<void>; close(): void } {
    return this.events.subscribe(listener);
  }

  // Leaving the swarm: this node's task containers go (Docker does the same).
  async removeNodeContainers(nodeId: string): Promise<void> {
    const list = await this.listTaskContainers(nodeId);
    await Promise.all(list.map((c) => this.remove(c.id).catch((err: unknown) => this.log.warn({ err, container: c.id }, 'removing task container failed'))));
  }
}

// `img` means `img:latest`: without a tag the engine would pull every tag.
export function withDefaultTag(image: string): string {
  if (image.includes('@')) return image;
  const lastPart = image.slice(image.lastIndexOf('/') + 1);
  return lastPart.includes(':') ? image : `${image}:latest`;
}

interface EngineInfo {
  Name?: string;
  Architecture?: string;
  OSType?: string;
  NCPU?: number;
  MemTotal?: number;
  ServerVersion?: string;
  Labels?: string[] | null;
  Plugins?: { Volume?: string[] | null; Network?: string[] | null; Authorization?: string[] | null; Log?: string[] | null };
}

// What moby's swarm executor reports of its engine (executor.Describe).
export function describeFromInfo(info: EngineInfo): NodeDescription {
  const labels: Record<string, string> = {};
  for (const l of info.Labels ?? []) {
    const eq = l.indexOf('=');
    if (eq > 0) labels[l.slice(0, eq)] = l.slice(eq + 1);
  }
  const plugins = new Map<string, { Type: string; Name: string }>();
  const add = (type: string, names: string[] | null | undefined): void => {
    for (const name of names ?? []) plugins.set(`${type}\0${name}`, { Type: type, Name: name });
  };
  add('Volume', info.Plugins?.Volume);
  add('Network', ['overlay', ...(info.Plugins?.Network ?? [])]); // the built-in multi-host driver
  add('Authorization', info.Plugins?.Authorization);
  add('Log', info.Plugins?.Log);
  const sorted = [...plugins.values()].sort((a, b) => (a.Type === b.Type ? cmp(a.Name, b.Name) : cmp(a.Type, b.Type)));
  const engineDesc: NodeDescription['Engine'] = { EngineVersion: info.ServerVersion ?? '', Plugins: sorted };
  if (Object.keys(labels).length) engineDesc.Labels = labels;
  return {
    Hostname: info.Name ?? '',
    Platform: { Architecture: info.Architecture ?? '', OS: info.OSType ?? '' },
    Resources: { NanoCPUs: (info.NCPU ?? 0) * 1e9, MemoryBytes: info.MemTotal ?? 0 },
    Engine: engineDesc,
    TLSInfo: {},
  };
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

async function engine<T>(fn: () => Promise<T>): Promise<T> {
  try { return await fn(); } catch (err) { throw toExecutorError(err); }
}

// dockerode errors carry the HTTP status and the engine's JSON body: the engine
// refused, the task fails. Socket errors (engine down or restarting) have
// neither and are worth retrying.
export function toExecutorError(err: unknown): ExecutorError {
  if (err instanceof ExecutorError) return err;
  const e = err as { statusCode?: number; json?: unknown; message?: string; code?: string };
  if (typeof e?.statusCode === 'number') {
    const json = e.json as { message?: string } | string | undefined;
    const message = (typeof json === 'object' && json?.message) || (typeof json === 'string' && json.trim()) || e.message || `engine error ${e.statusCode}`;
    return new ExecutorError(message, false, e.statusCode);
  }
  return new ExecutorError(e?.message ?? String(err), true);
}
