// How much of what was written recently etcd still holds in memory, as the
// mirror sees it. etcd 3.4 keeps its last raft entries in memory: those since
// its last snapshot (taken every --snapshot-count entries) plus 5,000 before
// it for slow followers to catch up from, a count fixed in etcd. After a bulk
// create those entries are big transactions, tens of MB on every member, and
// they stay until as many newer entries have pushed them out (maintenance.ts
// does that with entries that change nothing, once the store is quiet).
//
// A revision is one write transaction, one raft entry; the window keeps the
// bytes (keys and values as the mirror reads them) of the last `size` ones.

import { ETCD_SNAPSHOT_COUNT } from './etcd-process';

// etcd 3.4's raft entries kept behind a snapshot (etcdserver's
// snapshotCatchUpEntries; not a flag in 3.4).
export const ETCD_CATCH_UP_ENTRIES = 5000;
// The most entries a member holds: the catch-up ones and a whole snapshot's worth.
export const ETCD_HELD_ENTRIES = ETCD_CATCH_UP_ENTRIES + ETCD_SNAPSHOT_COUNT;

export class RaftLogWindow {
  private readonly bytes: Float64Array;
  private head = 0;         // the slot of `lastRevision`
  private lastRevision = 0;
  private total = 0;

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size < 1) throw new Error(`raft log window: size ${size} is not a positive integer`);
    this.bytes = new Float64Array(size);
  }

  // One event of `revision` weighing `bytes`. Revisions come in order; a gap
  // (writes the mirror did not see one by one, as across a reload) moves the
  // window on by as many entries, each counted as empty.
  note(revision: number, bytes: number): void {
    if (revision !== this.lastRevision) {
      const steps = this.lastRevision === 0 || revision < this.lastRevision ? 1 : Math.min(revision - this.lastRevision, this.size);
      for (let i = 0; i < steps; i++) {
        this.head = (this.head + 1) % this.size;
        this.total -= this.bytes[this.head]!;
        this.bytes[this.head] = 0;
      }
      this.lastRevision = revision;
    }
    this.bytes[this.head]! += bytes;
    this.total += bytes;
  }

  // The bytes of the last `size` revisions.
  get heldBytes(): number { return this.total; }

  // The revisions after the newest one of at least `minBytes`: entries that
  // weigh nothing to speak of and need not be pushed out (`size` if none is).
  lightTail(minBytes: number): number {
    for (let back = 0; back < this.size; back++) {
      if (this.bytes[(this.head - back + this.size) % this.size]! >= minBytes) return back;
    }
    return this.size;
  }

  // The entries were pushed out of etcd's memory: nothing recent weighs anything.
  clear(): void {
    this.bytes.fill(0);
    this.total = 0;
  }
}
