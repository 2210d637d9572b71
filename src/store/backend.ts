// The store's view of a replicated key-value engine. etcd is the real one
// (etcd-backend.ts); memory-backend.ts serves unit tests. Keeping the surface
// this small (range, transaction, watch) is what lets tests swap it.

export interface KeyValue {
  key: string;
  value: string;
  createRevision: number;
  modRevision: number;
}

export interface RangeResult { kvs: KeyValue[]; revision: number }

export type Compare =
  | { key: string; modRevision: number }   // key's mod revision equals (0: must not exist)
  | { key: string; absent: true };

export type Op = { put: string; value: string } | { del: string };

export interface TxnResult { succeeded: boolean; revision: number }

export interface WatchEvent { type: 'put' | 'delete'; kv: KeyValue; prevValue?: string }

export interface WatchHandle { close(): Promise<void> }

export interface WatchCallbacks {
  // Events of one revision or more, in order; `revision` is the newest seen.
  onEvents(events: WatchEvent[], revision: number): void;
  // The watch cannot resume (history compacted): the caller must reload.
  onLost(err: Error): void;
}

export interface Backend {
  range(prefix: string): Promise<RangeResult>;
  txn(compares: Compare[], ops: Op[]): Promise<TxnResult>;
  watch(prefix: string, fromRevision: number, cb: WatchCallbacks): Promise<WatchHandle>;
  close(): Promise<void>;
}

// etcd refuses transactions with more operations than --max-txn-ops (default 128).
export const MAX_TXN_OPS = 128;
