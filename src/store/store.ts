import type { Backend, Compare, Header, KeyValue, Op, WatchEvent, WatchHandle } from './backend';
import { hasLeases, MAX_TXN_BYTES, MAX_TXN_OPS, opBytes, rangePages, renewsClient, type LeaseBackend } from './backend';
import { blobKey, isLeaseKey, META, nameKey, objectKey, parseBlobKey, parseObjectKey, ROOT } from './keys';
import { KINDS, NAMED_KINDS, type Kind, type Objects, type StoreEvent } from './objects';
import { compactTask, encodeObject, encodeTask, isRecord, parseValue, shapeProblem, specHash } from './codec';
import { StringInterner } from './interner';
import { invalid, conflict, notFound, outOfSequence, unavailable, ShoalError } from '../common/errors';
import type { Logger } from '../common/log';
import { DEFAULT_MAINTENANCE, Maintenance, isMaintainable, type MaintenanceOptions } from './maintenance';
import { MirrorAudit, type AuditOptions, type MirrorView } from './mirror-audit';
import { WriteLatency } from './write-latency';

type Listener = (events: StoreEvent[]) => void;

// A leader's term: the leader key as created when this manager won. Writes
// made through a fenced store carry the condition that the key still exists
// with that create revision, so a deposed leader's writes are refused by etcd.
export interface Fence {
  key: string;
  createRevision: number;
  onDeposed?: () => void; // called once a write was refused because the term is over
}

// A write refused because this manager no longer leads (kind unavailable:
// 503 if it ever reaches a client). Leader-only loops stop on it.
export class DeposedError extends ShoalError {
  readonly deposed = true;
  constructor(message = 'rpc error: code = Unknown desc = this manager is no longer the leader') { super('unavailable', message); this.name = 'DeposedError'; }
}
export const isDeposed = (e: unknown): e is DeposedError => e instanceof DeposedError;

interface Named { Spec?: { Name?: string } }
interface Versioned { ID: string; Version: { Index: number } }

// Keys per page of a load: well under the client's 64 MiB receive limit for
// objects of a few KB (a page still too big is halved), and few pages, since
// etcd walks its index from the page's first key to the end for each page.
const PAGE_KEYS = 10_000;
// How long a caller waits for the mirror to apply a revision, and how long an
// unknown write outcome is looked for, before the store says it is unavailable.
export const WAIT_TIMEOUT_MS = 10_000;
const OUTCOME_TIMEOUT_MS = 15_000;
// Writes of at most QUICK_TXN_BYTES wait a second or more (write-latency.ts)
// for an answer before their outcome is checked and they are resent (commitOps).
const QUICK_TXN_BYTES = 64 * 1024;
const WRITE_RETRY_MS = 10_000;
// Blobs no task uses any more are deleted after this delay (batched).
const BLOB_GC_DELAY_MS = 5_000;
// A write waiting for the mirror while the watch has been silent this long
// resumes the watch: a stream that stops without an error (seen once after
// etcd was killed during a bulk write: writes committed, the mirror never
// moved again) would otherwise fail every write until the daemon restarts.
const WATCH_STALL_MS = 3_000;
// A resumed watch sends the backlog since the mirror's revision first: a
// loaded etcd took more than the stall check to gather hundreds of big
// revisions, and reloading then (a full read of the cluster, through the
// same loaded etcd) left a 5,000-node leader without a mirror for minutes.
// So a resumed watch that is silent is reloaded only after this long
// (default: ten stall checks).
const RELOAD_STALL_FACTOR = 10;
// The whole mirror is checked against etcd this long after its watch was made
// again (its member may have just restarted, and a resumed watch sends a backlog).
// A check etcd did not answer (the member restarted into a partition, or
// lost its quorum next) is tried again, as many times, this long apart: a
// 200-round fault run once had its check skipped so, and the lost event
// waited for the next count check.
const DEEP_CHECK_DELAY_MS = 10_000;
const DEEP_CHECK_TRIES = 6;
// A divergence found again while the mirror has followed only the watch of
// the reload made for the last one: that reload did not cure it (a fault of
// Shoal's own, not a lost event), and reloading at once would repeat it
// every check (a full load at 150,000 tasks takes seconds of the manager's
// loop). Such reloads wait this long, doubled each time up to ten minutes.
const DIVERGE_BACKOFF_MS = 10_000;
const DIVERGE_BACKOFF_MAX_MS = 10 * 60_000;

export interface StoreOptions {
  blobGcDelayMs?: number;   // tests shorten it
  watchStallMs?: number;    // tests shorten it
  audit?: AuditOptions;     // tests shorten it
  deepCheckDelayMs?: number; // tests shorten it
  divergeBackoffMs?: number; // tests shorten it
  maintenance?: Partial<MaintenanceOptions>; // tests shorten it
  // Why etcd cannot take writes now, when known (no leader: quorum lost).
  // A write that fails meanwhile says that instead of a timeout, and stops waiting.
  outage?: () => string | undefined;
}

interface Blob { spec: Record<string, unknown>; modRevision: number; refs: number }
type Decoded = { kind: Kind; id: string; object: unknown; specRef?: string };

const NO_SPACE = /database space exceeded|NOSPACE/i;
// Failures that prove the request never reached etcd (no connection).
const NOT_SENT = /ECONNREFUSED|No connection established|failed to connect|ENOENT/i;
const storeError = (e: unknown): ShoalError => (NO_SPACE.test((e as Error).message)
  ? unavailable('cluster store is out of space; the daemon is compacting and defragmenting it, retry shortly')
  : unavailable(`cluster store unavailable: ${(e as Error).message}`));

