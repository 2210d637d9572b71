import type { NodeDescription, PortConfig } from '../../model/types';
import type { Logger } from '../../common/log';
import { EngineClient, EngineError, EngineTimeoutError, expectOk } from '../../engine/client';
import { onJsonLines } from '../../engine/json-lines';
import { NODE_ID_LABEL, routeDockerSocket, TASK_ID_LABEL, type ContainerCreate } from './container-config';
import { EngineEventStream } from './engine-events';
import { ExecutorError, type ContainerEvent, type ContainerInfo, type Executor } from './executor';

// How long the agent waits for dockerd. An engine that hangs (a stuck
// storage driver, a wedged containerd) must fail the one task that waits on
// it, with a clear error, and never hold the agent. Pulls of large images get
// far more time; a stop gets its grace period on top.
export interface EngineTimeouts {
  callMs: number;      // create, start, remove, inspect, list, info, image inspect
  stopExtraMs: number; // a stop: the grace period plus this
  pullMs: number;      // a whole image pull
}
export const DEFAULT_ENGINE_TIMEOUTS: EngineTimeouts = { callMs: 60_000, stopExtraMs: 30_000, pullMs: 30 * 60_000 };

// The agent's hands on the host's dockerd, through the engine client. Every engine
// error comes out as an ExecutorError carrying the engine's own message; a
// call the engine does not answer in time is aborted and fails the task.
export class DockerExecutor implements Executor {
  private readonly events: EngineEventStream;
  private readonly imageChecks = new Map<string, Promise<void>>();
  private readonly timeouts: EngineTimeouts;

  // `apiSocket`: this daemon's own unix socket, given to task containers that
  // mount the engine's (routeDockerSocket).
  constructor(readonly engine: EngineClient, private readonly log: Logger, timeouts: Partial<EngineTimeouts> = {}, private readonly apiSocket?: string) {
    this.events = new EngineEventStream(engine, log);
    this.timeouts = { ...DEFAULT_ENGINE_TIMEOUTS, ...timeouts };
  }

  async describeNode(): Promise<NodeDescription> {
    const info = await this.call('info', (signal) => this.engine.getJson<EngineInfo>('/info', { signal, timeoutMs: this.timeouts.callMs + 1000 }));
    return describeFromInfo(info);
  }

