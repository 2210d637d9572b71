import type { Logger } from '../../common/log';
import type { Backend, Compare, LeaseBackend, Op, TxnResult } from '../../store/backend';
import { LEADER_KEY, presenceKey } from '../../store/keys';
import type { LeaseKeeper } from '../../store/lease-keeper';
import type { Fence, Store } from '../../store/store';
import { electionStep, leaseAlive, leaseTtlMs, type ElectionView } from './decide';

// What runs while this manager leads (orchestrators, scheduler, dispatcher,
// membership upkeep), given the fenced store.
export interface LeaderComponents { stop(): Promise<void> }

export interface ElectionOptions {
  store: Store;
  nodeId: string;
  log: Logger;
  // Lease TTL when the manager is not held up. etcd's own floor with our
  // tuning (election 500 ms, heartbeat 50 ms) is 1 s. 4 s: a leader placing
  // thousands of tasks on a loaded two-core host could not renew a 2 s lease
  // in time and lost its term over and over (bench/scale.ts); an idle
  // leader's role fails over within about 5 s (a held-up one's lease
  // stretches, up to maxTtlSeconds; Docker: 11-23 s), and the API's writes,
  // which go to etcd from any manager, never wait for it.
  ttlSeconds?: number;
  // The most the TTL stretches to under load (decide.ts leaseTtlMs); the
  // configured TTL when smaller.
  maxTtlSeconds?: number;
  renewMs?: number;
  marginMs?: number;
  strainWindowMs?: number;
  lead(fence: Fence): Promise<LeaderComponents>;
  now?: () => number;
  // Renews the lease off the main loop (store/lease-keeper.ts); by default
  // the backend's, when it has one. The election's own renewals go on beside it.
  keeper?: LeaseKeeper;
}

export const DEFAULT_LEADER_TTL_S = 4;
const DEFAULT_MAX_LEADER_TTL_S = 16;
// How long a hold-up keeps the lease stretched.
const DEFAULT_STRAIN_WINDOW_MS = 60_000;
const DEFAULT_RENEW_MS = 500;
const DEFAULT_MARGIN_MS = 500;
// Renewals overlap when etcd is slow to confirm them (one every renewMs,
// 8 at most: enough for a 4 s round trip): one at a time, a
// lease's age reached twice the round trip before it counted as renewed.
const MAX_RENEWALS_IN_FLIGHT = 8;

// One manager's part in the election (decide.ts has the rules), and its
// presence key: both live under the same lease, so a manager that stops
// renewing is unreachable and not leader at once.
export class Election {
  private lease?: string;
  private confirmedSentAt?: number;
  private term?: number;
  private running?: LeaderComponents;
  private timer?: NodeJS.Timeout;
  private stepping = false;
  private pending = false;
  private renewalsInFlight = 0;
  private stopped = false;
  private keeper?: LeaseKeeper;
  private deposedTerm?: number;
  private unsubscribe?: () => void;
  private readonly etcd: Backend & LeaseBackend;
  private readonly baseTtlMs: number;
  private readonly maxTtlMs: number;
  // The TTL of the lease held now (of the next one while there is none).
  private ttlMs: number;
  // Hold-ups seen lately: when, and how long (ms).
  private strain: Array<{ at: number; ms: number }> = [];

  constructor(private readonly opts: ElectionOptions) {
    const etcd = opts.store.liveness();
    if (!etcd) throw new Error('the store has no lease support: no election possible');
    this.etcd = etcd;
    this.baseTtlMs = (opts.ttlSeconds ?? DEFAULT_LEADER_TTL_S) * 1000;
    this.maxTtlMs = Math.max(this.baseTtlMs, (opts.maxTtlSeconds ?? DEFAULT_MAX_LEADER_TTL_S) * 1000);
    this.ttlMs = this.baseTtlMs;
  }

  private get strainWindowMs(): number { return this.opts.strainWindowMs ?? DEFAULT_STRAIN_WINDOW_MS; }

  private now(): number { return (this.opts.now ?? Date.now)(); }

  // A renewal's round trip, or how late the renewal timer fired.
  private noteStrain(ms: number): void {
    if (ms > 0) this.strain.push({ at: this.now(), ms });
  }

  // The TTL the hold-ups of the window ask for (older ones dropped here).
  private wantedTtlMs(): number {
    const at = this.now();
    this.strain = this.strain.filter((s) => at - s.at < this.strainWindowMs);
    const worst = this.strain.reduce((w, s) => Math.max(w, s.ms), 0);
    return leaseTtlMs(this.baseTtlMs, this.maxTtlMs, worst);
  }

  get leading(): boolean { return this.term !== undefined; }

