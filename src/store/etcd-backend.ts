import { Etcd3, type IOptions } from 'etcd3';
import type { Backend, Compare, KeyValue, Op, RangeResult, TxnResult, WatchCallbacks, WatchEvent, WatchHandle } from './backend';

// etcd3's RPC layer directly: the store needs revisions on every answer, and
// multi-key compare-and-swap transactions, which the fluent builders hide.

function prefixEnd(prefix: string): Buffer {
  const b = Buffer.from(prefix);
  for (let i = b.length - 1; i >= 0; i--) {
    if (b[i]! < 0xff) { const end = Buffer.from(b.subarray(0, i + 1)); end[i]! += 1; return end; }
  }
  return Buffer.from([0]);
}

function toKv(kv: { key: Buffer; value: Buffer; create_revision: string; mod_revision: string }): KeyValue {
  return {
    key: kv.key.toString(),
    value: kv.value.toString(),
    createRevision: Number(kv.create_revision),
    modRevision: Number(kv.mod_revision),
  };
}

export class EtcdBackend implements Backend {
  readonly client: Etcd3;

  constructor(options: IOptions) {
    this.client = new Etcd3({ dialTimeout: 5000, ...options });
  }

  async range(prefix: string): Promise<RangeResult> {
    const res = await this.client.kv.range({ key: Buffer.from(prefix), range_end: prefixEnd(prefix) });
    return { kvs: res.kvs.map(toKv), revision: Number(res.header.revision) };
  }

  async txn(compares: Compare[], ops: Op[]): Promise<TxnResult> {
    const res = await this.client.kv.txn({
      compare: compares.map((c) => ('absent' in c
        ? { key: Buffer.from(c.key), target: 'Create' as const, result: 'Equal' as const, create_revision: 0 }
        : { key: Buffer.from(c.key), target: 'Mod' as const, result: 'Equal' as const, mod_revision: c.modRevision })),
      success: ops.map((op) => ('put' in op
        ? { request_put: { key: Buffer.from(op.put), value: Buffer.from(op.value) } }
        : { request_delete_range: { key: Buffer.from(op.del) } })),
      failure: [],
    });
    return { succeeded: res.succeeded, revision: Number(res.header.revision) };
  }

  async watch(prefix: string, fromRevision: number, cb: WatchCallbacks): Promise<WatchHandle> {
    const watcher = await this.client.watch().prefix(prefix).withPreviousKV().startRevision(String(fromRevision)).create();
    watcher.on('data', (res) => {
      if (res.events.length === 0) return;
      const events: WatchEvent[] = res.events.map((e) => ({
        type: e.type === 'Put' ? 'put' : 'delete',
        kv: toKv(e.kv),
        prevValue: e.prev_kv ? e.prev_kv.value.toString() : undefined,
      }));
      cb.onEvents(events, Number(res.header.revision));
    });
    // etcd3 re-establishes a dropped stream from the last revision it saw by
    // itself; an error here means it cannot (compaction, cancel): reload.
    watcher.on('error', (err) => cb.onLost(err));
    return { close: async () => { await watcher.cancel(); } };
  }

  async close(): Promise<void> { this.client.close(); }
}
