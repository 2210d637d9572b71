// Runs `fn` on each item with at most `limit` calls in flight, started in the
// items' order. An item for which `alone` says so waits until every call
// before it has ended, and the calls after it wait for it (an order that
// matters). The first failure stops new calls; it is thrown once those in
// flight have ended.
export async function eachConcurrently<T>(items: Iterable<T>, limit: number, fn: (item: T) => Promise<void>, alone?: (item: T) => boolean): Promise<void> {
  const inFlight = new Set<Promise<void>>();
  let failure: { err: unknown } | undefined;
  const settle = (): Promise<void> => Promise.all(inFlight).then(() => undefined);
  for (const item of items) {
    if (failure) break;
    const single = alone?.(item) === true;
    if (single) await settle();
    while (inFlight.size >= Math.max(1, limit)) await Promise.race(inFlight);
    if (failure) break;
    const call: Promise<void> = fn(item).catch((err: unknown) => { failure ??= { err }; })
      .finally(() => { inFlight.delete(call); });
    inFlight.add(call);
    if (single) await settle();
  }
  await settle();
  if (failure) throw failure.err;
}
