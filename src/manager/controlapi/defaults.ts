import type { ServiceSpec, UpdateConfig } from '../../model/types';
import { SECOND_NS } from '../../common/time';

// SwarmKit's api/defaults: what `insertDefaults=true` shows and what the
// control loops assume when a field is absent.
export const DEFAULT_RESTART_DELAY_NS = 5 * SECOND_NS;
export const DEFAULT_STOP_GRACE_NS = 10 * SECOND_NS;
export const DEFAULT_HISTORY_LIMIT = 5;

export const defaultUpdateConfig = (): Required<Omit<UpdateConfig, 'Delay'>> & { Delay?: number } => ({
  Parallelism: 1,
  FailureAction: 'pause',
  Monitor: 5 * SECOND_NS,
  MaxFailureRatio: 0,
  Order: 'stop-first',
});

// The stored spec plus every default filled in, as `docker service inspect` shows it.
export function withDefaults(spec: ServiceSpec): ServiceSpec {
  const s = structuredClone(spec);
  const tt = (s.TaskTemplate ??= {});
  const cs = (tt.ContainerSpec ??= {});
  cs.StopGracePeriod ??= DEFAULT_STOP_GRACE_NS;
  tt.Resources ??= {};
  tt.Resources.Limits ??= {};
  tt.Resources.Reservations ??= {};
  const rp = (tt.RestartPolicy ??= {});
  rp.Condition ??= 'any';
  rp.Delay ??= DEFAULT_RESTART_DELAY_NS;
  rp.MaxAttempts ??= 0;
  tt.Placement ??= {};
  s.UpdateConfig = { ...defaultUpdateConfig(), ...s.UpdateConfig };
  s.RollbackConfig = { ...defaultUpdateConfig(), ...s.RollbackConfig };
  s.EndpointSpec ??= { Mode: 'vip' };
  return s;
}
