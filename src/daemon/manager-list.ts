import type { Node } from '../model/types';
import type { KnownManagers } from '../protocol/checks';

// The managers a node is told of (session messages, the join's answer, and
// this manager's own renewals): their addresses, this manager's first (its
// own agent talks to it unless told of the leader), and the leader's. A
// manager whose node is down is left out, unless it leads or is this one: a
// node would spend a connection attempt on it, and after a restore from a
// backup every manager of the old swarm is down for good (a new worker's
// first session, picking among them, timed out).
export function managerList(nodes: readonly Node[], leaderId: string | undefined, selfId: string): KnownManagers {
  const list = nodes.filter((n) => n.Spec.Role === 'manager' && n.ManagerStatus?.Addr
    && (n.Status.State !== 'down' || n.ID === leaderId || n.ID === selfId));
  const addrs = list.sort((x, y) => (x.ID === selfId ? -1 : y.ID === selfId ? 1 : 0)).map((n) => n.ManagerStatus!.Addr);
  const leaderAddr = list.find((n) => n.ID === leaderId)?.ManagerStatus?.Addr;
  return { ...(leaderAddr ? { leaderAddr } : {}), addrs };
}
