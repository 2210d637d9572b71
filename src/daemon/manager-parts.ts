// What only a manager runs, loaded by daemon.ts the first time the node is a
// manager (a dynamic import), so that a worker's daemon never loads it.
import type { Logger } from '../common/log';
import type { Sealer } from '../manager/ca/ca-key';
import { startAllocator } from '../manager/allocator/loop';
import { startNetworkKeys } from '../manager/netkeys/loop';
import { keyTimingFromEnv } from '../manager/netkeys/schedule';
import { startOrchestrator } from '../manager/orchestrator/loop';
import { startScheduler } from '../manager/scheduler/loop';
import type { Store } from '../store/store';
import type { RunningComponents } from './swarm-node';

export { startDispatcher } from '../manager/dispatcher/dispatcher';
export { startLogBroker } from '../manager/logbroker';
export { NetworkKeyReader } from '../manager/netkeys/reader';

// On the leader only (swarm-node.ts runs the election), with a fenced store.
export async function startLeaderComponents(store: Store, log: Logger, sealer: Sealer): Promise<RunningComponents> {
  const scheduler = startScheduler({ store, log: log.child({ component: 'scheduler' }) });
  const orchestrator = startOrchestrator({ store, log: log.child({ component: 'orchestrator' }), placer: scheduler });
  const allocator = startAllocator({ store, log: log.child({ component: 'allocator' }) });
  const networkKeys = startNetworkKeys({ store, log: log.child({ component: 'netkeys' }), sealer, timing: keyTimingFromEnv(process.env) });
  return { stop: async () => { orchestrator.stop(); allocator.stop(); scheduler.stop(); networkKeys.stop(); } };
}
