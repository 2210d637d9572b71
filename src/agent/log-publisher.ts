// The agent's half of the log broker: a `logs.Subscriptions` stream to every
// manager this node knows (each manager runs a broker and may be the one
// serving `docker service logs`), and for each subscription received, the
// tasks' container logs read from this node's engine and published back to
// that manager in batches. A dropped stream cancels its subscriptions'
// readers and is reopened with a bounded, growing delay.
import type { Logger } from '../common/log';
import { isShoalError } from '../common/errors';
import type { RpcChannel } from '../rpc/transport';
import {
  MAX_BATCH_BYTES, MAX_BATCH_MESSAGES, MAX_LINE_BYTES, Publish, Subscriptions,
  type LogReadOptions, type PublishedLine, type PublishRequest, type SubscribedTask, type SubscriptionMessage,
} from '../protocol/logs';
import type { LogLine, LogSource } from './log-source';

export interface LogPublisherOptions {
  nodeId: string;
  source: LogSource;
  managers: string[];                    // addresses of the managers to listen to
  dial(address: string): RpcChannel;     // a channel with this node's identity
  log: Logger;
  retry?: { minMs: number; maxMs: number };
  publishTimeoutMs?: number;
  maxSubscriptions?: number;             // at once on this node, all managers together
}

export interface LogPublisher {
  // The managers changed (the dispatcher's session lists them): streams to
  // those gone are closed, new ones opened.
  setManagers(addresses: string[]): void;
  activeSubscriptions(): number;
  stop(): Promise<void>;
}

export const DEFAULT_RETRY = { minMs: 100, maxMs: 8000 }; // as SwarmKit's session back-off
export const DEFAULT_PUBLISH_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_AGENT_SUBSCRIPTIONS = 256;
const CLOSE_TIMEOUT_MS = 5000;
// Unsent bytes a subscription holds before its readers wait for the manager.
const MAX_PENDING_BYTES = 2 * MAX_BATCH_BYTES;

export function startLogPublisher(opts: LogPublisherOptions): LogPublisher {
  const p = new Publisher(opts);
  p.setManagers(opts.managers);
  return p;
}

class Publisher implements LogPublisher {
  private readonly sessions = new Map<string, ManagerSession>();
  readonly active = new Set<AgentSubscription>();
  constructor(readonly opts: LogPublisherOptions) {}

  setManagers(addresses: string[]): void {
    const wanted = new Set(addresses);
    for (const [addr, s] of this.sessions) if (!wanted.has(addr)) { s.stop(); this.sessions.delete(addr); }
    for (const addr of wanted) {
      if (this.sessions.has(addr)) continue;
      const s = new ManagerSession(this, addr);
      this.sessions.set(addr, s);
      void s.run();
    }
  }

  activeSubscriptions(): number { return this.active.size; }

  async stop(): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.all(all.map((s) => s.stop()));
  }
}

// One manager: the stream, its subscriptions, reconnection.
class ManagerSession {
  private readonly stopping = new AbortController();
  private finished?: Promise<void>;
  private readonly log: Logger;

  constructor(private readonly pub: Publisher, readonly address: string) {
    this.log = pub.opts.log.child({ manager: address });
  }

  run(): Promise<void> {
    this.finished = this.loop();
    return this.finished;
  }

  private async loop(): Promise<void> {
    const { minMs, maxMs } = this.pub.opts.retry ?? DEFAULT_RETRY;
    let delay = minMs;
    while (!this.stopping.signal.aborted) {
      const channel = this.pub.opts.dial(this.address);
      const subs = new Map<string, AgentSubscription>();
      const opened = Date.now();
      const stream = channel.stream(Subscriptions, {}, (m) => this.onMessage(channel, subs, m));
      const onStop = (): void => stream.cancel();
      this.stopping.signal.addEventListener('abort', onStop, { once: true });
      try {
        await stream.done;
      } catch (err) {
        if (!this.stopping.signal.aborted) this.log.debug({ err: (err as Error).message }, 'log subscription stream ended');
      } finally {
        this.stopping.signal.removeEventListener('abort', onStop);
      }
      await Promise.all([...subs.values()].map((s) => s.cancel()));
      channel.close();
      if (this.stopping.signal.aborted) break;
      if (Date.now() - opened > maxMs) delay = minMs; // it had been up: start the back-off over
      await sleep(delay / 2 + Math.random() * (delay / 2), this.stopping.signal);
      delay = Math.min(delay * 2, maxMs);
    }
  }

