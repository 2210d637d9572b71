import type { IncomingMessage } from 'node:http';
import { expectOk, type EngineClient } from '../../engine/client';
import { onJsonLines } from '../../engine/json-lines';
import type { Logger } from '../../common/log';
import type { ContainerEvent } from './executor';
import { TASK_ID_LABEL } from './container-config';

// ONE `GET /events` stream for all task containers: the agent learns of exits,
// health changes and removals as they happen, without polling containers. When
// the stream breaks it reconnects with `since` (so the engine replays what was
// missed) and tells subscribers to re-inspect, in case the gap was longer than
// the engine's event buffer.

const FILTERS = {
  type: ['container'],
  label: [TASK_ID_LABEL],
  event: ['die', 'destroy', 'oom', 'health_status'],
};

interface EngineEvent {
  Type?: string;
  Action?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
  time?: number;
  timeNano?: number;
}

// The part of the engine client the stream uses (tests give a fake).
export type EngineEventSource = Pick<EngineClient, 'stream'>;

export interface EngineEventStreamOptions {
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

export class EngineEventStream {
  private readonly listeners = new Set<(e: ContainerEvent) => void>();
  private stream?: IncomingMessage;
  private connected = false;
  private everConnected = false;
  private connecting = false;
  private lastEventSec?: number;
  private connectedAtSec?: number;
  private retryTimer?: NodeJS.Timeout;
  private backoff: number;
  private waiters: Array<() => void> = [];

  constructor(private readonly engine: EngineEventSource, private readonly log: Logger, private readonly opts: EngineEventStreamOptions = {}) {
    this.backoff = opts.minBackoffMs ?? 100;
  }

  subscribe(listener: (e: ContainerEvent) => void): { ready: Promise<void>; close(): void } {
    this.listeners.add(listener);
    const ready = this.connected ? Promise.resolve() : new Promise<void>((resolve) => this.waiters.push(resolve));
    if (!this.stream && !this.connecting && !this.retryTimer) void this.connect();
    return {
      ready,
      close: () => {
        this.listeners.delete(listener);
        if (!this.listeners.size) this.disconnect();
      },
    };
  }

  private async connect(): Promise<void> {
    if (!this.listeners.size) return;
    this.connecting = true;
    // Replay from a second before the last thing we know of: duplicates are
    // harmless (handling is idempotent), a gap is not.
    const last = this.lastEventSec ?? this.connectedAtSec;
    const since = last !== undefined ? Math.max(0, last - 1).toFixed(9) : undefined;
    let stream: IncomingMessage;
    try {
      stream = await expectOk(await this.engine.stream('GET', '/events', { query: { since, filters: JSON.stringify(FILTERS) } }));
    } catch (err) {
      this.connecting = false;
      this.log.warn({ err: (err as Error).message, retryMs: this.backoff }, 'engine event stream unavailable');
      this.scheduleReconnect();
      return;
    }
    this.connecting = false;
    if (!this.listeners.size) { stream.destroy(); return; }
    this.stream = stream;
    this.connected = true;
    this.connectedAtSec = Date.now() / 1000;
    this.backoff = this.opts.minBackoffMs ?? 100;
    const reconnected = this.everConnected;
    this.everConnected = true;
    onJsonLines(stream, (line) => this.onLine(line));
    const lost = (err?: Error): void => {
      if (this.stream !== stream) return;
      this.stream = undefined;
      this.connected = false;
      if (!this.listeners.size) return;
      this.log.warn({ err: err?.message }, 'engine event stream lost; reconnecting');
      this.scheduleReconnect();
    };
    stream.on('end', () => lost());
    stream.on('close', () => lost());
    stream.on('error', (err: Error) => lost(err));
    for (const w of this.waiters.splice(0)) w();
    if (reconnected) this.emit({ type: 'resync' });
  }

  private scheduleReconnect(): void {
    if (this.retryTimer || !this.listeners.size) return;
    const delay = this.backoff;
    this.backoff = Math.min(this.opts.maxBackoffMs ?? 5000, this.backoff * 2);
    this.retryTimer = setTimeout(() => { this.retryTimer = undefined; void this.connect(); }, delay);
    this.retryTimer.unref();
  }

  private disconnect(): void {
    if (this.retryTimer) { clearTimeout(this.retryTimer); this.retryTimer = undefined; }
    const s = this.stream;
    this.stream = undefined;
    this.connected = false;
    s?.destroy();
  }

  private onLine(line: string): void {
    let ev: EngineEvent;
    try { ev = JSON.parse(line) as EngineEvent; } catch { return; }
    if (ev.timeNano) this.lastEventSec = ev.timeNano / 1e9;
    else if (ev.time) this.lastEventSec = ev.time;
    const e = toContainerEvent(ev);
    if (e) this.emit(e);
  }

  private emit(e: ContainerEvent): void {
    for (const l of this.listeners) {
      try { l(e); } catch (err) { this.log.error({ err }, 'container event listener failed'); }
    }
  }
}

export function toContainerEvent(ev: EngineEvent): ContainerEvent | undefined {
  if (ev.Type && ev.Type !== 'container') return undefined;
  const containerId = ev.Actor?.ID ?? '';
  const attrs = ev.Actor?.Attributes ?? {};
  const taskId = attrs[TASK_ID_LABEL];
  if (!containerId || !taskId) return undefined;
  const action = ev.Action ?? '';
  if (action === 'die') return { type: 'die', containerId, taskId, exitCode: Number(attrs['exitCode'] ?? 0) };
  if (action === 'destroy') return { type: 'destroy', containerId, taskId };
  if (action === 'oom') return { type: 'oom', containerId, taskId };
  if (action.startsWith('health_status')) return { type: 'health_status', containerId, taskId, status: action.slice(action.indexOf(':') + 1).trim() };
  return undefined;
}
