import type { Node, Service, Task } from '../../model/types';
import { nodeCanHold } from './restart';
import { RANK, rank } from './task';
import { updatePhase } from './update-state';

// Whether a change to a task can change the orchestrator's decisions for its
// service, so the loop reconciles the service again only then.
//
// Most task writes in a big create or a recovery are agents reporting progress
// (assigned, preparing, starting, running) on tasks the orchestrator wants to
// run. Reconciling a 30,000-task service for each batch of such reports was
// half of a busy leader's CPU (issue 10, `bench/scale.ts --leader-prof`), and
// none of it could decide anything: a wanted task's progress short of
// stopping matters only to a rolling update under way, which waits for its new
// tasks to run. (The loop records when a task first runs by itself.)
//
// The scheduler's assignment of a task to a node is progress too, when the
// node can hold it (up, active, meeting the task's constraints): the pass
// would leave that task alone. Each assignment batch of a big create made
// such a pass over the whole service (54% of the bytes the leader allocated
// during a 30,000-task create: `bench/scale.ts --leader-prof F.allocprofile`).
// A node that goes bad later makes its own event, and the loop then
// reconciles the services of every task the mirror has on it, this one
// included, so nothing is missed in between.
//
// Everything else still matters: a task created, deleted, moved, stopped, or
// asked to stop, or assigned to a node that cannot hold it; its spec, slot
// or job iteration; any change while the service updates or is gone.
export function taskChangeMatters(prev: Task | undefined, next: Task | undefined, service: Service | undefined, nodeOf?: (id: string) => Node | undefined): boolean {
  if (!prev || !next || !service) return true;
  if (prev.NodeID !== next.NodeID && !(!prev.NodeID && nodeOf && nodeCanHold(nodeOf(next.NodeID!), next))) return true;
  if (prev.ServiceID !== next.ServiceID || prev.DesiredState !== next.DesiredState
    || prev.Slot !== next.Slot || prev.Spec !== next.Spec || prev.CreatedAt !== next.CreatedAt
    || prev.JobIteration?.Index !== next.JobIteration?.Index) return true;
  // A task being stopped: how far it got decides whether its replacement may
  // start and whether it may be removed. (A job's tasks are wanted `complete`.)
  if (rank(next.DesiredState) > RANK.complete) return true;
  // Stopped (failed, complete, rejected...): a restart, a job's progress.
  if (rank(prev.Status.State) > RANK.running || rank(next.Status.State) > RANK.running) return true;
  return updatePhase(service.UpdateStatus) === 'running';
}
