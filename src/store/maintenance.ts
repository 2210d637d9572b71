import type { Logger } from '../common/log';

// Keeps etcd's database small and writable: compacts history older than a
// retention window behind the mirror, defragments when most of the file is
// free pages, and clears a NOSPACE alarm (which makes etcd refuse every
// write) by compacting, defragmenting and disarming it.

export interface MaintenanceBackend {
  status(): Promise<{ dbSize: number; dbSizeInUse: number }>;
  alarms(): Promise<string[]>;          // raised alarm types, e.g. ['Nospace']
  compact(revision: number): Promise<void>;
  defragment(): Promise<void>;
  disarm(): Promise<void>;
}

export function isMaintainable(b: object): b is MaintenanceBackend {
  return ['status', 'alarms', 'compact', 'defragment', 'disarm'].every((m) => typeof (b as Record<string, unknown>)[m] === 'function');
}

export interface MaintenanceOptions {
  intervalMs: number;        // how often to look
  retention: number;         // revisions kept behind the mirror (watch resumes need them)
  defragBelow: number;       // defragment when in-use / size falls below this...
  defragMinBytes: number;    // ...and the file is at least this big
}

// A revision is a transaction (up to 128 writes in a bulk create): 2,000 of
// them behind the mirror is still a minute or more of the busiest writing,
// far more than a watch resume needs; 10,000 kept a whole 150,000-task create
// (and its file pages, resident in etcd) until the next look.
export const DEFAULT_MAINTENANCE: MaintenanceOptions = {
  intervalMs: 20_000, retention: 2_000, defragBelow: 0.5, defragMinBytes: 64 * 1024 * 1024,
};

export class Maintenance {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private compactedTo = 0;
  private stopped = false;

  constructor(
    private readonly backend: MaintenanceBackend,
    private readonly revision: () => number,
    private readonly log: Logger,
    private readonly opts: MaintenanceOptions = DEFAULT_MAINTENANCE,
  ) {}

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
    await this.compact(this.revision() - this.opts.retention);
    const { dbSize, dbSizeInUse } = await this.backend.status();
    if (dbSize >= this.opts.defragMinBytes && dbSizeInUse / dbSize < this.opts.defragBelow) {
      const started = Date.now();
      await this.backend.defragment();
      this.log.info({ dbSize, dbSizeInUse, ms: Date.now() - started }, 'cluster store defragmented');
    }
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
