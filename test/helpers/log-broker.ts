import { silentLogger } from '../../src/common/log';
import type { Store } from '../../src/store/store';
import { MemoryNetwork } from '../../src/rpc/memory';
import type { Peer } from '../../src/rpc/transport';
import { startLogBroker, type LogBroker, type LogBrokerOptions } from '../../src/manager/logbroker';
import { startLogPublisher, type LogPublisher, type LogPublisherOptions } from '../../src/agent/log-publisher';
import type { LogLine, LogSource, TaskLogOptions, TaskLogRef } from '../../src/agent/log-source';

export const CLUSTER = 'clustertest';
export const RETRY = { minMs: 10, maxMs: 100 };

export const peer = (nodeId: string, address = `${nodeId}:2377`, role: Peer['role'] = 'worker'): Peer => ({ nodeId, role, clusterId: CLUSTER, address });

// A cluster of log publishers around one broker, on a MemoryNetwork.
export class LogCluster {
  readonly net = new MemoryNetwork();
  readonly broker: LogBroker;
  readonly agents = new Map<string, LogPublisher>();
  constructor(readonly store: Store, readonly managerAddress = 'manager:2377', opts: Partial<LogBrokerOptions> = {}) {
    this.broker = startLogBroker({ store, server: this.net.listen(managerAddress, () => CLUSTER), log: silentLogger, ...opts });
  }

  addAgent(nodeId: string, source: LogSource, opts: Partial<LogPublisherOptions> = {}): LogPublisher {
    const self = peer(nodeId);
    const p = startLogPublisher({ nodeId, source, managers: [this.managerAddress], dial: (a) => this.net.channel(self, a), log: silentLogger, retry: RETRY, ...opts });
    this.agents.set(nodeId, p);
    return p;
  }

  async stop(): Promise<void> {
    await Promise.all([...this.agents.values()].map((a) => a.stop()));
    await this.broker.stop();
  }
}

// A log source in memory: fixed lines per task, and with follow, lines pushed
// later until the task's log is ended or the reader is cancelled.
export class FakeSource implements LogSource {
  readonly calls: Array<{ task: string; opts: TaskLogOptions }> = [];
  readonly lines = new Map<string, LogLine[]>();
  readonly live = new Map<string, { push(l: LogLine): void; end(): void }>();
  readonly failures = new Map<string, string>();
  started = 0;
  ended = 0;

  async *taskLogs(task: TaskLogRef, opts: TaskLogOptions, signal: AbortSignal): AsyncIterable<LogLine> {
    this.calls.push({ task: task.ID, opts });
    this.started++;
    try { yield* this.produce(task, opts, signal); } finally { this.ended++; }
  }

  get reading(): number { return this.started - this.ended; }

  private async *produce(task: TaskLogRef, opts: TaskLogOptions, signal: AbortSignal): AsyncIterable<LogLine> {
    const failure = this.failures.get(task.ID);
    if (failure) throw new Error(failure);
    let lines = this.lines.get(task.ID) ?? [];
    if (opts.tail !== undefined) lines = lines.slice(Math.max(0, lines.length - Number(opts.tail)));
    for (const l of lines) yield l;
    if (!opts.follow) return;
    const queue: LogLine[] = [];
    let wake: (() => void) | undefined;
    let over = false;
    this.live.set(task.ID, { push: (l) => { queue.push(l); wake?.(); }, end: () => { over = true; wake?.(); } });
    const aborted = new Promise<void>((r) => signal.addEventListener('abort', () => r(), { once: true }));
    while (!signal.aborted) {
      while (queue.length) yield queue.shift()!;
      if (over) return;
      await Promise.race([aborted, new Promise<void>((r) => { wake = r; })]);
    }
  }
}

export const line = (stream: 'stdout' | 'stderr', sec: number, text: string): LogLine => ({ stream, timestamp: `2026-01-01T00:00:0${sec}.000000000Z`, line: Buffer.from(text + '\n') });