// The cluster state: etcd is the truth; this class keeps a mirror of it in
// memory, fed by one watch of the whole key space that the store itself
// resumes from the revision it has applied, and fans each committed change
// out to the components (orchestrators, scheduler, agent, event stream).
// Reads come from the mirror; writes go to etcd as compare-and-swap
// transactions on the objects' mod revisions.
export class Store {
  private readonly objects = new Map<Kind, Map<string, unknown>>(KINDS.map((k) => [k, new Map()]));
  // Tasks by service and by node, the objects themselves: the orchestrator
  // reads every task of a service on each pass.
  private readonly tasksByService = new Map<string, Map<string, Objects['tasks']>>();
  private readonly tasksByNode = new Map<string, Map<string, Objects['tasks']>>();
  private readonly listeners = new Set<Listener>();
  // Keys under META (leader, presence) as etcd holds them, and who wants to know of changes.
  private readonly metaKeys = new Map<string, KeyValue>();
  private readonly metaListeners = new Set<() => void>();
  private waiters: Array<{ revision: number; resolve: () => void }> = [];
  // Task specs by hash, and which blob each task of the mirror uses.
  private readonly blobs = new Map<string, Blob>();
  private readonly taskSpec = new Map<string, string>();
  // Decoded tasks share their repeated strings (codec.compactTask).
  private readonly strings = new StringInterner();
  private readonly specHashes = new WeakMap<object, string>();
  private readonly reported = new Set<string>();
  // Object keys whose value the mirror could not decode (key -> its kind and
  // mod revision): etcd holds them, the mirror does not, and the audit counts them.
  private readonly undecodable = new Map<string, { kind: Kind; modRevision: number }>();
  private audit?: MirrorAudit;
  private readonly writeLatency = new WriteLatency();
  private divergedAt = 0;
  // Watch restarts (resync calls) so far, and their number right after the
  // last divergence's reload: equal means no other restart since.
  private restarts = 0;
  private restartsAfterDivergence = -1;
  private divergeStreak = 0;
  private divergeTimer?: NodeJS.Timeout;
  private deepCheckTimer?: NodeJS.Timeout;
  private deepCheckTries = 0;
  private deepCheckRunning = false;
  private deepCheckAgain = false; // a new watch came while a check ran
  // Spec blobs tasks referred to that the last load did not find: etcd's own
  // state. One missing from a watch event otherwise means the event was lost.
  private missingAtLoad = new Set<string>();
  private watch?: WatchHandle;
  private watchGen = 0;
  private resyncing?: Promise<void>;
  private resyncAgain: 'resume' | 'reload' | undefined;
  private gcTimer?: NodeJS.Timeout;
  private maintenance?: Maintenance;
  private clusterId?: string;
  private closed = false;
  // When the watch last delivered anything (or was made), and the check that
  // reads it while writes wait on the mirror.
  private watchHeardAt = Date.now();
  private stallTimer?: NodeJS.Timeout;
  // The mirror's revision when the stall check last restarted the watch.
  private stalledAt = -1;
  revision = 0;

  private constructor(private readonly backend: Backend, private readonly log: Logger, private readonly opts: StoreOptions) {}

  static async open(backend: Backend, log: Logger, opts: StoreOptions = {}): Promise<Store> {
    const store = new Store(backend, log, opts);
    if (renewsClient(backend)) backend.onClientRenewed = (silentMs) => log.warn({ silentMs }, 'store: etcd answered none of this client\'s reads and writes; replaced it with a new client');
    await store.load();
    await store.startWatch();
    if (isMaintainable(backend)) {
      store.maintenance = new Maintenance(backend, () => store.revision, log.child({ part: 'maintenance' }), { ...DEFAULT_MAINTENANCE, ...opts.maintenance });
      store.maintenance.start();
    }
    store.audit = new MirrorAudit(store.mirrorView(), backend, log, (why) => store.diverged(why), opts.audit);
    store.audit.start();
    // The daemon opens its store right after starting its etcd member: the
    // first watch runs on a member that may still be catching up.
    store.scheduleDeepCheck();
    return store;
  }

  // ---------- reads ----------
  get<K extends Kind>(kind: K, id: string): Objects[K] | undefined {
    return this.objects.get(kind)!.get(id) as Objects[K] | undefined;
  }

  list<K extends Kind>(kind: K): Objects[K][] {
    return [...this.objects.get(kind)!.values()] as Objects[K][];
  }

  // The one object of a kind that has one (the cluster), without copying the kind into an array.
  first<K extends Kind>(kind: K): Objects[K] | undefined {
    for (const o of this.objects.get(kind)!.values()) return o as Objects[K];
    return undefined;
  }

  count(kind: Kind): number { return this.objects.get(kind)!.size; }

  tasksOfService(serviceId: string): Objects['tasks'][] {
    return [...(this.tasksByService.get(serviceId)?.values() ?? [])];
  }

  tasksOfNode(nodeId: string): Objects['tasks'][] {
    return [...(this.tasksByNode.get(nodeId)?.values() ?? [])];
  }

  /** @internal the election's raw access to etcd (leases, the leader key); undefined without lease support. */
  liveness(): (Backend & LeaseBackend) | undefined { return hasLeases(this.backend) ? this.backend : undefined; }

  // A liveness key (keys.ts META), or those under a prefix of it.
  meta(key: string): KeyValue | undefined { return this.metaKeys.get(key); }
  metaUnder(prefix: string): KeyValue[] { return [...this.metaKeys.values()].filter((kv) => kv.key.startsWith(prefix)); }

  // Called after any change to the liveness keys has been applied.
  subscribeMeta(listener: () => void): () => void {
    this.metaListeners.add(listener);
    return () => this.metaListeners.delete(listener);
  }

  // Distinct task specs held (each shared by its tasks).
  get specCount(): number { return this.blobs.size; }

