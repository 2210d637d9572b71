import type { Logger } from '../common/log';
import { ETCD_HELD_ENTRIES, RaftLogWindow } from './raft-log-window';

// Keeps etcd's database small and writable: compacts history older than a
// retention window behind the mirror, defragments when most of the file is
// free pages, and clears a NOSPACE alarm (which makes etcd refuse every
// write) by compacting, defragmenting and disarming it. And keeps etcd's
// memory small: once the store is quiet after a burst of big writes, the
// manager whose member leads etcd pushes those entries out of every
// member's in-memory raft log (raft-log-window.ts) with entries that change
// nothing.

export interface MaintenanceBackend {
  // `leads`: the member this client talks to is etcd's raft leader.
  status(): Promise<{ dbSize: number; dbSizeInUse: number; leads: boolean }>;
  alarms(): Promise<string[]>;          // raised alarm types, e.g. ['Nospace']
  compact(revision: number): Promise<void>;
  defragment(): Promise<void>;
  disarm(): Promise<void>;
  noopEntry(): Promise<void>;           // one raft entry that changes no key and makes no revision
}

export function isMaintainable(b: object): b is MaintenanceBackend {
  return ['status', 'alarms', 'compact', 'defragment', 'disarm', 'noopEntry'].every((m) => typeof (b as Record<string, unknown>)[m] === 'function');
}

export interface MaintenanceOptions {
  intervalMs: number;        // how often to look
  retention: number;         // revisions kept behind the mirror (watch resumes need them)
  defragBelow: number;       // defragment when in-use / size falls below this...
  defragMinBytes: number;    // ...and the file is at least this big
  trimAboveBytes: number;    // push etcd's raft log on when its last entries hold more than this...
  quietRevisions: number;    // ...and fewer revisions than this were written since the last look
  trimInflight: number;      // no-op entries in flight
  trimMs: number;            // the bound on one trim
}

// A revision is a transaction (up to 128 writes in a bulk create): 2,000 of
// them behind the mirror is still a minute or more of the busiest writing,
// far more than a watch resume needs; 10,000 kept a whole 150,000-task create
// (and its file pages, resident in etcd) until the next look.
//
// The trim: a 150,000-task create leaves its last 7,000 transactions, some
// 60 MB packed, in each member's memory; the trim took three bare members
// from 227-238 to 145-153 MB RSS each in about 6 s, 8 CPU-seconds of etcd
// (bench/etcd-trim.ts; the mirror counts values unpacked, about 2.6 times
// their packed size).
// A store taking 10 writes a second turns the window over within 12 minutes
// anyway: not quiet.
export const DEFAULT_MAINTENANCE: MaintenanceOptions = {
  intervalMs: 20_000, retention: 2_000, defragBelow: 0.5, defragMinBytes: 64 * 1024 * 1024,
  trimAboveBytes: 32 * 1024 * 1024, quietRevisions: 200, trimInflight: 8, trimMs: 120_000,
};

// An entry lighter than this is left where it is: the trim pushes out only
// what lies before the newest heavier one.
const TRIM_HEAVY_ENTRY_BYTES = 1024;

export class Maintenance {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private compactedTo = 0;
  private stopped = false;
  private lookedAt?: number;   // the mirror's revision at the last pass

  constructor(
    private readonly backend: MaintenanceBackend,
    private readonly revision: () => number,
    private readonly log: Logger,
    private readonly opts: MaintenanceOptions = DEFAULT_MAINTENANCE,
    private readonly raftLog: RaftLogWindow = new RaftLogWindow(ETCD_HELD_ENTRIES),
  ) {}

  // One event the store heard, of `revision`, weighing `bytes`: what etcd's
  // raft log holds of recent writes (the trim below).
  noteWritten(revision: number, bytes: number): void { this.raftLog.note(revision, bytes); }

  start(): void { this.arm(this.opts.intervalMs); }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  // A write was refused for space: look now rather than at the next tick.
  nudge(): void { this.arm(0); }

  private arm(ms: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => { this.timer = undefined; void this.tick(); }, ms);
    this.timer.unref();
  }

  // One pass; never throws (each failure is logged, the next tick retries).
  tick(): Promise<void> {
    this.running ??= this.pass().catch((err: Error) => { this.log.warn({ err: err.message }, 'store maintenance failed'); })
      .finally(() => { this.running = undefined; this.arm(this.opts.intervalMs); });
    return this.running;
  }

  private async pass(): Promise<void> {
    const alarms = await this.backend.alarms();
    if (alarms.some((a) => /nospace/i.test(a))) {
      this.log.error({ alarms }, 'cluster store is out of space; compacting, defragmenting and disarming');
      await this.compact(this.revision());
      await this.backend.defragment();
      await this.backend.disarm();
      this.log.info('cluster store space alarm cleared');
      return;
    }
    const revision = this.revision();
    const quiet = this.lookedAt !== undefined && revision - this.lookedAt < this.opts.quietRevisions;
    this.lookedAt = revision;
    await this.compact(revision - this.opts.retention);
    const { dbSize, dbSizeInUse, leads } = await this.backend.status();
    if (dbSize >= this.opts.defragMinBytes && dbSizeInUse / dbSize < this.opts.defragBelow) {
      const started = Date.now();
      await this.backend.defragment();
      this.log.info({ dbSize, dbSizeInUse, ms: Date.now() - started }, 'cluster store defragmented');
    }
    // One manager does it (the others' members drop the same entries), and
    // never while the store is busy.
    if (leads && quiet && this.raftLog.heldBytes > this.opts.trimAboveBytes) await this.trimRaftLog(this.raftLog);
  }

  // Sends as many no-op entries as there are entries behind the newest heavy
  // one; gives way when the store's own writes resume.
  private async trimRaftLog(window: RaftLogWindow): Promise<void> {
    const entries = window.size - window.lightTail(TRIM_HEAVY_ENTRY_BYTES);
    if (entries === 0) { window.clear(); return; }   // many light entries: nothing big to push out
    const heldMB = Math.round(window.heldBytes / 1024 / 1024);
    const started = Date.now(), from = this.revision();
    let sent = 0;
    let stopped: string | undefined;
    const worker = async (): Promise<void> => {
      while (sent < entries && !stopped && !this.stopped) {
        if (this.revision() - from >= this.opts.quietRevisions) stopped = 'the store is writing again';
        else if (Date.now() - started > this.opts.trimMs) stopped = `not done within ${this.opts.trimMs / 1000} s`;
        else {
          sent++;
          // One failure ends the trim for every worker (etcd is likely busy or gone).
          try { await this.backend.noopEntry(); } catch (e) { stopped ??= `an entry failed: ${(e as Error).message}`; }
        }
      }
    };
    await Promise.all(Array.from({ length: this.opts.trimInflight }, worker));
    if (stopped || this.stopped) {
      this.log.info({ sent, entries, heldMB, ms: Date.now() - started }, `cluster store: stopped pushing etcd's raft log on (${stopped ?? 'closing'}); the next quiet look tries again`);
      return;
    }
    window.clear();
    this.log.info({ entries, heldMB, ms: Date.now() - started }, 'cluster store: pushed a burst of writes out of etcd\'s in-memory raft log');
  }

  private async compact(revision: number): Promise<void> {
    if (revision <= this.compactedTo || revision <= 1) return;
    try {
      await this.backend.compact(revision);
    } catch (e) {
      // etcd's own auto-compaction may have gone further already.
      if (!/compacted/i.test((e as Error).message)) throw e;
    }
    this.compactedTo = revision;
  }
}
