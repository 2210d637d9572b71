import { randomBytes } from 'node:crypto';
import { NETWORK_KEY_BYTES } from '../../protocol/network-view';
import type { StoreEvent } from '../../store/objects';
import type { Sealer } from '../ca/ca-key';
import type { LeaderComponentHandle, LeaderComponentOptions } from '../loop/component';
import { DEFAULT_KEY_TIMING, applyKeyStep, decideKeyStep, isEncryptedNetwork, networkKeyAad, type KeyTiming } from './schedule';

// The leader's keeper of the encrypted overlays' data-path keys: on every
// change of the networks or the cluster object, and when the schedule says
// (schedule.ts), it takes one step and writes the cluster object (CAS on the
// version read; a refused write is decided again on the newer object). New
// key material is random and sealed with the data key before it is written.

export interface NetworkKeyOptions extends LeaderComponentOptions {
  sealer: Sealer;
  timing?: KeyTiming;
}

const BATCH_MS = 10;
const RETRY_MS = 1000;
// setTimeout holds at most a signed 32-bit delay.
const MAX_DELAY_MS = 2 ** 31 - 1;

export function startNetworkKeys(opts: NetworkKeyOptions): LeaderComponentHandle {
  const { store, log, sealer } = opts;
  const now = opts.now ?? Date.now;
  const timing = opts.timing ?? DEFAULT_KEY_TIMING;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let again = false;
  let soon = false;     // a pass is due within BATCH_MS (settled() waits for it)
  let stopped = false;

  function schedule(delay: number): void {
    if (stopped) return;
    if (running) { again = true; return; }
    if (timer) clearTimeout(timer);
    soon = delay <= BATCH_MS;
    timer = setTimeout(() => {
      timer = undefined;
      soon = false;
      running = pass().then((wakeAt) => {
        running = undefined;
        if (again) { again = false; schedule(BATCH_MS); } else if (wakeAt !== undefined) schedule(wakeAt - now());
      });
    }, Math.min(Math.max(0, delay), MAX_DELAY_MS));
    timer.unref();
  }

  // Resolves with when to look again (undefined: at the next event).
  async function pass(): Promise<number | undefined> {
    let wakeAt: number | undefined;
    try {
      const cluster = store.first('cluster');
      if (!cluster) return undefined;
      const needed = store.list('networks').some(isEncryptedNetwork);
      let taken: string | undefined;
      await store.mutate('cluster', cluster.ID, (c) => {
        const t = now();
        const d = decideKeyStep(c.NetworkKeys, needed, t, timing);
        wakeAt = d.wakeAt;
        if (!d.step) return undefined;
        let sealed: string | undefined;
        if (d.step.kind === 'create' || d.step.kind === 'add') {
          const key = randomBytes(NETWORK_KEY_BYTES);
          sealed = sealer.seal(key, networkKeyAad(c.ID, d.step.tag));
          key.fill(0);
        }
        c.NetworkKeys = applyKeyStep(c.NetworkKeys, d.step, t, sealed);
        taken = `${d.step.kind} ${d.step.tag}`;
        wakeAt = undefined; // the write's own event asks again
        return c;
      });
      if (taken) log.info({ step: taken }, 'network key set changed');
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'network key step failed; trying again');
      wakeAt = now() + RETRY_MS;
    }
    return wakeAt;
  }

  const unsubscribe = store.subscribe((events: StoreEvent[]) => {
    if (events.some((e) => e.kind === 'networks' || e.kind === 'cluster')) schedule(BATCH_MS);
  });
  schedule(0);

  return {
    stop(): void {
      stopped = true;
      unsubscribe();
      if (timer) clearTimeout(timer);
    },
    async settled(): Promise<void> {
      while (running || soon) await (running ?? new Promise((r) => setTimeout(r, BATCH_MS)));
    },
  };
}