  start(): void {
    this.unsubscribe = this.opts.store.subscribeMeta(() => this.kick());
    this.keeper = this.opts.keeper ?? this.etcd.leaseKeeper?.(this.opts.log);
    const renewMs = this.opts.renewMs ?? DEFAULT_RENEW_MS;
    let last = this.now();
    this.timer = setInterval(() => {
      const at = this.now();
      this.keeper?.beat(at);
      this.noteStrain(at - last - renewMs);
      last = at;
      this.renewSoon();
      this.kick();
    }, renewMs);
    this.kick();
  }

  // Renewals run beside the steps, never behind one: a step can wait for
  // seconds (a campaign waits up to 10 s for the mirror to show its key; a
  // step-down stops the leader's components; a grant waits on a slow etcd).
  // Renewals queued behind it let the 2 s lease expire at etcd, taking the
  // presence key (the manager shows Unreachable) and the leader key with it,
  // and the next step found the lease gone and started over.
  private renewSoon(): void {
    if (this.stopped || this.renewalsInFlight >= MAX_RENEWALS_IN_FLIGHT || !this.lease) return;
    this.renewalsInFlight++;
    void this.renew().finally(() => { this.renewalsInFlight--; });
  }

  // One step at a time; a request during one runs right after it.
  private kick(): void {
    if (this.stopped) return;
    if (this.stepping) { this.pending = true; return; }
    this.stepping = true;
    void this.step().catch((err: unknown) => this.opts.log.warn({ err: (err as Error).message }, 'election step failed'))
      .finally(() => {
        this.stepping = false;
        if (this.pending) { this.pending = false; this.kick(); }
      });
  }

  // The lease held now; the keeper renews that one.
  private setLease(lease: string | undefined): void {
    this.lease = lease;
    this.keeper?.keep(lease);
  }

  // The latest confirmed renewal, the election's own or the keeper's.
  private confirmed(): number | undefined {
    const kept = this.lease ? this.keeper?.confirmedSentAt(this.lease) : undefined;
    if (kept === undefined) return this.confirmedSentAt;
    return Math.max(kept, this.confirmedSentAt ?? kept);
  }

  private view(): ElectionView {
    const kv = this.opts.store.meta(LEADER_KEY);
    return {
      nodeId: this.opts.nodeId,
      now: this.now(),
      ttlMs: this.ttlMs,
      marginMs: this.opts.marginMs ?? DEFAULT_MARGIN_MS,
      leaseConfirmedSentAt: this.confirmed(),
      leaderKey: kv ? { value: kv.value, createRevision: kv.createRevision } : undefined,
      term: this.term,
    };
  }

  // etcd refused a write of this term, and a read from etcd showed the leader
  // key gone or another term's (Store.fenceHolds): step down now, whatever
  // the mirror says. A mirror behind etcd (its watch stalled under load)
  // went on showing this manager's key, so a deposed leader kept its
  // dispatcher serving nodes whose reports it could no longer write.
  private deposed(term: number): void {
    if (this.term !== term) return;
    this.deposedTerm = term;
    this.kick();
  }

  private async step(): Promise<void> {
    if (this.deposedTerm !== undefined) {
      const term = this.deposedTerm;
      this.deposedTerm = undefined;
      if (this.term === term) { await this.stepDown('etcd refused a write of this term: the leader key has gone or changed'); return; }
    }
    const step = electionStep(this.view());
    if (step === 'step-down') await this.stepDown('lease or leader key lost');
    else if (step === 'new-lease') await this.newLease();
    else if (step === 'campaign') await this.campaign();
    else if (step === 'clear-own') await this.clearOwnKey();
    else {
      const wanted = this.wantedTtlMs();
      if (wanted !== this.ttlMs) await this.moveLease(wanted);
    }
  }

  // Moves this manager's keys to a new lease with another TTL. A put keeps a
  // key's create revision, so the leader's term, and the fence on its
  // writes, stay as they were. Runs as a step: no campaign can put the
  // leader key on the old lease meanwhile (revoking that would delete it).
  private async moveLease(ttlMs: number): Promise<void> {
    const old = this.lease;
    if (!old) return;
    const sent = this.now();
    const lease = await this.etcd.grantLease(Math.ceil(ttlMs / 1000));
    const ops: Op[] = [{ put: presenceKey(this.opts.nodeId), value: String(sent), lease }];
    const compares: Compare[] = [];
    if (this.term !== undefined) {
      compares.push({ key: LEADER_KEY, createRevision: this.term });
      ops.push({ put: LEADER_KEY, value: this.opts.nodeId, lease });
    }
    const move = (): Promise<TxnResult | undefined> => this.etcd.txn(compares, ops).catch((err: unknown) => {
      this.opts.log.warn({ err: (err as Error).message }, 'moving to a lease with another TTL failed');
      return undefined;
    });
    // A move etcd did not answer may have been applied: the keys would be on
    // the new lease, and revoking it would delete them, the leader key with
    // them (at 5,000 nodes, each of three leader changes in a run came so).
    // The move is idempotent: made again, it tells. Still no answer: the new
    // lease is left to expire, and the next step moves the keys again.
    const res = (await move()) ?? (await move());
    if (!res) return;
    if (!res.succeeded || this.lease !== old) {
      await this.etcd.revokeLease(lease).catch(() => undefined);
      return;
    }
    const from = this.ttlMs;
    this.setLease(lease);
    this.ttlMs = ttlMs;
    this.confirmedSentAt = sent;
    void this.etcd.revokeLease(old).catch(() => undefined);
    this.opts.log.info({ fromS: from / 1000, ttlS: ttlMs / 1000, leading: this.term !== undefined }, 'manager lease TTL changed with the hold-ups this manager sees');
  }

