// The log broker (SwarmKit's manager/logbroker): `docker service logs` and
// task logs read the containers' logs on the tasks' own nodes. Every manager
// runs one; every agent keeps a `logs.Subscriptions` stream open to each
// manager it knows, so whichever manager serves the API reaches every node
// directly, without the leader and without a relay.
//
// A subscription resolves its selector to tasks from the store, sends each
// node the tasks of its own that are wanted, and hands the lines the agents
// publish back to the caller. Follow mode adds tasks that start later and
// ends when the selection is over; a node that is not connected, or whose
// stream drops, ends its part with Docker's "incomplete log stream" error
// while the other nodes go on.
import type { Logger } from '../../common/log';
import { invalid, notFound, unavailable } from '../../common/errors';
import { newId } from '../../common/ids';
import { parseIsoMs } from '../../common/time';
import type { Task } from '../../model/types';
import { taskStateRank } from '../../model/types';
import { RpcError, type RpcServer } from '../../rpc/transport';
import {
  MAX_TASKS_PER_MESSAGE, Publish, Subscriptions,
  type LogReadOptions, type PublishRequest, type SubscribedTask, type SubscriptionMessage,
} from '../../protocol/logs';
import type { Store } from '../../store/store';
import { resolveObject } from '../controlapi/resolve';

export interface LogSelector {
  services?: string[]; // IDs or names
  tasks?: string[];    // IDs
}

export type LogOptions = LogReadOptions;

export type BrokerMessage =
  | { kind: 'line'; taskId: string; serviceId: string; nodeId: string; stream: 'stdout' | 'stderr'; timestamp: string; line: Buffer }
  // Docker's "warning: incomplete log stream. ..." text, for the API to write as moby does.
  | { kind: 'error'; message: string };

export interface LogBroker {
  // Resolves once the selection is over (every node has sent its part; with
  // follow: the service is gone or the tasks have ended), or `signal` aborts;
  // nothing stays subscribed on any node afterwards. `onMessage` is awaited:
  // a slow caller slows the agents' publishing.
  subscribe(sel: LogSelector, opts: LogOptions, onMessage: (m: BrokerMessage) => void | Promise<void>, signal: AbortSignal): Promise<void>;
  // Serve the agents' methods on another server too (a manager's own agent in process).
  register(server: RpcServer): void;
  connectedNodes(): string[];
  stop(): Promise<void>;
}

export interface LogBrokerOptions {
  store: Store;
  server: RpcServer;
  log: Logger;
  // How long a subscription waits for a concerned node that is not connected
  // (an agent reconnecting after a manager restart) before giving up on it.
  connectGraceMs?: number;
  maxSubscriptions?: number;
}

export const DEFAULT_CONNECT_GRACE_MS = 3000;
export const DEFAULT_MAX_SUBSCRIPTIONS = 512;

export function incompleteStream(reasons: string[]): string {
  return `warning: incomplete log stream. some logs could not be retrieved for the following reasons: ${reasons.join(', ')}`;
}

// One agent's open Subscriptions stream.
class AgentLink {
  readonly subs = new Set<Subscription>();
  private readonly ended = new AbortController();
  constructor(readonly nodeId: string, private readonly sendFn: (m: SubscriptionMessage) => void) {}
  send(m: SubscriptionMessage): void { if (!this.ended.signal.aborted) this.sendFn(m); }
  get endSignal(): AbortSignal { return this.ended.signal; }
  end(): void { this.ended.abort(); }
}

interface Part {
  nodeId: string;
  link?: AgentLink;           // absent while waiting for the node to connect
  waiting: SubscribedTask[];  // tasks to send once it connects
  timer?: NodeJS.Timeout;
  optionsSent: boolean;
  tasks: Set<string>;         // sent to it: the only tasks it may publish for
}

interface Tracked { serviceId: string; nodeId: string; active: boolean }

class Subscription {
  readonly id = newId();
  readonly parts = new Map<string, Part>();
  readonly tracked = new Map<string, Tracked>();
  private readonly reasons: string[] = [];
  private ended = false;
  private resolveDone!: () => void;
  readonly done = new Promise<void>((r) => { this.resolveDone = r; });
  private unsubscribeStore?: () => void;
  private tail: Promise<void> = Promise.resolve(); // deliveries in order

