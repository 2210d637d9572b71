import type { Service, ServiceSpec, UpdateConfig, UpdateStatus } from '../../model/types';
import { nowIso, nsToMs, parseIsoMs } from '../../common/time';

// What an update is doing, as Service.UpdateStatus says, and the transitions
// of that state machine with Docker's (SwarmKit's updater.go) messages:
//
//   (none) ──task spec changed──▶ updating ──last batch + Monitor──▶ completed
//                                   │  failure > MaxFailureRatio
//                                   ├── FailureAction pause ──▶ paused
//                                   └── FailureAction rollback ─▶ rollback_started (Spec ⇐ PreviousSpec)
//   `docker service rollback` (control API) ──▶ rollback_started ──▶ rollback_completed
//                                   │  failure > RollbackConfig.MaxFailureRatio
//                                   └── pause or rollback ──▶ rollback_paused (never rolled back)
//
// A paused update stays paused until the service is updated again (the
// control API clears UpdateStatus on every non-rollback update).

export const MSG_UPDATING = 'update in progress';
export const MSG_COMPLETED = 'update completed';
export const MSG_ROLLBACK_COMPLETED = 'rollback completed';
export const msgPaused = (taskId: string): string => `update paused due to failure or early termination of task ${taskId}`;
export const msgRolledBack = (taskId: string): string => `update rolled back due to failure or early termination of task ${taskId}`;
export const msgRollbackPaused = (taskId: string): string => `rollback paused due to failure or early termination of task ${taskId}`;

// SwarmKit's api/defaults for UpdateConfig and RollbackConfig (they are the same).
export const DEFAULT_MONITOR_MS = 5_000;

export type FailureAction = 'pause' | 'continue' | 'rollback';

export interface UpdateParams {
  parallelism: number;      // Infinity for 0 ("all at once")
  delayMs: number;
  startFirst: boolean;
  monitorMs: number;        // a new task failing within this long after it started is a failure
  failureAction: FailureAction;
  maxFailureRatio: number;
}

export function updateParams(cfg: UpdateConfig | undefined): UpdateParams {
  const p = cfg?.Parallelism ?? 1;
  const action = cfg?.FailureAction;
  return {
    parallelism: p <= 0 ? Infinity : p,
    delayMs: nsToMs(cfg?.Delay ?? 0),
    startFirst: cfg?.Order === 'start-first',
    // dockerd sends no Monitor to SwarmKit when it is 0, so 0 means the default.
    monitorMs: cfg?.Monitor ? nsToMs(cfg.Monitor) : DEFAULT_MONITOR_MS,
    failureAction: action === 'continue' || action === 'rollback' ? action : 'pause',
    maxFailureRatio: cfg?.MaxFailureRatio ?? 0,
  };
}

// After the last batch SwarmKit watches for one more Monitor period, or, when
// Delay is at least Monitor, for Delay + 1 s (updater.go).
export function finalMonitorMs(p: UpdateParams): number {
  return p.delayMs >= p.monitorMs ? p.delayMs + 1_000 : p.monitorMs;
}

export type UpdatePhase = 'none' | 'running' | 'paused' | 'done';

export function updatePhase(status: UpdateStatus | undefined): UpdatePhase {
  switch (status?.State) {
    case 'updating': case 'rollback_started': return 'running';
    case 'paused': case 'rollback_paused': return 'paused';
    case 'completed': case 'rollback_completed': return 'done';
    default: return 'none';
  }
}

export const isRollingBack = (status: UpdateStatus | undefined): boolean =>
  status?.State === 'rollback_started' || status?.State === 'rollback_paused';

// The configuration the current update (or rollback) runs with.
export function activeParams(service: Service): UpdateParams {
  return updateParams(isRollingBack(service.UpdateStatus) ? service.Spec.RollbackConfig : service.Spec.UpdateConfig);
}

// Since when tasks count as made by the current update. A finished update
// that finds dirty slots again (a node stopped meeting a constraint) replaces
// them without a new UpdateStatus, as SwarmKit does; its tasks are those made
// after the last completion.
export function updateStartMs(status: UpdateStatus | undefined, now: number): number {
  switch (updatePhase(status)) {
    case 'running': case 'paused': return parseIsoMs(status?.StartedAt);
    case 'done': return parseIsoMs(status?.CompletedAt);
    default: return now;
  }
}

export function startedStatus(now: number): UpdateStatus {
  return { State: 'updating', StartedAt: nowIso(now), Message: MSG_UPDATING };
}

// completeUpdate: only a running rollback ends as rollback_completed.
export function completedStatus(cur: UpdateStatus | undefined, now: number): UpdateStatus {
  const rollback = cur?.State === 'rollback_started';
  return {
    State: rollback ? 'rollback_completed' : 'completed',
    StartedAt: cur?.StartedAt,
    CompletedAt: nowIso(now),
    Message: rollback ? MSG_ROLLBACK_COMPLETED : MSG_COMPLETED,
  };
}

export interface FailureDecision {
  service: Service;   // the service to write
  stop: boolean;      // nothing more is started by this update
}

// What the failure action makes of the service once failures exceed the
// ratio; `taskId` is the failed task that tipped it over. Pausing keeps the
// other fields (StartedAt, CompletedAt) as SwarmKit's pauseUpdate does.
export function onFailure(service: Service, action: FailureAction, taskId: string, now: number): FailureDecision | undefined {
  if (action === 'continue') return undefined;
  const cur = service.UpdateStatus;
  const rollingBack = cur?.State === 'rollback_started';
  const at = nowIso(now);
  if (action === 'pause' || rollingBack || !service.PreviousSpec) {
    // A rollback is never rolled back. (Without a previous spec SwarmKit's
    // rollback fails and the update just stops; here it pauses, visibly.)
    const message = action === 'rollback' && rollingBack ? msgRollbackPaused(taskId) : msgPaused(taskId);
    return {
      service: { ...service, UpdatedAt: at, UpdateStatus: { ...cur, State: rollingBack ? 'rollback_paused' : 'paused', Message: message } },
      stop: true,
    };
  }
  // rollbackUpdate: back to the previous spec, which is then gone (unlike a
  // manual rollback, which swaps the two), keeping StartedAt.
  const { PreviousSpec: previous, ...rest } = service;
  return {
    service: {
      ...rest,
      Spec: structuredClone(previous) as ServiceSpec,
      UpdatedAt: at,
      UpdateStatus: { ...cur, State: 'rollback_started', Message: msgRolledBack(taskId) },
    },
    stop: true,
  };
}