  // One engine call with its bound: past it the request is aborted and the
  // call fails for good (retrying a hung engine only piles up requests).
  private async call<T>(what: string, fn: (signal: AbortSignal) => Promise<T>, ms = this.timeouts.callMs): Promise<T> {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), ms);
    try {
      return await fn(ctl.signal);
    } catch (err) {
      if (ctl.signal.aborted || err instanceof EngineTimeoutError) throw new ExecutorError(engineTimeoutMessage(what, ms), false);
      throw toExecutorError(err);
    } finally {
      clearTimeout(timer);
    }
  }

  // Tasks of one service ask at once: one look (and at most one pull) per
  // image at a time, shared by all of them.
  // `registryAuth` is the X-Registry-Auth value the service was created with
  // (base64url JSON credentials), or absent for an anonymous pull.
  ensureImage(image: string, registryAuth?: string): Promise<void> {
    if (!image) return Promise.reject(new ExecutorError('dockerexec: image required', false));
    const key = `${image}\0${registryAuth ?? ''}`;
    let p = this.imageChecks.get(key);
    if (!p) {
      p = this.checkImage(image, registryAuth).finally(() => this.imageChecks.delete(key));
      this.imageChecks.set(key, p);
    }
    return p;
  }

  private async checkImage(image: string, registryAuth: string | undefined): Promise<void> {
    try {
      await this.call(`image inspect ${image}`, (signal) => this.engine.getJson(`/images/${encodeURIComponent(image)}/json`, { signal, timeoutMs: this.timeouts.callMs + 1000 }));
      return;
    } catch (err) {
      const e = toExecutorError(err);
      if (e.statusCode !== 404) throw e;
    }
    await this.pull(image, registryAuth);
  }

  // Like moby's swarm container adapter: a pull that fails is logged and the
  // create goes ahead (an image that is really absent fails it with the
  // engine's "No such image: …", the task's Err in Docker too). A pull the
  // engine did not finish in time, or an engine not reachable, is thrown.
  private async pull(image: string, registryAuth: string | undefined): Promise<void> {
    this.log.info({ image, withRegistryAuth: !!registryAuth }, 'pulling image');
    try {
      await this.call(`image pull ${image}`, (signal) => this.pullStream(image, registryAuth, signal), this.timeouts.pullMs);
    } catch (err) {
      const e = toExecutorError(err);
      if (e.temporary || e.message.startsWith('engine did not answer')) throw e;
      this.log.warn({ image, err: e.message }, 'pulling image failed');
    }
  }

  private async pullStream(image: string, registryAuth: string | undefined, abortSignal: AbortSignal): Promise<void> {
    const stream = await expectOk(await this.engine.stream('POST', '/images/create', {
      query: { fromImage: withDefaultTag(image) },
      headers: registryAuth ? { 'X-Registry-Auth': registryAuth } : {},
      signal: abortSignal,
      timeoutMs: this.timeouts.pullMs + 1000,
    }));
    // The engine answers 200 and reports a failed pull inside the progress stream.
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => { stream.destroy(); reject(new Error('aborted')); };
      if (abortSignal.aborted) onAbort();
      abortSignal.addEventListener('abort', onAbort, { once: true });
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

  async create(requested: ContainerCreate): Promise<string> {
    const config = routeDockerSocket(requested, this.apiSocket);
    let id: string;
    try {
      const c = await this.call(`create container ${config.name}`, (signal) => this.engine.postJson<{ Id: string }>('/containers/create', config.body, { query: { name: config.name }, signal, timeoutMs: this.timeouts.callMs + 1000 }));
      id = c.Id;
    } catch (err) {
      const e = toExecutorError(err);
      if (e.statusCode !== 409) throw e;
      // Created earlier by us (an agent restart between create and report).
      const existing = await this.inspect(config.name);
      if (!existing || existing.taskId !== config.body.Labels[TASK_ID_LABEL]) throw e;
      id = existing.id;
    }
    await this.connectNetworks(id, config);
    return id;
  }

  // The task's networks after the first, before the container starts. A
  // network the container is on already (a create repeated after a restart)
  // is fine; any other refusal removes the container and fails the task.
  private async connectNetworks(id: string, config: ContainerCreate): Promise<void> {
    for (const c of config.connect ?? []) {
      try {
        await this.call(`connect container ${config.name} to network ${c.network}`, (signal) => this.engine.postJson(`/networks/${encodeURIComponent(c.network)}/connect`, { Container: id, EndpointConfig: c.config }, { signal, timeoutMs: this.timeouts.callMs + 1000 }));
      } catch (err) {
        const e = toExecutorError(err);
        if (/already exists/.test(e.message)) continue;
        await this.remove(id).catch(() => undefined);
        throw new ExecutorError(`connecting to network ${c.network} failed: ${e.message}`, e.temporary, e.statusCode);
      }
    }
  }

  async start(containerId: string): Promise<void> {
    try {
      await this.call(`start container ${containerId}`, (signal) => this.engine.postJson(`/containers/${encodeURIComponent(containerId)}/start`, undefined, { signal, timeoutMs: this.timeouts.callMs + 1000 }));
    } catch (err) {
      const e = toExecutorError(err);
      if (e.statusCode !== 304) throw e; // 304: already started
    }
  }

  async stop(containerId: string, graceSeconds: number): Promise<void> {
    try {
      const ms = graceSeconds * 1000 + this.timeouts.stopExtraMs;
      await this.call(`stop container ${containerId}`, (signal) => this.engine.postJson(`/containers/${encodeURIComponent(containerId)}/stop`, undefined, { query: { t: String(graceSeconds) }, signal, timeoutMs: ms + 1000 }), ms);
    } catch (err) {
      const e = toExecutorError(err);
      if (e.statusCode !== 304 && e.statusCode !== 404) throw e;
    }
  }

  async remove(containerId: string): Promise<void> {
    try {
      await this.call(`remove container ${containerId}`, (signal) => this.engine.call('DELETE', `/containers/${encodeURIComponent(containerId)}`, { query: { force: '1', v: '1' }, signal, timeoutMs: this.timeouts.callMs + 1000 }));
    } catch (err) {
      const e = toExecutorError(err);
      // 404: gone; 409: the engine is removing it already.
      if (e.statusCode !== 404 && e.statusCode !== 409) throw e;
    }
  }

  async inspect(containerId: string): Promise<ContainerInfo | undefined> {
    try {
      const c = await this.call(`inspect container ${containerId}`, (signal) => this.engine.getJson<EngineContainer>(`/containers/${encodeURIComponent(containerId)}/json`, { signal, timeoutMs: this.timeouts.callMs + 1000 }));
      return {
        id: c.Id,
        taskId: c.Config.Labels?.[TASK_ID_LABEL] ?? '',
        name: c.Name.replace(/^\//, ''),
        running: c.State.Running,
        pid: c.State.Pid,
        exitCode: c.State.ExitCode,
        startedAt: c.State.StartedAt,
        health: c.State.Health?.Status,
        ...portsOf(c),
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
    const list = await this.call('list containers', (signal) => listContainers(this.engine, { label }, { signal, timeoutMs: this.timeouts.callMs + 1000 }));
    return list.map((c) => ({
      id: c.Id,
      taskId: c.Labels?.[TASK_ID_LABEL] ?? '',
      name: (c.Names?.[0] ?? '').replace(/^\//, ''),
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

// What the executor reads of GET /containers/{id}/json and /containers/json.
interface EngineContainer {
  Id: string;
  Name: string;
  Config: { Labels?: Record<string, string> | null; Tty?: boolean };
  State: { Running: boolean; Pid: number; ExitCode: number; StartedAt?: string; Health?: { Status?: string } };
  NetworkSettings?: { Ports?: Record<string, Array<{ HostIp?: string; HostPort?: string }> | null> | null };
}

// The ports the engine bound for the container, as the task's PortStatus
// (moby's parsePortStatus: host mode, one entry per binding, no name).
function portsOf(c: EngineContainer): { ports?: PortConfig[] } {
  const out: PortConfig[] = [];
  for (const [key, bindings] of Object.entries(c.NetworkSettings?.Ports ?? {})) {
    const [port, proto] = key.split('/');
    const protocol = proto === 'udp' || proto === 'sctp' ? proto : 'tcp';
    for (const b of bindings ?? []) {
      const published = Number(b.HostPort);
      if (!Number.isInteger(published) || published <= 0) continue;
      out.push({ Protocol: protocol, TargetPort: Number(port), PublishedPort: published, PublishMode: 'host' });
    }
  }
  return out.length ? { ports: out } : {};
}

export interface EngineContainerSummary {
  Id: string;
  Names?: string[];
  Labels?: Record<string, string> | null;
  State?: string;
}

export function listContainers(engine: EngineClient, filters: Record<string, string[]>, opts: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<EngineContainerSummary[]> {
  return engine.getJson<EngineContainerSummary[]>('/containers/json', { ...opts, query: { all: '1', filters: JSON.stringify(filters) } });
}

export function inspectContainer(engine: EngineClient, id: string, opts: { signal?: AbortSignal } = {}): Promise<EngineContainer> {
  return engine.getJson<EngineContainer>(`/containers/${encodeURIComponent(id)}/json`, opts);
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

export function engineTimeoutMessage(what: string, ms: number): string {
  return `engine did not answer ${what} within ${ms >= 1000 ? `${ms / 1000} s` : `${ms} ms`}`;
}

// An engine answer that is not 2xx carries its status and the engine's
// message: the engine refused, the task fails. Socket errors (engine down or
// restarting) have neither and are worth retrying.
export function toExecutorError(err: unknown): ExecutorError {
  if (err instanceof ExecutorError) return err;
  if (err instanceof EngineError) return new ExecutorError(err.message, false, err.status);
  const e = err as { message?: string } | undefined;
  return new ExecutorError(e?.message ?? String(err), true);
}