  // ---------- watch ----------
  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  // Resolves once the mirror has applied `revision`: a caller that wrote at
  // `revision` then reads its own write. Rejects (unavailable) after `timeoutMs`.
  waitFor(revision: number, timeoutMs = WAIT_TIMEOUT_MS): Promise<void> {
    if (this.revision >= revision) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(unavailable(`cluster store unavailable: revision ${revision} not seen within ${timeoutMs} ms (mirror at ${this.revision})`));
      }, timeoutMs);
      const waiter = { revision, resolve: () => { clearTimeout(timer); resolve(); } };
      this.waiters.push(waiter);
      this.armStallCheck();
    });
  }

  private armStallCheck(): void {
    if (this.stallTimer || this.closed) return;
    const stallMs = this.opts.watchStallMs ?? WATCH_STALL_MS;
    this.stallTimer = setTimeout(() => {
      this.stallTimer = undefined;
      if (this.closed || !this.waiters.length) return;
      const silentMs = Date.now() - this.watchHeardAt;
      // Silent again at the same revision: the resumed watch has not caught
      // up either. At 5,000 nodes a loaded etcd took longer than the stall
      // check to send a backlog of hundreds of big revisions, and each
      // resume asked for the whole backlog again: a leader's mirror stayed
      // 400 revisions behind for six minutes. It is not resumed again; after
      // RELOAD_STALL_FACTOR stall checks of silence it is reloaded (the state as it is now, and
      // a watch from there, with no backlog).
      const mode = this.revision === this.stalledAt ? 'reload' : 'resume';
      const needMs = mode === 'reload' ? RELOAD_STALL_FACTOR * stallMs : stallMs;
      if (silentMs >= needMs && !this.resyncing) {
        const awaited = this.waiters.reduce((m, w) => Math.min(m, w.revision), Infinity);
        this.stalledAt = this.revision;
        this.log.warn({ revision: this.revision, awaited, silentMs, mode }, mode === 'resume' ? 'store watch silent while writes wait for it; resuming' : 'store watch silent again without catching up; reloading');
        this.watchHeardAt = Date.now();
        this.resync(mode);
      }
      this.armStallCheck();
    }, stallMs);
    this.stallTimer.unref?.();
  }

  // ---------- writes ----------
  txn(): StoreTxn { return new StoreTxn(this); }

  // The same store for a leader's components: every transaction made through
  // it (txn, mutate, commitInBatches, planBatches) also requires the fence.
  // Reads, subscriptions and waits are the shared mirror's.
  fenced(fence: Fence): Store {
    const txn = (): StoreTxn => new StoreTxn(this, fence);
    const mutate = <K extends Kind>(kind: K, id: string, change: (current: Objects[K]) => Objects[K] | undefined, attempts = 10) =>
      this.mutateWith(txn, kind, id, change, attempts);
    return new Proxy(this, {
      get: (target, prop) => {
        if (prop === 'txn') return txn;
        if (prop === 'mutate') return mutate;
        const v = Reflect.get(target, prop, target) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
  }

  /** @internal used by StoreTxn */
  async commitOps(own: Compare[], ops: Op[], onConflict: () => ShoalError, fence?: Fence): Promise<number> {
    const compares = fence ? [...own, { key: fence.key, createRevision: fence.createRevision }] : own;
    // A small write that gets no answer within a second (more while writes
    // are slow) was most likely forwarded to an etcd leader that just died
    // (etcd then never answers it): find out whether it applied and, if not,
    // send it again, within WRITE_RETRY_MS. Large ones get the client's full deadline.
    const bytes = ops.reduce((n, op) => n + opBytes(op), 0);
    const timeoutMs = bytes <= QUICK_TXN_BYTES ? this.writeLatency.quickTimeoutMs() : undefined;
    const deadline = Date.now() + WRITE_RETRY_MS;
    let resent = false;
    for (;;) {
      let res;
      const sentAt = Date.now();
      try {
        res = await this.backend.txn(compares, ops, { timeoutMs });
        this.writeLatency.note(Date.now() - sentAt);
      } catch (e) {
        if (NO_SPACE.test((e as Error).message)) { this.maintenance?.nudge(); throw storeError(e); }
        const outage = this.opts.outage?.();
        if (outage) throw unavailable(outage);
        if (NOT_SENT.test((e as Error).message)) throw storeError(e);
        // The request may have been applied with its answer lost: find out
        // rather than report a failure (or, on a retry, a conflict) for a write
        // that happened.
        const outcome = await this.resolveOutcome(compares, ops, e as Error);
        if (outcome !== 'not-applied') { this.writeLatency.note(Date.now() - sentAt); await this.waitFor(outcome); return outcome; }
        if (Date.now() > deadline) throw storeError(e);
        resent = true;
        continue;
      }
      if (!res.succeeded) {
        // A resent write refused: the first attempt may have applied after all.
        if (resent) {
          const outcome = await this.resolveOutcome(compares, ops, new Error('resent write refused')).catch(() => 'not-applied' as const);
          if (outcome !== 'not-applied') { await this.waitFor(outcome); return outcome; }
        }
        if (fence && !(await this.fenceHolds(fence))) { fence.onDeposed?.(); throw new DeposedError(); }
        // Let the mirror catch up to what beat us, so a retry reads it.
        await this.waitFor(res.revision).catch(() => undefined);
        // Refused although the caught-up mirror says it would pass: the mirror may be wrong.
        if (this.revision >= res.revision) void this.audit?.checkRefusal(own);
        throw onConflict();
      }
      await this.waitFor(res.revision);
      return res.revision;
    }
  }

  // After a refused fenced write: was it the fence? (A read error counts as
  // holding: the caller retries and the election decides.)
  private async fenceHolds(fence: Fence): Promise<boolean> {
    try {
      const { kvs } = await this.backend.range(fence.key, { limit: 1 });
      const kv = kvs.find((k) => k.key === fence.key);
      return kv !== undefined && kv.createRevision === fence.createRevision;
    } catch { return true; }
  }

  // Reads back the first key the transaction put (or deleted) under a
  // condition: our exact value at a new revision means the transaction was
  // applied (it is atomic); otherwise it was not, and never will be (the read
  // is linearizable: a new etcd leader has committed or dropped everything
  // before serving it). Retried while etcd is away, within a bound.
  private async resolveOutcome(compares: Compare[], ops: Op[], cause: Error): Promise<number | 'not-applied'> {
    const conditioned = new Set(compares.map((c) => c.key));
    const probe = ops.find((op) => conditioned.has('put' in op ? op.put : op.del));
    if (!probe) throw storeError(cause);
    const key = 'put' in probe ? probe.put : probe.del;
    const cmp = compares.find((c) => c.key === key)!;
    const deadline = Date.now() + OUTCOME_TIMEOUT_MS;
    for (let delay = 50; ; delay = Math.min(500, delay * 2)) {
      try {
        const { kvs, revision } = await this.backend.range(key, { limit: 1 });
        const kv = kvs.find((k) => k.key === key);
        const moved = kv !== undefined && (!('modRevision' in cmp) || kv.modRevision !== cmp.modRevision);
        if ('put' in probe && kv?.value === probe.value && moved) {
          this.log.info({ key, revision: kv.modRevision, err: cause.message }, 'store write outcome was unknown; it was applied');
          return kv.modRevision;
        }
        if ('del' in probe && !kv) return revision;
        return 'not-applied';
      } catch (e) {
        if (e instanceof ShoalError) throw e;
        const outage = this.opts.outage?.();
        if (outage) throw unavailable(outage);
        if (Date.now() + delay > deadline || this.closed) throw unavailable(`cluster store unavailable; the outcome of a write is unknown: ${cause.message}`);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  // Read-modify-write of one object, retried when another writer got there
  // first. `change` gets a copy of the current object and returns the new one,
  // or undefined to leave it alone. Resolves to the stored result (undefined if
  // the object is gone or unchanged).
  mutate<K extends Kind>(kind: K, id: string, change: (current: Objects[K]) => Objects[K] | undefined, attempts = 10): Promise<Objects[K] | undefined> {
    return this.mutateWith(() => this.txn(), kind, id, change, attempts);
  }

  private async mutateWith<K extends Kind>(txn: () => StoreTxn, kind: K, id: string, change: (current: Objects[K]) => Objects[K] | undefined, attempts: number): Promise<Objects[K] | undefined> {
    for (let i = 0; ; i++) {
      const current = this.get(kind, id);
      if (!current) return undefined;
      const next = change(structuredClone(current));
      if (!next) return undefined;
      try {
        await txn().update(kind, next, current).commit();
        return next;
      } catch (e) {
        if (!(e instanceof ShoalError && e.kind === 'sequence') || i + 1 >= attempts) throw e;
      }
    }
  }

  /** @internal the stored form of an object, and the spec blob a task needs written with it. */
  // The blob's JSON is made only if the transaction does not carry it yet
  // (a create of 30,000 tasks made it 30,000 times).
  encode(kind: Kind, obj: unknown): { value: string; blob?: { key: string; json(): string } } {
    if (kind !== 'tasks') return { value: encodeObject(obj) };
    const task = obj as Versioned & { Spec?: unknown };
    const spec = isRecord(task.Spec) ? task.Spec : {};
    let hash = this.specHashes.get(spec);
    let json: string | undefined;
    if (!hash) { json = JSON.stringify(spec); hash = specHash(json); }
    // Re-putting the blob in the same transaction is what keeps the blob
    // collector from deleting it under us (its delete compares the blob's mod
    // revision). Not needed when the task already used it in the version
    // this write replaces.
    const stored = this.get('tasks', task.ID);
    const keeps = stored !== undefined && stored.Version.Index === task.Version?.Index && this.taskSpec.get(task.ID) === hash && this.blobs.has(hash);
    return { value: encodeTask(obj, hash), blob: keeps ? undefined : { key: blobKey(hash), json: () => json ?? JSON.stringify(spec) } };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.watchGen++;
    this.maintenance?.stop();
    this.audit?.stop();
    if (this.deepCheckTimer) clearTimeout(this.deepCheckTimer);
    if (this.divergeTimer) clearTimeout(this.divergeTimer);
    if (this.gcTimer) clearTimeout(this.gcTimer);
    if (this.stallTimer) clearTimeout(this.stallTimer);
    await this.watch?.close().catch(() => undefined);
    await this.backend.close();
  }

  // ---------- mirror maintenance ----------

  // Everything under ROOT, in pages, all read at the revision of the first
  // page so the whole is one consistent snapshot.
  private async readAll(): Promise<{ kvs: KeyValue[]; revision: number; clusterId?: string }> {
    const kvs: KeyValue[] = [];
    let revision = 0;
    let clusterId: string | undefined;
    for await (const page of rangePages(this.backend, ROOT, PAGE_KEYS)) {
      if (!revision) { revision = page.revision; clusterId = page.clusterId; }
      for (const kv of page.kvs) kvs.push(kv);
    }
    return { kvs, revision, clusterId };
  }

  // Every durable key under ROOT as etcd held it at one revision (`shoal
  // backup`): keys held under leases (leader, presence) belong to running
  // processes and are left out.
  // A value that cannot be read (kv.problem) is left out, and said so.
  async snapshot(): Promise<{ kvs: Array<[string, string]>; revision: number }> {
    const { kvs, revision } = await this.readAll();
    const out: Array<[string, string]> = [];
    for (const kv of kvs) {
      if (isLeaseKey(kv.key)) continue;
      if (kv.problem) { this.log.warn({ key: kv.key, modRevision: kv.modRevision, problem: kv.problem }, 'backup: leaving out a value that cannot be read'); continue; }
      out.push([kv.key, kv.value]);
    }
    return { kvs: out, revision };
  }

  // An object key of a kind the mirror keeps: that kind.
  private objectKind(key: string): Kind | undefined {
    const parsed = parseObjectKey(key);
    return parsed && this.objects.has(parsed.kind) ? parsed.kind : undefined;
  }

  // What the audit (mirror-audit.ts) compares with etcd.
  private mirrorView(): MirrorView {
    return {
      revision: () => this.revision,
      modRevisionOf: (key) => {
        if (key.startsWith(META)) return this.metaKeys.get(key)?.modRevision ?? 0;
        const parsed = parseObjectKey(key);
        if (!parsed || !this.objects.has(parsed.kind)) return undefined;
        const obj = this.objects.get(parsed.kind)!.get(parsed.id) as Versioned | undefined;
        return obj?.Version.Index ?? this.undecodable.get(key)?.modRevision ?? 0;
      },
      objectCount: (kind) => {
        let n = this.objects.get(kind)!.size;
        for (const u of this.undecodable.values()) if (u.kind === kind) n++;
        return n;
      },
      objectKeys: () => this.objectKeys(),
    };
  }

  private *objectKeys(): Generator<[string, number]> {
    for (const [kind, table] of this.objects) for (const [id, o] of table) yield [objectKey(kind, id), (o as Versioned).Version.Index];
    for (const [key, u] of this.undecodable) yield [key, u.modRevision];
  }

  // The audit found the mirror and etcd apart at one revision: reload (the
  // diff tells every component what it missed). Said loudly: it means a
  // change was lost on its way here, which should never happen. At once,
  // unless the reload for the last one did not cure it (DIVERGE_BACKOFF_MS).
  private diverged(why: string): void {
    if (this.closed || this.divergeTimer) return;
    const now = Date.now();
    const again = now - this.divergedAt < DIVERGE_BACKOFF_MAX_MS;
    const uncured = again && this.restarts === this.restartsAfterDivergence;
    this.divergeStreak = uncured ? this.divergeStreak + 1 : 0;
    this.divergedAt = now;
    const base = this.opts.divergeBackoffMs ?? DIVERGE_BACKOFF_MS;
    const reloadInMs = this.divergeStreak ? Math.min(base * 2 ** (this.divergeStreak - 1), DIVERGE_BACKOFF_MAX_MS) : 0;
    this.log.error({ why, again, ...(reloadInMs ? { reloadInMs } : {}) }, 'store mirror disagrees with etcd; reloading it');
    const reload = (): void => {
      this.divergeTimer = undefined;
      this.resync('reload');
      this.restartsAfterDivergence = this.restarts;
    };
    if (!reloadInMs) { reload(); return; }
    this.divergeTimer = setTimeout(reload, reloadInMs);
    this.divergeTimer.unref();
  }

  private async load(): Promise<void> {
    const started = Date.now();
    const { kvs, revision, clusterId } = await this.readAll();
    const otherCluster = this.clusterId !== undefined && clusterId !== undefined && clusterId !== this.clusterId;
    // Blobs first: tasks refer to them.
    const blobs = new Map<string, Blob>();
    for (const kv of kvs) {
      const hash = parseBlobKey(kv.key);
      if (hash === undefined) continue;
      const b = this.decodeBlob(kv);
      if (!b) continue;
      // Keep the object the mirror's tasks already share.
      const had = this.blobs.get(hash);
      if (had) b.spec = had.spec;
      blobs.set(hash, b);
    }
    const fresh = new Map<Kind, Map<string, Decoded>>(KINDS.map((k) => [k, new Map()]));
    const undecodable = new Map<string, { kind: Kind; modRevision: number }>();
    const missingSpecs = new Set<string>();
    for (const kv of kvs) {
      const d = this.decode(kv, blobs, missingSpecs);
      if (d) fresh.get(d.kind)!.set(d.id, d);
      else { const kind = this.objectKind(kv.key); if (kind) undecodable.set(kv.key, { kind, modRevision: kv.modRevision }); }
    }
    this.missingAtLoad = missingSpecs;
    // Counts start from the tasks already in the mirror; the diff below moves them.
    this.blobs.clear();
    for (const [h, b] of blobs) this.blobs.set(h, { ...b, refs: 0 });
    for (const h of this.taskSpec.values()) { const b = this.blobs.get(h); if (b) b.refs++; }
    // Diff against what we had, so a reload after a lost watch still tells
    // every component what changed in between.
    const changes: Array<{ e: StoreEvent; specRef?: string }> = [];
    for (const kind of KINDS) {
      const before = this.objects.get(kind)!;
      const after = fresh.get(kind)!;
      for (const [id, d] of after) {
        const prev = before.get(id) as Versioned | undefined;
        const obj = d.object as Versioned;
        if (!prev) changes.push({ e: { kind, action: 'create', id, object: obj as never, revision }, specRef: d.specRef });
        else if (prev.Version.Index !== obj.Version.Index || otherCluster)
          changes.push({ e: { kind, action: 'update', id, object: obj as never, previous: prev as never, revision }, specRef: d.specRef });
      }
      for (const [id, prev] of before) if (!after.has(id)) changes.push({ e: { kind, action: 'delete', id, previous: prev as never, revision } });
    }
    for (const c of changes) this.applyToMirror(c.e, c.specRef);
    this.metaKeys.clear();
    for (const kv of kvs) if (kv.key.startsWith(META)) this.metaKeys.set(kv.key, kv);
    this.undecodable.clear();
    for (const [k, u] of undecodable) this.undecodable.set(k, u);
    this.emitMeta();
    this.clusterId = clusterId;
    this.revision = otherCluster ? revision : Math.max(this.revision, revision);
    if (changes.length) this.emit(changes.map((c) => c.e));
    this.releaseWaiters();
    this.scheduleBlobGc();
    this.log.info({ keys: kvs.length, tasks: this.count('tasks'), specs: this.blobs.size, revision, changes: changes.length, ms: Date.now() - started }, 'store loaded');
  }

  // A watch of the whole key space from the next revision the mirror needs.
  // Watching every key (not only ROOT) makes revisions contiguous, so a gap
  // is visible: etcd takes a revision only for a change, and every change
  // is an event.
  private async startWatch(): Promise<void> {
    const gen = ++this.watchGen;
    const handle = await this.backend.watch('', this.revision + 1, {
      onEvents: (evs, header) => { if (gen === this.watchGen) this.onWatchEvents(evs, header); },
      onLost: (err, compacted) => {
        if (gen !== this.watchGen || this.closed) return;
        this.log.warn({ err: err.message, revision: this.revision, compacted }, compacted ? 'store watch cancelled; reloading' : 'store watch broken; resuming');
        this.resync(compacted ? 'reload' : 'resume');
      },
    });
    if (gen !== this.watchGen) { await handle.close().catch(() => undefined); return; }
    this.watch = handle;
    this.watchHeardAt = Date.now();
  }

  // Re-creates the watch from the mirror's revision ('resume'), after a full
  // paged reload diffed against the mirror ('reload'); retried with a backoff
  // until it works. One at a time; a request during one runs after it.
  private resync(mode: 'resume' | 'reload'): void {
    if (this.closed) return;
    this.restarts++;
    this.watchGen++;
    const old = this.watch;
    this.watch = undefined;
    void old?.close().catch(() => undefined);
    if (this.resyncing) { if (this.resyncAgain !== 'reload') this.resyncAgain = mode; return; }
    this.resyncing = (async () => {
      for (let attempt = 0; !this.closed; attempt++) {
        try {
          if (mode === 'reload') await this.load();
          const fromRevision = this.revision + 1;
          await this.startWatch();
          // A fault's aftermath is read from these lines: where the mirror picked up again.
          this.log.info({ mode, fromRevision, attempts: attempt + 1 }, 'store watch restarted');
          this.scheduleDeepCheck();
          return;
        } catch (err) {
          const delay = Math.min(1000, 50 * 2 ** attempt);
          this.log.warn({ err: (err as Error).message, delay, mode }, 'store resync failed; retrying');
          await new Promise((r) => setTimeout(r, delay).unref());
        }
      }
    })().finally(() => {
      this.resyncing = undefined;
      const again = this.resyncAgain;
      this.resyncAgain = undefined;
      if (again) this.resync(again);
    });
  }

  private onWatchEvents(evs: WatchEvent[], header: Header): void {
    this.watchHeardAt = Date.now();
    if (header.clusterId && this.clusterId && header.clusterId !== this.clusterId) {
      this.log.warn({ was: this.clusterId, now: header.clusterId }, 'store: etcd cluster changed; reloading');
      this.resync('reload');
      return;
    }
    // Duplicates (already applied) are skipped; after them revisions must
    // follow on one by one, or events were lost: reload.
    const fresh = evs.filter((e) => e.kv.modRevision > this.revision);
    let expect = this.revision;
    for (const e of fresh) {
      if (e.kv.modRevision !== expect && e.kv.modRevision !== expect + 1) {
        this.log.warn({ expected: expect + 1, got: e.kv.modRevision }, 'store watch skipped revisions; reloading');
        this.resync('reload');
        return;
      }
      expect = e.kv.modRevision;
    }
    if (!fresh.length) return;
    // What etcd holds of recent writes in its raft log (maintenance trims it after a burst).
    if (this.maintenance) for (const e of fresh) this.maintenance.noteWritten(e.kv.modRevision, e.kv.key.length + e.kv.value.length);
    // One revision at a time, each applied before the next is read: a batch
    // can hold many (a resumed watch's backlog came in 1,000-revision
    // responses), among them an object's create and its delete, or a spec
    // blob's put, its last task's delete and the blob's collection. Read
    // against the mirror as the batch found it, the delete saw no object
    // (which then stayed: "in the mirror, none in etcd") and the task no
    // blob (a needless reload): 33 reloads in a fault run of 100 etcd
    // kills, none in the same run since.
    const out: StoreEvent[] = [];
    const missingSpecs = new Set<string>();
    let metaChanged = false;
    for (let from = 0; from < fresh.length;) {
      let to = from + 1;
      while (to < fresh.length && fresh[to]!.kv.modRevision === fresh[from]!.kv.modRevision) to++;
      if (this.applyRevision(fresh, from, to, out, missingSpecs)) metaChanged = true;
      from = to;
    }
    this.revision = expect;
    if (out.length) this.emit(out);
    if (metaChanged) this.emitMeta();
    this.releaseWaiters();
    const lost = [...missingSpecs].filter((h) => !this.missingAtLoad.has(h));
    if (lost.length) this.diverged(`tasks at revision ${expect} refer to spec(s) ${lost.join(', ')} the mirror lacks`);
  }

  // The events of one revision, fresh[from..to), into the mirror; what they
  // change for the components is added to `out`. Says whether a meta key changed.
  private applyRevision(fresh: WatchEvent[], from: number, to: number, out: StoreEvent[], missingSpecs: Set<string>): boolean {
    // Blobs first: the revision's tasks refer to them.
    for (let i = from; i < to; i++) {
      const e = fresh[i]!;
      const hash = parseBlobKey(e.kv.key);
      if (hash === undefined) continue;
      if (e.type === 'delete') { const b = this.blobs.get(hash); if (b && b.refs === 0) this.blobs.delete(hash); continue; }
      const b = this.decodeBlob(e.kv);
      if (!b) continue;
      const had = this.blobs.get(hash);
      // Same content by construction (content-addressed): keep the object the tasks share.
      if (had) had.modRevision = b.modRevision; else this.blobs.set(hash, b);
    }
    let metaChanged = false;
    for (let i = from; i < to; i++) {
      const e = fresh[i]!;
      if (!e.kv.key.startsWith(META)) continue;
      metaChanged = true;
      if (e.type === 'delete') this.metaKeys.delete(e.kv.key); else this.metaKeys.set(e.kv.key, e.kv);
    }
    const changes: Array<{ e: StoreEvent; specRef?: string }> = [];
    for (let i = from; i < to; i++) {
      const e = fresh[i]!;
      const parsed = parseObjectKey(e.kv.key);
      if (!parsed || !this.objects.has(parsed.kind)) continue;
      const { kind, id } = parsed;
      const previous = this.objects.get(kind)!.get(id) as never | undefined;
      const d = e.type === 'put' ? this.decode(e.kv, this.blobs, missingSpecs) : undefined;
      if (e.type === 'put' && !d) this.undecodable.set(e.kv.key, { kind, modRevision: e.kv.modRevision });
      else this.undecodable.delete(e.kv.key);
      if (d) changes.push({ e: { kind, action: previous ? 'update' : 'create', id: d.id, object: d.object as never, previous, revision: e.kv.modRevision }, specRef: d.specRef });
      // A delete, or a value the mirror cannot hold: the object is gone for the components.
      else if (previous) changes.push({ e: { kind, action: 'delete', id, previous, revision: e.kv.modRevision } });
    }
    for (const c of changes) { this.applyToMirror(c.e, c.specRef); out.push(c.e); }
    return metaChanged;
  }

  // After the watch was made (again): its etcd member may have just
  // restarted; the whole mirror against etcd, once the catching up is over.
  // A new watch while a check is pending (or being retried) starts its count
  // again; one while a check is running (pages of every key: seconds on a big
  // store) gets its own check after it, never one alongside.
  private scheduleDeepCheck(retry = false): void {
    if (!retry) this.deepCheckTries = 0;
    if (this.closed || !this.audit) return;
    if (this.deepCheckRunning) { if (!retry) this.deepCheckAgain = true; return; }
    if (this.deepCheckTimer) return;
    this.deepCheckTimer = setTimeout(() => {
      this.deepCheckTimer = undefined;
      const audit = this.audit;
      if (!audit || this.closed) return;
      this.deepCheckRunning = true;
      void audit.deepCheck().catch((err: unknown) => {
        this.log.warn({ err: (err as Error).message }, 'mirror deep check failed');
        return undefined;
      }).then((verdict) => {
        this.deepCheckRunning = false;
        if (this.closed) return;
        if (this.deepCheckAgain) { this.deepCheckAgain = false; this.scheduleDeepCheck(); return; }
        if (verdict !== undefined) return;
        if (++this.deepCheckTries < DEEP_CHECK_TRIES) { this.scheduleDeepCheck(true); return; }
        this.log.warn({ tries: this.deepCheckTries }, 'mirror deep check: etcd never answered; the count check goes on');
      });
    }, this.opts.deepCheckDelayMs ?? DEEP_CHECK_DELAY_MS);
    this.deepCheckTimer.unref();
  }

  // Once per key and revision: a bad value is reported, not repeated at
  // every reload.
  private report(kv: KeyValue, problem: string): void {
    const id = `${kv.key}@${kv.modRevision}`;
    if (this.reported.has(id)) return;
    if (this.reported.size > 10_000) this.reported.clear();
    this.reported.add(id);
    this.log.error({ key: kv.key, modRevision: kv.modRevision, problem }, 'store: ignoring a value that is not a valid object');
  }

  private decodeBlob(kv: KeyValue): Blob | undefined {
    const p = parseValue(kv);
    if (!p.ok || !isRecord(p.value)) { this.report(kv, p.ok ? 'spec blob not an object' : p.problem); return undefined; }
    this.specHashes.set(p.value, parseBlobKey(kv.key)!);
    return { spec: p.value, modRevision: kv.modRevision, refs: 0 };
  }

  // `missingSpecs` collects the spec blobs tasks refer to that `blobs` lacks.
  private decode(kv: KeyValue, blobs: Map<string, Blob>, missingSpecs?: Set<string>): Decoded | undefined {
    const parsed = parseObjectKey(kv.key);
    if (!parsed || !this.objects.has(parsed.kind)) return undefined;
    const p = parseValue(kv);
    if (!p.ok) { this.report(kv, p.problem); return undefined; }
    const obj = p.value;
    let specRef: string | undefined;
    if (parsed.kind === 'tasks' && isRecord(obj) && typeof obj.SpecRef === 'string') {
      specRef = this.strings.intern(obj.SpecRef);
      const blob = blobs.get(specRef);
      if (!blob) { this.report(kv, `task spec ${specRef} missing`); missingSpecs?.add(specRef); return undefined; }
      delete obj.SpecRef;
      obj.Spec = blob.spec;
    }
    const problem = shapeProblem(parsed.kind, parsed.id, obj);
    if (problem) { this.report(kv, problem); return undefined; }
    if (parsed.kind === 'tasks') compactTask(obj as Record<string, unknown>, this.strings);
    (obj as Versioned).Version = { Index: kv.modRevision };
    // The object's own ID (checked equal to the key's) names it in the mirror:
    // the key's slice would keep the whole key string alive with it.
    return { kind: parsed.kind, id: (obj as { ID: string }).ID, object: obj, specRef };
  }

  private applyToMirror(e: StoreEvent, specRef?: string): void {
    const table = this.objects.get(e.kind)!;
    if (e.kind === 'tasks') {
      const prev = e.previous as Objects['tasks'] | undefined;
      const next = e.object as Objects['tasks'] | undefined;
      if (prev) { unindex(this.tasksByService, prev.ServiceID, e.id); if (prev.NodeID) unindex(this.tasksByNode, prev.NodeID, e.id); }
      if (next) { index(this.tasksByService, next.ServiceID, e.id, next); if (next.NodeID) index(this.tasksByNode, next.NodeID, e.id, next); }
      const oldRef = this.taskSpec.get(e.id);
      if (oldRef !== undefined) {
        this.taskSpec.delete(e.id);
        const b = this.blobs.get(oldRef);
        if (b && --b.refs === 0) this.scheduleBlobGc();
      }
      if (next && specRef !== undefined) {
        this.taskSpec.set(e.id, specRef);
        const b = this.blobs.get(specRef);
        if (b) b.refs++;
      }
    }
    if (e.action === 'delete') table.delete(e.id);
    else table.set(e.id, e.object);
  }

  private scheduleBlobGc(): void {
    if (this.gcTimer || this.closed) return;
    this.gcTimer = setTimeout(() => { this.gcTimer = undefined; void this.collectBlobs(); }, this.opts.blobGcDelayMs ?? BLOB_GC_DELAY_MS);
    this.gcTimer.unref();
  }

  // Deletes blobs no task uses. Each delete compares the blob's mod revision:
  // a writer that starts using a blob re-puts it, which makes the delete fail.
  private async collectBlobs(): Promise<void> {
    const unused = [...this.blobs].filter(([, b]) => b.refs === 0);
    for (let i = 0; i < unused.length; i += MAX_TXN_OPS / 2) {
      const chunk = unused.slice(i, i + MAX_TXN_OPS / 2);
      for (const [hash, b] of chunk) {
        try {
          await this.backend.txn([{ key: blobKey(hash), modRevision: b.modRevision }], [{ del: blobKey(hash) }]);
        } catch (err) {
          this.log.debug({ err: (err as Error).message }, 'spec blob collection failed; will retry');
          this.scheduleBlobGc();
          return;
        }
      }
    }
  }

  private emit(events: StoreEvent[]): void {
    for (const l of this.listeners) {
      try { l(events); } catch (err) { this.log.error({ err }, 'store listener failed'); }
    }
  }

  private emitMeta(): void {
    for (const l of this.metaListeners) {
      try { l(); } catch (err) { this.log.error({ err }, 'store meta listener failed'); }
    }
  }

  private releaseWaiters(): void {
    if (!this.waiters.length) return;
    const still: typeof this.waiters = [];
    for (const w of this.waiters) (w.revision <= this.revision ? w.resolve() : still.push(w));
    this.waiters = still;
  }
}

function index<T>(m: Map<string, Map<string, T>>, key: string, id: string, obj: T): void {
  let s = m.get(key);
  if (!s) m.set(key, (s = new Map()));
  s.set(id, obj);
}
function unindex<T>(m: Map<string, Map<string, T>>, key: string, id: string): void {
  const s = m.get(key);
  if (!s) return;
  s.delete(id);
  if (!s.size) m.delete(key);
}

const KIND_SINGULAR: Record<Kind, string> = {
  cluster: 'cluster', nodes: 'node', services: 'service', tasks: 'task', secrets: 'secret', configs: 'config', networks: 'network',
};

// A batch of writes committed together. Each write carries its own condition:
// create = name and ID free; update/delete = the caller's Version.Index still current.
export class StoreTxn {
  private compares: Compare[] = [];
  private ops: Op[] = [];
  private readonly blobs = new Map<string, string>();
  private written: Array<{ Version: { Index: number } }> = [];
  private conflictError: () => ShoalError = outOfSequence;
  private opBytes = 0;

  constructor(private readonly store: Store, private readonly fence?: Fence) {}

  get size(): number { return this.ops.length + this.blobs.size; }
  // What etcd will count against --max-request-bytes, near enough.
  get bytes(): number {
    let n = this.opBytes;
    for (const [k, v] of this.blobs) n += opBytes({ put: k, value: v });
    return n;
  }

  private put(key: string, value: string): void {
    const op = { put: key, value };
    this.ops.push(op);
    this.opBytes += opBytes(op);
  }

  private del(key: string): void {
    const op = { del: key };
    this.ops.push(op);
    this.opBytes += opBytes(op);
  }

  private putObject(kind: Kind, obj: unknown): void {
    const { value, blob } = this.store.encode(kind, obj);
    if (blob && !this.blobs.has(blob.key)) this.blobs.set(blob.key, blob.json());
    this.put(objectKey(kind, (obj as { ID: string }).ID), value);
  }

  create<K extends Kind>(kind: K, obj: Objects[K]): this {
    const id = (obj as { ID: string }).ID;
    this.compares.push({ key: objectKey(kind, id), absent: true });
    this.putObject(kind, obj);
    const name = (obj as Named).Spec?.Name;
    if (NAMED_KINDS.has(kind) && name) {
      this.compares.push({ key: nameKey(kind, name), absent: true });
      this.put(nameKey(kind, name), id);
      const what = KIND_SINGULAR[kind];
      this.conflictError = () => conflict(`rpc error: code = AlreadyExists desc = ${kind === 'services' ? `name conflicts with an existing object: service ${name} already exists` : `${what} ${name} already exists`}`);
    }
    this.written.push(obj as never);
    return this;
  }

  // Writes `obj` if the stored object still has obj.Version.Index (the version
  // the caller read). A renamed object moves its name key in the same transaction.
  update<K extends Kind>(kind: K, obj: Objects[K], previous?: Objects[K]): this {
    const o = obj as Versioned;
    this.compares.push({ key: objectKey(kind, o.ID), modRevision: o.Version.Index });
    this.putObject(kind, obj);
    const oldName = (previous as Named | undefined)?.Spec?.Name;
    const newName = (obj as Named).Spec?.Name;
    if (NAMED_KINDS.has(kind) && previous && oldName !== newName && newName) {
      this.compares.push({ key: nameKey(kind, newName), absent: true });
      this.del(nameKey(kind, oldName ?? ''));
      this.put(nameKey(kind, newName), o.ID);
    }
    this.written.push(o);
    return this;
  }

  delete<K extends Kind>(kind: K, obj: Objects[K]): this {
    const o = obj as Versioned;
    this.compares.push({ key: objectKey(kind, o.ID), modRevision: o.Version.Index });
    this.del(objectKey(kind, o.ID));
    const name = (obj as Named).Spec?.Name;
    if (NAMED_KINDS.has(kind) && name) this.del(nameKey(kind, name));
    return this;
  }

  // The object must still be at the version the caller read (nothing written to it).
  requireVersion<K extends Kind>(kind: K, obj: Objects[K]): this {
    const o = obj as Versioned;
    this.compares.push({ key: objectKey(kind, o.ID), modRevision: o.Version.Index });
    return this;
  }

  // A liveness/marker key (keys.ts META) unchanged since `modRevision` (0: absent).
  requireMeta(key: string, modRevision: number): this {
    this.compares.push(modRevision ? { key, modRevision } : { key, absent: true });
    return this;
  }

  putMeta(key: string, value: string): this { this.put(key, value); return this; }
  deleteMeta(key: string): this { this.del(key); return this; }

  /** @internal whether `other`'s writes can join this transaction within etcd's limits. */
  fits(other: StoreTxn): boolean {
    let blobBytes = 0;
    let newBlobs = 0;
    for (const [k, v] of other.blobs) if (!this.blobs.has(k)) { newBlobs++; blobBytes += opBytes({ put: k, value: v }); }
    return this.ops.length + this.blobs.size + other.ops.length + newBlobs <= MAX_TXN_OPS
      && this.bytes + other.opBytes + blobBytes <= MAX_TXN_BYTES;
  }

  /** @internal moves `other`'s writes into this transaction. */
  absorb(other: StoreTxn): void {
    this.compares.push(...other.compares);
    for (const op of other.ops) this.ops.push(op);
    this.opBytes += other.opBytes;
    for (const [k, v] of other.blobs) this.blobs.set(k, v);
    this.written.push(...other.written);
    if (other.conflictError !== outOfSequence) this.conflictError = other.conflictError;
  }

  // Commits atomically. Throws the kind's conflict error (duplicate name) or
  // "update out of sequence" when a condition fails; nothing is written then.
  // A transaction etcd would refuse for its size fails with `invalid`.
  async commit(): Promise<number> {
    if (this.size > MAX_TXN_OPS) throw new Error(`transaction of ${this.size} operations exceeds ${MAX_TXN_OPS}; use commitInBatches`);
    const bytes = this.bytes;
    if (bytes > MAX_TXN_BYTES) throw invalid(`object too large for the cluster store: the write takes ${bytes} bytes, more than the ${MAX_TXN_BYTES} a transaction may hold`);
    // Spec blobs first: the tasks after them refer to them.
    const ops: Op[] = [...[...this.blobs].map(([k, v]) => ({ put: k, value: v })), ...this.ops];
    const revision = await this.store.commitOps(this.compares, ops, this.conflictError, this.fence);
    for (const w of this.written) w.Version = { Index: revision };
    return revision;
  }
}

// Groups writes into transactions etcd accepts (at most MAX_TXN_OPS
// operations and MAX_TXN_BYTES bytes each); each write keeps its own
// conditions. A write too large even alone is returned in `tooBig` with the
// error, so it fails by itself and never blocks the others.
export function planBatches<T>(store: Store, items: T[], add: (txn: StoreTxn, item: T) => void): { batches: Array<{ txn: StoreTxn; items: T[] }>; tooBig: Array<{ item: T; error: ShoalError }> } {
  const tooBig: Array<{ item: T; error: ShoalError }> = [];
  const batches = [...eachBatch(store, items, add, (item, error) => tooBig.push({ item, error }))];
  return { batches, tooBig };
}

// planBatches one batch at a time: a batch is built (its writes encoded) only
// when the caller asks for the next, so a caller that commits each batch
// first never holds the event loop for the encoding of all of them (30,000
// task writes held a leader's loop for seconds, past its lease). `tooBig` is
// called for each write too large to commit, as the iteration meets it.
// Batches of writes to independent objects (each task once) that may be
// committed side by side: etcd folds proposals that arrive together into one
// raft round and one disk write, and each commit also waits for the watch to
// bring its revision back, so one batch at a time left both mostly waiting
// (the scheduler's and the dispatcher's writes for 150,000 tasks).
export const BATCHES_IN_FLIGHT = 4;

export function* eachBatch<T>(store: Store, items: T[], add: (txn: StoreTxn, item: T) => void, tooBig: (item: T, error: ShoalError) => void): Generator<{ txn: StoreTxn; items: T[] }> {
  let cur: { txn: StoreTxn; items: T[] } | undefined;
  for (const item of items) {
    const one = store.txn();
    add(one, item);
    if (!one.size) continue;
    if (one.bytes > MAX_TXN_BYTES || one.size > MAX_TXN_OPS) {
      tooBig(item, invalid(`object too large for the cluster store: its write takes ${one.bytes} bytes in ${one.size} operations, more than a transaction may hold (${MAX_TXN_BYTES} bytes, ${MAX_TXN_OPS} operations)`));
      continue;
    }
    if (cur && !cur.txn.fits(one)) { yield cur; cur = undefined; }
    cur ??= { txn: store.txn(), items: [] };
    cur.txn.absorb(one);
    cur.items.push(item);
  }
  if (cur) yield cur;
}

// For bulk writes by the control loops (thousands of tasks): eachBatch,
// committed one after the other. Returns how many of the batches failed
// their conditions (the loop re-reconciles), and the writes too large to
// commit at all.
export async function commitInBatches(store: Store, build: Array<(t: StoreTxn) => void>): Promise<{ failed: number; revision: number; tooBig: ShoalError[] }> {
  let failed = 0;
  let revision = 0;
  const tooBig: ShoalError[] = [];
  for (const { txn } of eachBatch(store, build, (t, b) => b(t), (_, error) => tooBig.push(error))) {
    try { revision = await txn.commit(); } catch (e) {
      if (e instanceof ShoalError && (e.kind === 'sequence' || e.kind === 'conflict')) failed++;
      else throw e;
    }
  }
  return { failed, revision, tooBig };
}

export function requireObject<K extends Kind>(store: Store, kind: K, id: string): Objects[K] {
  const o = store.get(kind, id);
  if (!o) throw notFound(`${KIND_SINGULAR[kind]} ${id} not found`);
  return o;
}
