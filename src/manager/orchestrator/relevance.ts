import type { Service, Task } from '../../model/types';
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
// Everything else still matters: a task created, deleted, moved, stopped, or
// asked to stop; its spec, slot or job iteration; any change while the
// service updates or is gone.
export function taskChangeMatters(prev: Task | undefined, next: Task | undefined, service: Service | undefined): boolean {
  if (!prev || !next || !service) return true;
  if (prev.ServiceID !== next.ServiceID || prev.NodeID !== next.NodeID || prev.DesiredState !== next.DesiredState
    || prev.Slot !== next.Slot || prev.Spec !== next.Spec || prev.CreatedAt !== next.CreatedAt
    || prev.JobIteration?.Index !== next.JobIteration?.Index) return true;
  // A task being stopped: how far it got decides whether its replacement may
  // start and whether it may be removed. (A job's tasks are wanted `complete`.)
  if (rank(next.DesiredState) > RANK.complete) return true;
  // Stopped (failed, complete, rejected...): a restart, a job's progress.
  if (rank(prev.Status.State) > RANK.running || rank(next.Status.State) > RANK.running) return true;
  return updatePhase(service.UpdateStatus) === 'running';
}
