import type { Backend, Compare, KeyValue, LeaseBackend, Op, RangeOptions, RangeResult, TxnResult, WatchCallbacks, WatchEvent, WatchHandle } from './backend';
import { unpackValue } from './value-packing';

// An in-process stand-in for etcd with the same revision semantics (MVCC
// reads at a past revision, compaction, a revision only for changes), for
// unit tests. `faults` lets a test fail a call before or after it applies.
export class MemoryBackend implements Backend, LeaseBackend {
  private readonly versions = new Map<string, Array<{ rev: number; kv?: KeyValue }>>();
  private revision = 1;
  private compacted = 0;
  private watchers = new Set<{ prefix: string; cb: WatchCallbacks; muted?: boolean }>();
  private history: Array<{ revision: number; events: WatchEvent[] }> = [];
  clusterId = '1';
  // The largest answer to a range, like grpc's receive limit (0: none).
  maxResponseBytes = 0;
  faults: { txnBefore?: number; txnAfter?: number; range?: number } = {};
  // Leases: the keys put under each; a test expires one with expireLease.
  private readonly leases = new Map<string, Set<string>>();
  private nextLease = 1;
  // While true, every call fails as an unreachable etcd would (a partitioned manager).
  down = false;
  // The problem of the value putStored is writing.
  private unreadable?: string;

  private current(key: string): KeyValue | undefined {
    const v = this.versions.get(key);
    return v?.[v.length - 1]?.kv;
  }

  async range(prefix: string, opts: RangeOptions = {}): Promise<RangeResult> {
    if (this.down) throw new Error('14 UNAVAILABLE: No connection established');
    if (this.faults.range) { this.faults.range--; throw new Error('14 UNAVAILABLE: injected'); }
    const at = opts.revision || this.revision;
    if (at < this.compacted) throw new Error('etcdserver: mvcc: required revision has been compacted');
    if (at > this.revision) throw new Error('etcdserver: mvcc: required revision is a future revision');
    const from = opts.fromKey ?? prefix;
    const kvs: KeyValue[] = [];
    for (const [key, vs] of this.versions) {
      if (!key.startsWith(prefix) || key < from) continue;
      let kv: KeyValue | undefined;
      for (const v of vs) if (v.rev <= at) kv = v.kv;
      if (kv) kvs.push({ ...kv, ...(opts.keysOnly ? { value: '' } : {}) });
    }
    kvs.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    const limit = opts.limit || kvs.length;
    const page = kvs.slice(0, limit);
    const bytes = page.reduce((n, kv) => n + kv.key.length + kv.value.length, 0);
    if (this.maxResponseBytes && bytes > this.maxResponseBytes) throw new Error('8 RESOURCE_EXHAUSTED: Received message larger than max');
    return { kvs: page, revision: this.revision, more: kvs.length > limit, clusterId: this.clusterId };
  }

  async count(prefix: string, revision = 0): Promise<number> {
    return (await this.range(prefix, { revision })).kvs.length;
  }

  // Puts these bytes as etcd would store them and the etcd backend read them
  // back (store/value-packing.ts), e.g. a packed value that does not inflate.
  // This backend otherwise keeps values as the text they were written as.
  async putStored(key: string, stored: Buffer): Promise<number> {
    const read = unpackValue(stored);
    // txn applies before its first await: nothing else runs in between.
    this.unreadable = read.ok ? undefined : read.problem;
    try { await this.txn([], [{ put: key, value: read.ok ? read.value : '' }]); } finally { this.unreadable = undefined; }
    return this.revision;
  }

