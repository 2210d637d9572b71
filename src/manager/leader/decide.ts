// The election's rules, without I/O (election.ts does the calls).
//
// A manager holds a lease in etcd (renewed every `renewMs`, TTL `ttlMs`);
// the leader is whoever created the leader key under its lease. It leads only
// while it is sure its lease is alive: the last renewal etcd confirmed was
// *sent* less than the TTL minus a safety margin ago (etcd counts the TTL
// from when it received that renewal, which is later). Past that it stops
// its leader-only components even if the key still says it leads; the fence
// on every write covers the time in between.

export interface ElectionView {
  nodeId: string;
  now: number;
  ttlMs: number;
  marginMs: number;
  // When the last confirmed renewal (or the grant) was sent; undefined: no lease.
  leaseConfirmedSentAt?: number;
  // The leader key as the mirror sees it.
  leaderKey?: { value: string; createRevision: number };
  // Our term, while we lead: the create revision of the key we made.
  term?: number;
}

export type ElectionStep =
  | 'new-lease'   // no usable lease: get one (and re-put the presence key)
  | 'campaign'    // nobody leads and our lease is good: try to create the key
  | 'step-down'   // we led, but the key is gone or another's, or our lease may have expired
  | 'clear-own'   // not leading, yet the key names us: left from a term we stepped down from
  | 'hold';       // nothing to do (leading or following)

export function leaseAlive(v: ElectionView): boolean {
  return v.leaseConfirmedSentAt !== undefined && v.now - v.leaseConfirmedSentAt < v.ttlMs - v.marginMs;
}

export function electionStep(v: ElectionView): ElectionStep {
  const alive = leaseAlive(v);
  if (v.term !== undefined) {
    if (!alive) return 'step-down';
    if (!v.leaderKey || v.leaderKey.createRevision !== v.term) return 'step-down';
    return 'hold';
  }
  if (!alive) return 'new-lease';
  if (!v.leaderKey) return 'campaign';
  // A renewal confirmed too late to be sure (a stall, quorum lost and back)
  // made us step down while etcd kept the lease, and with it our key: it
  // would say we lead while nobody does, for as long as we renew. Deleted,
  // so that a campaign can start a new term.
  if (v.leaderKey.value === v.nodeId) return 'clear-own';
  return 'hold';
}

// How long a lease this manager asks for. On a loaded host (a leader placing
// 150,000 tasks on two cores) its event loop is held up for seconds by GC
// and CPU starvation; a 4 s lease then ran out between two renewals and the
// leader role moved from manager to manager, each new leader starting over
// (bench/scale.ts, 5,000 nodes). So the TTL follows the worst hold-up seen
// lately (a renewal's round trip, or how late the renewal timer fired):
// STRAIN_FACTOR times it, in whole seconds, between the configured TTL and
// the maximum; it comes back down once that hold-up has left the window.
export const STRAIN_FACTOR = 3;

export function leaseTtlMs(baseMs: number, maxMs: number, worstStrainMs: number): number {
  const wanted = worstStrainMs * STRAIN_FACTOR;
  if (wanted <= baseMs) return baseMs;
  return Math.max(baseMs, Math.min(maxMs, Math.ceil(wanted / 1000) * 1000));
}