  constructor(
    private readonly broker: Broker,
    private readonly services: Set<string>,
    private readonly taskIds: Set<string>,
    readonly opts: LogOptions,
    private readonly onMessage: (m: BrokerMessage) => void | Promise<void>,
  ) {}

  start(): void {
    const store = this.broker.store;
    const selected: Task[] = [];
    for (const sid of this.services) selected.push(...store.tasksOfService(sid));
    for (const tid of this.taskIds) {
      const t = store.get('tasks', tid);
      if (t && !this.services.has(t.ServiceID)) selected.push(t);
    }
    selected.sort(byCreation);
    if (this.opts.follow) {
      this.unsubscribeStore = store.subscribe((events) => {
        for (const e of events) if (e.kind === 'tasks' && e.object) this.consider(e.object as Task);
        this.check();
      });
      for (const t of selected) this.consider(t);
    } else {
      // As SwarmKit: without follow, a service's tasks that never ran are left
      // out; a task asked for by ID that has no node yet is a reason.
      const byNode = new Map<string, SubscribedTask[]>();
      for (const t of selected) {
        if (!t.NodeID) {
          if (this.taskIds.has(t.ID)) this.reasons.push(`task ${t.ID} has not been scheduled`);
          continue;
        }
        if (!this.taskIds.has(t.ID) && taskStateRank(t.Status.State) < taskStateRank('running')) continue;
        this.tracked.set(t.ID, { serviceId: t.ServiceID, nodeId: t.NodeID, active: true });
        let list = byNode.get(t.NodeID);
        if (!list) byNode.set(t.NodeID, (list = []));
        list.push(subscribed(t));
      }
      for (const [nodeId, tasks] of byNode) this.assign(nodeId, tasks);
    }
    this.check();
  }

  // Follow: a wanted task joins once it runs (or has run).
  private consider(t: Task): void {
    if (this.ended || this.tracked.has(t.ID) || !t.NodeID) return;
    if (!this.services.has(t.ServiceID) && !this.taskIds.has(t.ID)) return;
    if (taskStateRank(t.Status.State) < taskStateRank('running')) return;
    this.tracked.set(t.ID, { serviceId: t.ServiceID, nodeId: t.NodeID, active: true });
    this.assign(t.NodeID, [subscribed(t)]);
  }

  private assign(nodeId: string, tasks: SubscribedTask[]): void {
    let part = this.parts.get(nodeId);
    if (!part) {
      part = { nodeId, waiting: [], optionsSent: false, tasks: new Set() };
      this.parts.set(nodeId, part);
      const link = this.broker.links.get(nodeId);
      if (link) this.attach(part, link);
    }
    if (part.link) { this.send(part, tasks); return; }
    part.waiting.push(...tasks);
    if (part.timer) return;
    const node = this.broker.store.get('nodes', nodeId);
    const grace = !node || node.Status.State === 'down' ? 0 : this.broker.connectGraceMs;
    part.timer = setTimeout(() => this.partFailed(part!, `node ${nodeId} is not available`), grace);
  }

  attach(part: Part, link: AgentLink): void {
    part.link = link;
    link.subs.add(this);
    if (part.timer) clearTimeout(part.timer);
    part.timer = undefined;
    if (part.waiting.length) {
      const tasks = part.waiting;
      part.waiting = [];
      this.send(part, tasks);
    }
  }

  // Non-follow selections can be large: sent in parts, `more` on all but the last.
  private send(part: Part, tasks: SubscribedTask[]): void {
    for (let i = 0; i < tasks.length; i += MAX_TASKS_PER_MESSAGE) {
      const chunk = tasks.slice(i, i + MAX_TASKS_PER_MESSAGE);
      for (const t of chunk) part.tasks.add(t.taskId);
      const msg: SubscriptionMessage = { id: this.id, tasks: chunk };
      if (!part.optionsSent) { msg.options = this.opts; part.optionsSent = true; }
      if (i + MAX_TASKS_PER_MESSAGE < tasks.length) msg.more = true;
      part.link!.send(msg);
    }
  }

