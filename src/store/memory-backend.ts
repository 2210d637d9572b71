import type { Backend, Compare, KeyValue, Op, RangeResult, TxnResult, WatchCallbacks, WatchEvent, WatchHandle } from './backend';

// An in-process stand-in for etcd with the same revision semantics, for unit tests.
export class MemoryBackend implements Backend {
  private data = new Map<string, KeyValue>();
  private revision = 1;
  private watchers = new Set<{ prefix: string; cb: WatchCallbacks }>();
  private history: Array<{ revision: number; events: WatchEvent[] }> = [];

  async range(prefix: string): Promise<RangeResult> {
    const kvs = [...this.data.values()].filter((kv) => kv.key.startsWith(prefix)).sort((a, b) => a.key.localeCompare(b.key));
    return { kvs: kvs.map((kv) => ({ ...kv })), revision: this.revision };
  }

  async txn(compares: Compare[], ops: Op[]): Promise<TxnResult> {
    const ok = compares.every((c) => {
      const kv = this.data.get(c.key);
      if ('absent' in c) return kv === undefined;
      return (kv?.modRevision ?? 0) === c.modRevision;
    });
    if (!ok) return { succeeded: false, revision: this.revision };
    if (ops.length === 0) return { succeeded: true, revision: this.revision };
    const rev = ++this.revision;
    const events: WatchEvent[] = [];
    for (const op of ops) {
      if ('put' in op) {
        const prev = this.data.get(op.put);
        const kv: KeyValue = { key: op.put, value: op.value, createRevision: prev?.createRevision ?? rev, modRevision: rev };
        this.data.set(op.put, kv);
        events.push({ type: 'put', kv: { ...kv }, prevValue: prev?.value });
      } else {
        const prev = this.data.get(op.del);
        if (!prev) continue;
        this.data.delete(op.del);
        events.push({ type: 'delete', kv: { ...prev, value: '', modRevision: rev }, prevValue: prev.value });
      }
    }
    this.history.push({ revision: rev, events });
    queueMicrotask(() => this.publish(events, rev));
    return { succeeded: true, revision: rev };
  }

  private publish(events: WatchEvent[], rev: number): void {
    for (const w of this.watchers) {
      const mine = events.filter((e) => e.kv.key.startsWith(w.prefix));
      if (mine.length) w.cb.onEvents(mine, rev);
    }
  }

  async watch(prefix: string, fromRevision: number, cb: WatchCallbacks): Promise<WatchHandle> {
    const w = { prefix, cb };
    for (const h of this.history) {
      if (h.revision < fromRevision) continue;
      const mine = h.events.filter((e) => e.kv.key.startsWith(prefix));
      if (mine.length) cb.onEvents(mine, h.revision);
    }
    this.watchers.add(w);
    return { close: async () => { this.watchers.delete(w); } };
  }

  async close(): Promise<void> { this.watchers.clear(); }
}
