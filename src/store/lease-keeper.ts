import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../common/log';

// Renews a manager's lease from a thread of its own, so that the lease
// measures whether the daemon is alive, not how late its event loop runs.
// At 5,000 nodes a leader taking over (or placing tens of thousands of tasks)
// held its loop 5-25 s at a time; renewals waited behind that, the lease
// lapsed, the next leader took over into the same load and lost it too: the
// role moved five times in three minutes (docs/SCALE.md). The fence
// on the leader's writes (its key's create revision) keeps a held-up leader
// safe, so only its liveness needs this thread: a daemon that dies loses its
// lease after the TTL as before, and one whose loop has not turned for
// `maxStallMs` is renewed no more (stuck, not busy), so it loses it too.
//
// The thread talks to etcd through its JSON gateway (`/v3/lease/keepalive`,
// HTTPS with the member's client certificate): node's https only, no second
// gRPC client (about 20 MB) in the thread.

export interface LeaseKeeper {
  // The lease to renew from now on (undefined: none).
  keep(lease: string | undefined): void;
  // The daemon's loop turned at `now` (ms): called on every election tick.
  beat(now: number): void;
  // When the latest renewal of `lease` this keeper saw confirmed was sent.
  confirmedSentAt(lease: string): number | undefined;
  close(): Promise<void>;
}

// etcd's client URL; the TLS credentials when it is https.
export interface KeeperTarget { url: string; ca?: Buffer; cert?: Buffer; key?: Buffer }
export interface KeeperTiming { renewMs: number; maxStallMs: number; timeoutMs: number }

// How long a daemon whose loop does not turn keeps its lease renewed: longer
// than the worst hold-up seen at 5,000 nodes, short of a stuck process.
export const DEFAULT_KEEPER_TIMING: KeeperTiming = { renewMs: 500, maxStallMs: 30_000, timeoutMs: 2_000 };

// Shared with the thread: the daemon's last beat (ms), and the last
// confirmation packed with the lease's generation (sentAt * GENS + gen), in
// one word so that a confirmation of a lease since replaced never counts.
export const BEAT = 0;
export const CONFIRMED = 1;
export const GENS = 1024n;

export interface KeeperData extends KeeperTarget, KeeperTiming { shared: SharedArrayBuffer }
export interface KeeperMessage { gen: number; lease?: string }

export class WorkerLeaseKeeper implements LeaseKeeper {
  private readonly shared = new BigInt64Array(new SharedArrayBuffer(2 * BigInt64Array.BYTES_PER_ELEMENT));
  private readonly worker: Worker;
  private gen = 0;
  private lease?: string;
  private failed = false;

  constructor(target: KeeperTarget, log: Logger, timing: KeeperTiming = DEFAULT_KEEPER_TIMING) {
    Atomics.store(this.shared, BEAT, BigInt(Date.now()));
    const data: KeeperData = { ...target, ...timing, shared: this.shared.buffer as SharedArrayBuffer };
    this.worker = new Worker(join(__dirname, 'lease-keeper-worker.js'), {
      workerData: data,
      // A few timers and one https agent: keep the thread's heap small.
      resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 2 },
    });
    this.worker.unref();
    // The daemon's own renewals go on without it: said once, not fatal.
    this.worker.on('error', (err) => {
      if (!this.failed) log.warn({ err: err.message }, 'lease keeper thread failed; renewals from the main loop only');
      this.failed = true;
    });
  }

  keep(lease: string | undefined): void {
    if (lease === this.lease) return;
    this.lease = lease;
    this.gen = (this.gen + 1) % Number(GENS);
    const m: KeeperMessage = { gen: this.gen, ...(lease ? { lease } : {}) };
    this.worker.postMessage(m);
  }

  beat(now: number): void { Atomics.store(this.shared, BEAT, BigInt(now)); }

  confirmedSentAt(lease: string): number | undefined {
    if (lease !== this.lease) return undefined;
    const v = Atomics.load(this.shared, CONFIRMED);
    if (v === 0n || Number(v % GENS) !== this.gen) return undefined;
    return Number(v / GENS);
  }

  async close(): Promise<void> { await this.worker.terminate(); }
}
