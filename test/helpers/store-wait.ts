import type { Store } from '../../src/store/store';

// Waits for `cond` over the store, re-checked on every store event and every
// few ms (for timer-driven changes), failing after a deadline.
export async function untilStore(store: Store, cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  if (cond()) return;
  await new Promise<void>((resolve, reject) => {
    const check = (): void => { if (cond()) { done(); resolve(); } };
    const unsubscribe = store.subscribe(check);
    const poll = setInterval(check, 5);
    const timer = setTimeout(() => { done(); reject(new Error(`timed out waiting for ${what}`)); }, timeoutMs);
    function done(): void { unsubscribe(); clearInterval(poll); clearTimeout(timer); }
  });
}