  private onMessage(channel: RpcChannel, subs: Map<string, AgentSubscription>, m: SubscriptionMessage): void {
    const existing = subs.get(m.id);
    if (m.close) { void existing?.cancel(); return; }
    if (existing) { existing.add(m.tasks ?? [], !!m.more); return; }
    if (!m.options) return; // the rest of a subscription this node refused or already finished
    const sub = new AgentSubscription(this.pub, channel, m.id, m.options, () => subs.delete(m.id), this.log);
    subs.set(m.id, sub);
    const max = this.pub.opts.maxSubscriptions ?? DEFAULT_MAX_AGENT_SUBSCRIPTIONS;
    if (this.pub.active.size >= max) { sub.refuse(`too many log streams on this node (${max})`); return; }
    sub.add(m.tasks ?? [], !!m.more);
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    await this.finished;
  }
}

interface Pending { line: PublishedLine; bytes: number }

// One subscription on this node: readers (one after another without follow,
// side by side with it) feeding a batcher that publishes one call at a time.
class AgentSubscription {
  private readonly cancelled = new AbortController();
  private readonly seen = new Set<string>();
  private readonly queue: SubscribedTask[] = [];   // non-follow: read in this order
  private more = false;
  private reading = false;
  // Outgoing.
  private pending: Pending[] = [];
  private pendingBytes = 0;
  private done: Array<{ taskId: string; error?: string }> = [];
  private closing?: { error?: string };
  private sending = false;
  private spaceWaiters: Array<() => void> = [];
  private finished = false;

  constructor(
    private readonly pub: Publisher,
    private readonly channel: RpcChannel,
    readonly id: string,
    private readonly options: LogReadOptions,
    private readonly forget: () => void,
    private readonly log: Logger,
  ) {
    pub.active.add(this);
  }

  add(tasks: SubscribedTask[], more: boolean): void {
    if (this.cancelled.signal.aborted || this.closing) return;
    const fresh = tasks.filter((t) => !this.seen.has(t.taskId));
    for (const t of fresh) this.seen.add(t.taskId);
    if (this.options.follow) {
      for (const t of fresh) void this.readTask(t);
      return;
    }
    this.queue.push(...fresh);
    this.more = more;
    if (!this.reading) void this.readQueue();
  }

  refuse(error: string): void {
    this.closing = { error };
    this.kick();
  }

  private async readQueue(): Promise<void> {
    this.reading = true;
    try {
      while (this.queue.length && !this.cancelled.signal.aborted) {
        const t = this.queue.shift()!;
        const error = await this.read(t);
        if (error) this.done.push({ taskId: t.taskId, error });
      }
    } finally {
      this.reading = false;
    }
    if (!this.more && !this.cancelled.signal.aborted) { this.closing = {}; this.kick(); }
  }

  private async readTask(t: SubscribedTask): Promise<void> {
    const error = await this.read(t);
    if (this.cancelled.signal.aborted) return;
    this.done.push(error ? { taskId: t.taskId, error } : { taskId: t.taskId });
    this.kick();
  }