  private async clearOwnKey(): Promise<void> {
    const kv = this.opts.store.meta(LEADER_KEY);
    if (!kv || kv.value !== this.opts.nodeId) return;
    const res = await this.etcd.txn([{ key: LEADER_KEY, createRevision: kv.createRevision }], [{ del: LEADER_KEY }]);
    if (res.succeeded) this.opts.log.info({ term: kv.createRevision }, 'leader key of a term this manager no longer leads removed');
  }

  // Never rejects. A lease replaced while its renewal was on the way (a new
  // grant after it was given up) keeps the new lease's confirmation.
  private async renew(): Promise<void> {
    const lease = this.lease;
    if (!lease) return;
    const sent = this.now();
    try {
      await this.etcd.keepAliveOnce(lease);
      if (this.lease !== lease) return;
      this.confirmedSentAt = Math.max(this.confirmedSentAt ?? sent, sent);
      const tookMs = this.now() - sent;
      this.noteStrain(tookMs);
      if (!leaseAlive(this.view())) this.opts.log.info({ lease, tookMs }, 'lease renewal confirmed too late to count');
    } catch (err) {
      if (this.lease !== lease || leaseAlive(this.view())) return;
      this.opts.log.warn({ err: (err as Error).message, lease }, 'manager lease lost');
      this.setLease(undefined);
      this.confirmedSentAt = undefined;
      this.kick();
    }
  }

  private async newLease(): Promise<void> {
    const sent = this.now();
    const ttlMs = this.wantedTtlMs();
    const lease = await this.etcd.grantLease(Math.ceil(ttlMs / 1000));
    // Presence: this manager is up (reachability in `node ls`).
    await this.etcd.txn([], [{ put: presenceKey(this.opts.nodeId), value: String(sent), lease }]);
    this.setLease(lease);
    this.ttlMs = ttlMs;
    this.confirmedSentAt = sent;
  }

  private async campaign(): Promise<void> {
    const res = await this.etcd.txn([{ key: LEADER_KEY, absent: true }], [{ put: LEADER_KEY, value: this.opts.nodeId, lease: this.lease! }]);
    if (!res.succeeded) return; // another manager won; the mirror will show it
    const term = res.revision;
    // The mirror must see our key before the step rules can confirm the term.
    await this.opts.store.waitFor(term).catch(() => undefined);
    if (this.stopped) return;
    this.term = term;
    this.opts.log.info({ term }, 'this manager is now the leader');
    try {
      this.running = await this.opts.lead({ key: LEADER_KEY, createRevision: term, onDeposed: () => this.deposed(term) });
    } catch (err) {
      this.opts.log.error({ err }, 'leader components failed to start; resigning');
      await this.resign();
    }
  }

  private async stepDown(why: string): Promise<void> {
    if (this.term === undefined) return;
    const at = this.confirmed();
    const renewedMsAgo = at === undefined ? undefined : this.now() - at;
    this.opts.log.warn({ term: this.term, why, renewedMsAgo }, 'no longer the leader');
    this.term = undefined;
    const running = this.running;
    this.running = undefined;
    await running?.stop().catch((err: unknown) => this.opts.log.error({ err }, 'stopping leader components failed'));
  }

  // Hands leadership over: components stopped first, then the key deleted
  // (only if it is still ours), so another manager campaigns at once.
  private async resign(): Promise<void> {
    const term = this.term;
    await this.stepDown('resigning');
    if (term === undefined) return;
    await this.etcd.txn([{ key: LEADER_KEY, createRevision: term }], [{ del: LEADER_KEY }]).catch(() => undefined);
  }

  // Leaving (daemon stop, leave, demotion): resign and drop presence.
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.unsubscribe?.();
    while (this.stepping) await new Promise((r) => setTimeout(r, 10));
    await this.resign();
    if (this.lease) await this.etcd.revokeLease(this.lease).catch(() => undefined);
    this.setLease(undefined);
    await this.keeper?.close().catch(() => undefined);
  }

  // Resign but stay a candidate (a demoted leader hands over before leaving).
  async handOver(): Promise<void> {
    while (this.stepping) await new Promise((r) => setTimeout(r, 10));
    await this.resign();
  }
}
