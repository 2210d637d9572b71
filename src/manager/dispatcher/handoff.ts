import type { NodeRole } from '../../model/types';

// Whether the leader keeps a new direct session or hands it to another
// manager (protocol/dispatcher.ts handedOff). Pure: the dispatcher asks it
// before it registers the node.
//
// Why: every node's session costs the manager that holds its connection
// about 120 KiB of TLS and HTTP/2 state and the CPU of its heartbeats and
// reports, one by one. A follower relays its nodes to the leader in batches
// over one connection (relay.ts). Nodes spread over the managers at random,
// so without this the leader, which already runs the scheduler, the
// orchestrators, the allocator and the dispatcher, also held a third of the
// connections: at 5,000 nodes its daemon and etcd were the one manager
// over 1 GiB (bench/scale.ts).
//
// A small cluster is left as it was: the leader keeps up to `keep` direct
// sessions of workers. Managers' own agents always stay (each talks to its
// own daemon first), and so does a node that does not accept a hand-off (an
// earlier release, or one whose last hand-off led nowhere: it is not sent
// round in a circle).

export interface HandoffQuestion {
  role: NodeRole;            // the node's, from its certificate
  relayed: boolean;          // the session came through another manager
  acceptsHandoff: boolean;   // SessionRequest.AcceptsHandoff
  directWorkers: number;     // direct sessions of workers the leader holds now
  keep: number;              // how many of those it keeps before handing off
  targets: readonly string[];// the other managers that are up (host:port)
  turn: number;              // a counter: the targets take turns
}

// Direct worker sessions a leader keeps before it hands new ones off.
export const DIRECT_SESSIONS_KEPT = 100;

// The manager to send the session to, or undefined to keep it here.
export function handoffTarget(q: HandoffQuestion): string | undefined {
  if (q.relayed || q.role !== 'worker' || !q.acceptsHandoff) return undefined;
  if (q.directWorkers < q.keep || q.targets.length === 0) return undefined;
  return q.targets[q.turn % q.targets.length];
}
