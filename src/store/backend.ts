// The store's view of a replicated key-value engine. etcd is the real one
// (etcd-backend.ts); memory-backend.ts serves unit tests. Keeping the surface
// this small (range, count, transaction, watch) is what lets tests swap it.
import type { Logger } from '../common/log';
import type { KeeperTiming, LeaseKeeper } from './lease-keeper';

export interface KeyValue {
  key: string;
  value: string;
  createRevision: number;
  modRevision: number;
  // Set when the stored bytes could not be read as text (value is then
  // empty): that key is reported and skipped, as one that is not JSON.
  problem?: string;
}

// Who answered: a different cluster ID means a different etcd (wiped data,
// another cluster), whose revisions have nothing to do with ours.
export interface Header { revision: number; clusterId?: string }

export interface RangeOptions {
  revision?: number;   // read the key space as it was at this revision (0/undefined: now)
  limit?: number;      // at most this many keys
  fromKey?: string;    // start at this key (inclusive) instead of the prefix
  keysOnly?: boolean;  // values left out (empty)
  timeoutMs?: number;  // how long to wait for the answer (the client's default otherwise)
}

export interface RangeResult { kvs: KeyValue[]; revision: number; more: boolean; clusterId?: string }

export type Compare =
  | { key: string; modRevision: number }   // key's mod revision equals (0: must not exist)
  | { key: string; absent: true }
  | { key: string; createRevision: number }; // the key was created at this revision (a leader's term)

// `lease`: the key is deleted by etcd when that lease expires (presence, leadership).
export type Op = { put: string; value: string; lease?: string } | { del: string };

export interface TxnResult { succeeded: boolean; revision: number }

export interface WatchEvent { type: 'put' | 'delete'; kv: KeyValue; prevValue?: string }

export interface WatchHandle { close(): Promise<void> }

export interface WatchCallbacks {
  // Events of one revision or more, in order, as the engine sent them.
  onEvents(events: WatchEvent[], header: Header): void;
  // The stream broke or was cancelled. The store re-creates the watch itself
  // from its own revision (never trusting a client library's resume);
  // `compacted` says that revision is gone and a full reload is needed.
  onLost(err: Error, compacted: boolean): void;
}

// Leases: keys that vanish when their holder stops renewing (etcd's lease API).
export interface LeaseBackend {
  grantLease(ttlSeconds: number): Promise<string>;
  // Renews once; rejects when the lease is gone (expired or revoked) or etcd does not answer.
  keepAliveOnce(lease: string): Promise<void>;
  revokeLease(lease: string): Promise<void>;
  // A keeper that renews leases from a thread of its own (lease-keeper.ts), where the backend can have one.
  leaseKeeper?(log: Logger, timing?: KeeperTiming): LeaseKeeper;
}

export function hasLeases(b: Backend): b is Backend & LeaseBackend {
  return typeof (b as Partial<LeaseBackend>).grantLease === 'function';
}

export interface Backend {
  range(prefix: string, opts?: RangeOptions): Promise<RangeResult>;
  // How many keys are under `prefix` at `revision` (0: now), without reading them.
  count(prefix: string, revision?: number): Promise<number>;
  // timeoutMs: this call's deadline when shorter than the client's default.
  txn(compares: Compare[], ops: Op[], opts?: { timeoutMs?: number }): Promise<TxnResult>;
  // Watches every key (prefix '') or a prefix from `fromRevision` on.
  watch(prefix: string, fromRevision: number, cb: WatchCallbacks): Promise<WatchHandle>;
  close(): Promise<void>;
}

// Every key under `prefix`, in pages of at most `pageKeys`, all read at one
// revision: `opts.revision`, or the first page's. A page too big for one
// answer (or too slow for PAGE_TIMEOUT_MS) is asked again at half the size.
// A page of 10,000 tasks is 5 MB: a loaded etcd took more than the usual 5 s
// for it, and a leader reloading its mirror that way never finished.
export const PAGE_TIMEOUT_MS = 20_000;
export async function* rangePages(backend: Pick<Backend, 'range'>, prefix: string, pageKeys: number, opts: Pick<RangeOptions, 'revision' | 'keysOnly'> = {}): AsyncGenerator<RangeResult> {
  let revision = opts.revision ?? 0;
  let fromKey: string | undefined;
  let limit = pageKeys;
  for (;;) {
    let page: RangeResult;
    try {
      page = await backend.range(prefix, { revision, limit, fromKey, keysOnly: opts.keysOnly, timeoutMs: PAGE_TIMEOUT_MS });
    } catch (e) {
      if (/RESOURCE_EXHAUSTED|larger than max|DEADLINE_EXCEEDED/i.test((e as Error).message) && limit > 100) { limit = Math.ceil(limit / 2); continue; }
      throw e;
    }
    if (!revision) revision = page.revision;
    yield page;
    if (!page.more || !page.kvs.length) return;
    fromKey = page.kvs[page.kvs.length - 1]!.key + '\0';
  }
}

// etcd refuses transactions with more operations than --max-txn-ops (default 128).
export const MAX_TXN_OPS = 128;
// ...and requests over --max-request-bytes (default 1.5 MiB). Keys, values and
// the protobuf framing count; a margin keeps us clear of it.
export const MAX_TXN_BYTES = 1024 * 1024;

export function opBytes(op: Op): number {
  return 'put' in op ? Buffer.byteLength(op.put) + Buffer.byteLength(op.value) + 16 : Buffer.byteLength(op.del) + 8;
}

// A backend that can replace a client of its own that stopped answering
// (etcd-backend.ts, UNARY_WEDGED_MS) and says so, for the store to log.
export interface RenewsClient { onClientRenewed: ((silentMs: number) => void) | undefined }
export const renewsClient = (b: object): b is RenewsClient => 'onClientRenewed' in b;