  // Reads one task's log into the outbox; returns the error text if reading failed.
  private async read(t: SubscribedTask): Promise<string | undefined> {
    const o = this.options;
    try {
      const lines = this.pub.opts.source.taskLogs({ ID: t.taskId, ...(t.containerId ? { containerId: t.containerId } : {}) }, {
        follow: o.follow, stdout: o.stdout, stderr: o.stderr,
        ...(o.tail !== undefined ? { tail: o.tail } : {}), ...(o.since ? { since: o.since } : {}), ...(o.until ? { until: o.until } : {}),
      }, this.cancelled.signal);
      for await (const l of lines) {
        if (this.cancelled.signal.aborted) break;
        await this.push(t.taskId, l);
      }
      return undefined;
    } catch (err) {
      if (this.cancelled.signal.aborted) return undefined;
      this.log.debug({ task: t.taskId, err: (err as Error).message }, 'reading a task log failed');
      return (err as Error).message;
    }
  }

  private async push(taskId: string, l: LogLine): Promise<void> {
    // A line longer than a message may carry (a TTY without newlines) goes in parts.
    for (let off = 0; off < l.line.length || off === 0; off += MAX_LINE_BYTES) {
      while (this.pendingBytes >= MAX_PENDING_BYTES && !this.cancelled.signal.aborted) {
        await new Promise<void>((r) => this.spaceWaiters.push(r));
      }
      if (this.cancelled.signal.aborted) return;
      const data = l.line.subarray(off, off + MAX_LINE_BYTES).toString('base64');
      this.pending.push({ line: { taskId, stream: l.stream, timestamp: l.timestamp, data }, bytes: data.length });
      this.pendingBytes += data.length;
      this.kick();
      if (l.line.length === 0) break;
    }
  }

  // One publish in flight at a time; what arrives meanwhile goes in the next batch.
  private kick(): void {
    if (this.sending || this.finished || this.cancelled.signal.aborted) return;
    if (!this.pending.length && !this.done.length && !this.closing) return;
    this.sending = true;
    void this.flush().finally(() => { this.sending = false; this.kick(); });
  }

  private async flush(): Promise<void> {
    const req: PublishRequest = { subscriptionId: this.id, messages: [] };
    let bytes = 0;
    let n = 0;
    const max = Math.min(this.pending.length, MAX_BATCH_MESSAGES);
    while (n < max && bytes + this.pending[n]!.bytes <= MAX_BATCH_BYTES) bytes += this.pending[n++]!.bytes;
    req.messages = this.pending.splice(0, n).map((p) => p.line);
    this.pendingBytes -= bytes;
    for (const w of this.spaceWaiters.splice(0)) w();
    // `done` and `close` only travel once every line before them has.
    const last = this.pending.length === 0;
    if (last && this.done.length) req.done = this.done.splice(0, MAX_BATCH_MESSAGES);
    const closing = last && !this.done.length && this.closing;
    if (closing) {
      req.close = true;
      if (closing.error) req.error = closing.error;
    }
    try {
      await this.channel.unary(Publish, req, { timeoutMs: this.pub.opts.publishTimeoutMs ?? DEFAULT_PUBLISH_TIMEOUT_MS, signal: this.cancelled.signal });
    } catch (err) {
      // The manager no longer wants it (the caller left) or cannot be reached: stop reading.
      if (!this.cancelled.signal.aborted && !(isShoalError(err) && err.kind === 'not_found')) {
        this.log.warn({ subscription: this.id, err: (err as Error).message }, 'publishing logs failed; subscription dropped');
        // Tell the broker, so that the caller's stream does not wait for this node (if the
        // link itself is gone, the broker learns it from the dropped subscription stream).
        const error = `could not publish logs: ${(err as Error).message}`;
        this.channel.unary(Publish, { subscriptionId: this.id, messages: [], close: true, error }, { timeoutMs: CLOSE_TIMEOUT_MS }).catch(() => undefined);
      }
      await this.cancel();
      return;
    }
    if (closing) this.finish();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.pub.active.delete(this);
    this.forget();
  }

  async cancel(): Promise<void> {
    if (!this.cancelled.signal.aborted) this.cancelled.abort();
    for (const w of this.spaceWaiters.splice(0)) w();
    this.pending = [];
    this.pendingBytes = 0;
    this.finish();
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) { resolve(); return; }
    const done = (): void => { clearTimeout(timer); signal.removeEventListener('abort', done); resolve(); };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