  async txn(compares: Compare[], ops: Op[]): Promise<TxnResult> {
    if (this.down) throw new Error('14 UNAVAILABLE: No connection established');
    if (this.faults.txnBefore) { this.faults.txnBefore--; throw new Error('14 UNAVAILABLE: injected'); }
    // As etcd: a key written twice in one transaction is refused.
    const written = ops.map((op) => ('put' in op ? op.put : op.del));
    if (new Set(written).size !== written.length) throw new Error('3 INVALID_ARGUMENT: etcdserver: duplicate key given in txn request');
    const ok = compares.every((c) => {
      const kv = this.current(c.key);
      if ('absent' in c) return kv === undefined;
      if ('createRevision' in c) return (kv?.createRevision ?? 0) === c.createRevision;
      return (kv?.modRevision ?? 0) === c.modRevision;
    });
    for (const op of ops) if ('put' in op && op.lease && !this.leases.has(op.lease)) throw new Error('etcdserver: requested lease not found');
    if (!ok) return { succeeded: false, revision: this.revision };
    const rev = this.revision + 1;
    const events: WatchEvent[] = [];
    for (const op of ops) {
      const key = 'put' in op ? op.put : op.del;
      const prev = this.current(key);
      let vs = this.versions.get(key);
      if (!vs) this.versions.set(key, (vs = []));
      if ('put' in op) {
        const kv: KeyValue = { key, value: op.value, createRevision: prev?.createRevision ?? rev, modRevision: rev, ...(this.unreadable !== undefined ? { problem: this.unreadable } : {}) };
        vs.push({ rev, kv });
        events.push({ type: 'put', kv: { ...kv }, prevValue: prev?.value });
        for (const keys of this.leases.values()) keys.delete(key);
        if (op.lease) this.leases.get(op.lease)!.add(key);
      } else if (prev) {
        vs.push({ rev });
        events.push({ type: 'delete', kv: { ...prev, value: '', modRevision: rev }, prevValue: prev.value });
      }
    }
    // Like etcd: a transaction that changes nothing takes no revision.
    if (events.length) {
      this.revision = rev;
      this.history.push({ revision: rev, events });
      queueMicrotask(() => this.publish(events, rev));
    }
    if (this.faults.txnAfter) { this.faults.txnAfter--; throw new Error('4 DEADLINE_EXCEEDED: injected after apply'); }
    return { succeeded: true, revision: this.revision };
  }

  async grantLease(_ttlSeconds: number): Promise<string> {
    if (this.down) throw new Error('14 UNAVAILABLE: No connection established');
    const id = String(this.nextLease++);
    this.leases.set(id, new Set());
    return id;
  }

  async keepAliveOnce(lease: string): Promise<void> {
    if (this.down) throw new Error('14 UNAVAILABLE: No connection established');
    if (!this.leases.has(lease)) throw new Error(`lease ${lease} could not be renewed`);
  }

  async revokeLease(lease: string): Promise<void> {
    if (this.down) throw new Error('14 UNAVAILABLE: No connection established');
    this.expireLease(lease);
  }

  // The lease runs out: its keys are deleted in one revision, as etcd does.
  expireLease(lease: string): void {
    const keys = this.leases.get(lease);
    this.leases.delete(lease);
    // etcd deletes them even when this client cannot reach it (txn runs synchronously).
    const down = this.down;
    this.down = false;
    if (keys?.size) void this.txn([], [...keys].map((k) => ({ del: k })));
    this.down = down;
  }

  // Drops history before `rev`, as etcd's compaction does.
  compact(rev: number): void {
    this.compacted = rev;
    this.history = this.history.filter((h) => h.revision >= rev);
    for (const vs of this.versions.values()) {
      let keep = 0;
      for (let i = 0; i < vs.length; i++) if (vs[i]!.rev <= rev) keep = i;
      vs.splice(0, keep);
    }
  }

  // Drops every watcher as a broken connection would.
  breakWatches(): void {
    const ws = [...this.watchers];
    this.watchers.clear();
    for (const w of ws) w.cb.onLost(new Error('14 UNAVAILABLE: stream reset'), false);
  }

  // Every watcher now open stays open but gets nothing more, as a stream
  // that stopped without an error would.
  muteWatches(): void {
    for (const w of this.watchers) w.muted = true;
  }

  get currentRevision(): number { return this.revision; }

  private publish(events: WatchEvent[], rev: number): void {
    for (const w of this.watchers) {
      if (w.muted) continue;
      const mine = events.filter((e) => e.kv.key.startsWith(w.prefix));
      if (mine.length) w.cb.onEvents(mine, { revision: rev, clusterId: this.clusterId });
    }
  }

  async watch(prefix: string, fromRevision: number, cb: WatchCallbacks): Promise<WatchHandle> {
    if (fromRevision < this.compacted) {
      queueMicrotask(() => cb.onLost(new Error('etcdserver: mvcc: required revision has been compacted'), true));
      return { close: async () => undefined };
    }
    const w: { prefix: string; cb: WatchCallbacks; muted?: boolean } = { prefix, cb };
    // The backlog in one response of many revisions, as etcd sends a watch
    // that starts in the past (up to 1,000 revisions each).
    const backlog = this.history.filter((h) => h.revision >= fromRevision).flatMap((h) => h.events.filter((e) => e.kv.key.startsWith(prefix)));
    if (backlog.length) cb.onEvents(backlog, { revision: this.revision, clusterId: this.clusterId });
    this.watchers.add(w);
    return { close: async () => { this.watchers.delete(w); } };
  }

  async close(): Promise<void> { this.watchers.clear(); }
}
