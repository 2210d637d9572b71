// Writes a backup's keys into a new, empty etcd (`shoal restore`), before the
// store opens on it: plain puts in transactions within etcd's limits. Each
// key gets a new revision; objects' versions follow (Version.Index is the
// mod revision), so nothing in a value refers to the old revisions.
import type { Backend, Op } from './backend';
import { MAX_TXN_BYTES, MAX_TXN_OPS, opBytes } from './backend';
import { isLeaseKey, ROOT } from './keys';
import { invalid } from '../common/errors';

// The batches (pure): at most MAX_TXN_OPS puts and MAX_TXN_BYTES each, keys outside ROOT refused.
export function seedBatches(kvs: Array<[string, string]>): Op[][] {
  const batches: Op[][] = [];
  let cur: Op[] = [];
  let bytes = 0;
  for (const [key, value] of kvs) {
    if (!key.startsWith(ROOT)) throw invalid(`invalid backup file: key ${JSON.stringify(key.slice(0, 80))} is outside ${ROOT}`);
    if (isLeaseKey(key)) continue;
    const op: Op = { put: key, value };
    const b = opBytes(op);
    if (b > MAX_TXN_BYTES) throw invalid(`invalid backup file: key ${key} holds ${b} bytes, more than one transaction takes`);
    if (cur.length >= MAX_TXN_OPS || bytes + b > MAX_TXN_BYTES) { batches.push(cur); cur = []; bytes = 0; }
    cur.push(op);
    bytes += b;
  }
  if (cur.length) batches.push(cur);
  return batches;
}

// The target must be empty: a restore never mixes with existing state.
export async function seedStore(backend: Backend, kvs: Array<[string, string]>): Promise<number> {
  const existing = await backend.range(ROOT, { limit: 1 });
  if (existing.kvs.length) throw invalid('restore: the cluster store is not empty');
  let written = 0;
  for (const ops of seedBatches(kvs)) {
    await backend.txn([], ops);
    written += ops.length;
  }
  return written;
}
