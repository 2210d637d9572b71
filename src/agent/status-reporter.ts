import type { TaskState, TaskStatus } from '../model/types';
import { taskStateRank } from '../model/types';
import type { Logger } from '../common/log';
import type { AgentControlPlane } from './control-plane';

export interface RetryOptions { minMs: number; maxMs: number }
export const DEFAULT_RETRY: RetryOptions = { minMs: 200, maxMs: 5000 };

// How long a task's way to its container (accepted, preparing, ready,
// starting) may go unreported, in the hope that `running` or an end replaces
// it: each report is a store write that every manager applies, and a
// container that starts within the hold costs one instead of two or three.
// A long pull still shows `preparing` after this long.
export const TRANSITIONAL_HOLD_MS = 1000;
const FAILURE_LOG_MS = 10_000;
const ACCEPTED = taskStateRank('accepted');
const STARTING = taskStateRank('starting');
const isTransitional = (s: TaskState): boolean => { const r = taskStateRank(s); return r >= ACCEPTED && r <= STARTING; };

interface Entry {
  pending?: TaskStatus;
  sending?: Promise<void>;
  backoff: number;
  holdUntil?: number; // when a held transitional status goes out anyway
  wake?: () => void;
}

// Sends each task's observed status to the managers. One queue per task, so a
// slow or failing write for one task never holds up another; within a task
// only the newest unsent status is kept (states only move forward, so a
// skipped intermediate one loses nothing) and a failed write is retried until
// a newer status replaces it. Transitional states wait up to holdMs first.
export class StatusReporter {
  private readonly entries = new Map<string, Entry>();
  private closing = false;
  private failed = 0;          // failed reports since the last warning
  private failureLoggedAt = -Infinity;

  constructor(private readonly cp: AgentControlPlane, private readonly log: Logger, private readonly retry: RetryOptions = DEFAULT_RETRY,
    private readonly holdMs = TRANSITIONAL_HOLD_MS) {}

  report(taskId: string, status: TaskStatus): void {
    let e = this.entries.get(taskId);
    if (!e) this.entries.set(taskId, (e = { backoff: this.retry.minMs }));
    e.pending = status;
    e.wake?.(); // a newer status need not wait out the backoff of an older one
    if (!e.sending) e.sending = this.drain(taskId, e).finally(() => { e!.sending = undefined; });
  }

  // The task is gone: nothing more to say about it.
  forget(taskId: string): void {
    const e = this.entries.get(taskId);
    if (!e) return;
    e.pending = undefined;
    e.wake?.();
    this.entries.delete(taskId);
  }

  // Stops retrying; waits (up to timeoutMs) for what is being sent.
  async close(timeoutMs = 2000): Promise<void> {
    this.closing = true;
    for (const e of this.entries.values()) e.wake?.();
    const inFlight = [...this.entries.values()].map((e) => e.sending).filter((p): p is Promise<void> => !!p);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(inFlight),
      new Promise<void>((resolve) => { timer = setTimeout(resolve, timeoutMs); }),
    ]);
    clearTimeout(timer);
  }

  private async drain(taskId: string, e: Entry): Promise<void> {
    while (e.pending) {
      if (isTransitional(e.pending.State) && this.holdMs > 0 && !this.closing) {
        e.holdUntil ??= Date.now() + this.holdMs;
        const left = e.holdUntil - Date.now();
        if (left > 0) { await this.pause(e, left); continue; } // woken by a newer status, or the hold is over
      }
      e.holdUntil = undefined;
      const status = e.pending;
      e.pending = undefined;
      try {
        await this.cp.updateTaskStatus(taskId, status);
        this.log.debug({ task: taskId, state: status.State }, 'task status written');
        e.backoff = this.retry.minMs;
      } catch (err) {
        if (this.closing || this.entries.get(taskId) !== e) return;
        this.noteFailure(taskId, status.State, err, e.backoff);
        e.pending ??= status;
        e.holdUntil = 0; // already held once: a retry only backs off
        await this.pause(e, e.backoff);
        e.backoff = Math.min(this.retry.maxMs, e.backoff * 2);
        if (this.closing) return;
      }
    }
  }

  // One warning per FAILURE_LOG_MS with the count since the last: a call that
  // fails fails for all the tasks in it (1,000 at a time), and a line per task
  // buried the log of a busy node.
  private noteFailure(taskId: string, state: TaskState, err: unknown, retryMs: number): void {
    this.failed++;
    const now = Date.now();
    if (now - this.failureLoggedAt < FAILURE_LOG_MS) return;
    this.log.warn({ err: (err as Error).message, task: taskId, state, retryMs, failed: this.failed }, 'task status reports failed; retrying');
    this.failed = 0;
    this.failureLoggedAt = now;
  }

  // Waits `ms`, or less when report(), forget() or close() wakes the entry.
  private async pause(e: Entry, ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      e.wake = () => { clearTimeout(timer); resolve(); };
    });
    e.wake = undefined;
  }
}