  nodeConnected(link: AgentLink): void {
    const part = this.parts.get(link.nodeId);
    if (part && !part.link && !this.ended) this.attach(part, link);
  }

  linkLost(link: AgentLink): void {
    const part = this.parts.get(link.nodeId);
    if (part?.link === link) this.partFailed(part, `node ${link.nodeId} disconnected unexpectedly`);
  }

  private partFailed(part: Part, reason: string): void {
    if (this.ended || this.parts.get(part.nodeId) !== part) return;
    this.removePart(part);
    for (const t of this.tracked.values()) if (t.nodeId === part.nodeId) t.active = false;
    this.problem(reason);
    this.check();
  }

  private removePart(part: Part): void {
    if (part.timer) clearTimeout(part.timer);
    part.link?.subs.delete(this);
    this.parts.delete(part.nodeId);
  }

  // Follow: said at once, the other nodes go on. Otherwise: all reasons in one line at the end, as SwarmKit.
  private problem(reason: string): void {
    if (this.opts.follow) this.deliver({ kind: 'error', message: incompleteStream([reason]) });
    else this.reasons.push(reason);
  }

  private deliver(...ms: BrokerMessage[]): Promise<void> {
    this.tail = this.tail.then(async () => {
      for (const m of ms) {
        if (this.ended) return;
        const wait = this.onMessage(m);
        if (wait) await wait;
      }
    }).catch(() => undefined);
    return this.tail;
  }

  async publish(nodeId: string, req: PublishRequest): Promise<void> {
    const part = this.parts.get(nodeId);
    if (!part || !part.link) throw new RpcError('permission', `log subscription ${this.id} was not sent to node ${nodeId}`);
    // A node publishes only for the tasks it was asked for: checked before anything is delivered.
    for (const m of req.messages) if (!part.tasks.has(m.taskId)) throw new RpcError('permission', `task ${m.taskId} is not in node ${nodeId}'s part of log subscription ${this.id}`);
    for (const d of req.done ?? []) if (!part.tasks.has(d.taskId)) throw new RpcError('permission', `task ${d.taskId} is not in node ${nodeId}'s part of log subscription ${this.id}`);
    await this.deliver(...req.messages.map((m): BrokerMessage => (
      { kind: 'line', taskId: m.taskId, serviceId: this.tracked.get(m.taskId)!.serviceId, nodeId, stream: m.stream, timestamp: m.timestamp, line: Buffer.from(m.data, 'base64') })));
    if (this.ended) return;
    for (const d of req.done ?? []) {
      const t = this.tracked.get(d.taskId);
      if (t) t.active = false;
      if (d.error) this.problem(`task ${d.taskId}: ${d.error}`);
    }
    if (req.close || req.error) {
      if (req.error) this.problem(`node ${nodeId}: ${req.error}`);
      this.removePart(part);
      for (const t of this.tracked.values()) if (t.nodeId === nodeId) t.active = false;
    }
    this.check();
  }

  check(): void {
    if (this.ended || !this.over()) return;
    void this.finish(true);
  }

  private over(): boolean {
    if (!this.opts.follow) return this.parts.size === 0;
    for (const t of this.tracked.values()) if (t.active) return false;
    const store = this.broker.store;
    for (const sid of this.services) if (store.get('services', sid)) return false;
    for (const tid of this.taskIds) {
      // A task asked for by ID: over once its log has been read, or when it can no longer run.
      if (this.tracked.has(tid)) continue;
      const t = store.get('tasks', tid);
      if (t && taskStateRank(t.Status.State) <= taskStateRank('running')) return false;
    }
    return true;
  }

  private finishing?: Promise<void>;

  finish(report: boolean): Promise<void> {
    this.finishing ??= this.end(report);
    return this.finishing;
  }

  private async end(report: boolean): Promise<void> {
    if (report && this.reasons.length) await this.deliver({ kind: 'error', message: incompleteStream(this.reasons) });
    await this.tail;
    this.ended = true;
    this.unsubscribeStore?.();
    for (const part of [...this.parts.values()]) {
      part.link?.send({ id: this.id, close: true });
      this.removePart(part);
    }
    this.broker.subs.delete(this.id);
    this.resolveDone();
  }
}

