// The leader's part of a root CA rotation: each time the cluster or a node
// changes, ask rotation.ts where the rotation stands; once every node holds a
// certificate of the new CA, write the cluster object that ends it (the
// fenced store: a deposed leader's write is refused). Checks are coalesced.
import type { Logger } from '../../common/log';
import { nowIso } from '../../common/time';
import type { Store } from '../../store/store';
import { finishedRotation, rotationDecision } from './rotation';

export function startRotationLoop(opts: { store: Store; log: Logger }): { stop(): void } {
  const { store, log } = opts;
  let stopped = false;
  let busy = false;
  let again = false;
  let lastPending = '';

  const check = async (): Promise<void> => {
    if (stopped) return;
    if (busy) { again = true; return; }
    busy = true;
    try {
      do {
        again = false;
        const cluster = store.first('cluster');
        if (!cluster) return;
        const d = rotationDecision(cluster, store.list('nodes'));
        if (d.kind === 'waiting') {
          const key = d.pending.join(',');
          if (key !== lastPending) log.info({ pending: d.pending.length, nodes: d.pending.slice(0, 20) }, 'root CA rotation: waiting for nodes to renew');
          lastPending = key;
        } else if (d.kind === 'finish') {
          const next = finishedRotation(cluster, nowIso());
          if (next) {
            await store.txn().update('cluster', next, cluster).commit();
            lastPending = '';
            log.info('root CA rotation finished: the new root is the swarm\'s only root, join tokens name it');
          }
        }
      } while (again && !stopped);
    } catch (err) {
      // A conflicting write (the cluster changed meanwhile) is looked at again on its event.
      log.warn({ err: (err as Error).message }, 'root CA rotation check failed; tried again on the next change');
    } finally {
      busy = false;
    }
  };

  const unsubscribe = store.subscribe((events) => {
    if (events.some((e) => e.kind === 'cluster' || e.kind === 'nodes')) void check();
  });
  void check();
  return { stop: () => { stopped = true; unsubscribe(); } };
}