function subscribed(t: Task): SubscribedTask {
  const c = t.Status.ContainerStatus?.ContainerID;
  return c ? { taskId: t.ID, containerId: c } : { taskId: t.ID };
}

function byCreation(a: Task, b: Task): number {
  return parseIsoMs(a.CreatedAt) - parseIsoMs(b.CreatedAt) || (a.ID < b.ID ? -1 : a.ID > b.ID ? 1 : 0);
}

class Broker implements LogBroker {
  readonly links = new Map<string, AgentLink>();
  readonly subs = new Map<string, Subscription>();
  readonly connectGraceMs: number;
  private readonly maxSubscriptions: number;
  private stopped = false;

  constructor(readonly store: Store, private readonly log: Logger, opts: LogBrokerOptions) {
    this.connectGraceMs = opts.connectGraceMs ?? DEFAULT_CONNECT_GRACE_MS;
    this.maxSubscriptions = opts.maxSubscriptions ?? DEFAULT_MAX_SUBSCRIPTIONS;
  }

  register(server: RpcServer): void {
    server.stream(Subscriptions, async (_req, ctx, send) => {
      if (this.stopped) throw unavailable('log broker is not running');
      const nodeId = ctx.peer?.nodeId;
      if (!nodeId) throw new RpcError('permission', 'log subscriptions need a node certificate');
      const link = new AgentLink(nodeId, send);
      const previous = this.links.get(nodeId);
      this.links.set(nodeId, link);
      if (previous) this.drop(previous); // the agent reconnected: its old readers are gone
      this.log.debug({ node: nodeId }, 'agent listening for log subscriptions');
      for (const sub of this.subs.values()) sub.nodeConnected(link);
      try {
        await new Promise<void>((resolve) => {
          if (ctx.signal.aborted || link.endSignal.aborted) { resolve(); return; }
          ctx.signal.addEventListener('abort', () => resolve(), { once: true });
          link.endSignal.addEventListener('abort', () => resolve(), { once: true });
        });
      } finally {
        if (this.links.get(nodeId) === link) this.links.delete(nodeId);
        this.drop(link);
      }
    });
    server.unary(Publish, async (req, ctx) => {
      const nodeId = ctx.peer?.nodeId;
      if (!nodeId) throw new RpcError('permission', 'publishing logs needs a node certificate');
      const sub = this.subs.get(req.subscriptionId);
      if (!sub) throw notFound('unknown subscription ID');
      await sub.publish(nodeId, req);
      return {};
    });
  }

  private drop(link: AgentLink): void {
    link.end();
    for (const sub of [...link.subs]) sub.linkLost(link);
  }

  connectedNodes(): string[] { return [...this.links.keys()]; }

  async subscribe(sel: LogSelector, opts: LogOptions, onMessage: (m: BrokerMessage) => void | Promise<void>, signal: AbortSignal): Promise<void> {
    if (this.stopped) throw unavailable('log broker is not running');
    if (!sel.services?.length && !sel.tasks?.length) throw invalid('log selector must not be empty');
    if (this.subs.size >= this.maxSubscriptions) throw unavailable(`too many log streams on this manager (${this.maxSubscriptions}); try again later`);
    const services = new Set((sel.services ?? []).map((ref) => resolveObject('service', ref, this.store.list('services'), (s) => s.Spec.Name, (id) => this.store.get('services', id)).ID));
    const sub = new Subscription(this, services, new Set(sel.tasks ?? []), opts, onMessage);
    if (signal.aborted) return;
    this.subs.set(sub.id, sub);
    const onAbort = (): void => { void sub.finish(false); };
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      sub.start();
      await sub.done;
    } finally {
      signal.removeEventListener('abort', onAbort);
      await sub.finish(false);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all([...this.subs.values()].map((s) => s.finish(false)));
    for (const link of [...this.links.values()]) link.end();
    this.links.clear();
  }
}

export function startLogBroker(opts: LogBrokerOptions): LogBroker {
  const broker = new Broker(opts.store, opts.log, opts);
  broker.register(opts.server);
  return broker;
}
