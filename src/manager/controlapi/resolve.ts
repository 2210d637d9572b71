import { invalid, notFound } from '../../common/errors';

// moby's cluster helpers: full ID, then exact name, then unique ID prefix.
export function resolveObject<T extends { ID: string }>(
  what: string,
  ref: string,
  all: Iterable<T>,
  nameOf: (o: T) => string | undefined,
  byId?: (id: string) => T | undefined,
): T {
  const direct = byId?.(ref);
  if (direct) return direct;
  const list = [...all];
  if (!byId) { const exact = list.find((o) => o.ID === ref); if (exact) return exact; }
  const named = list.filter((o) => nameOf(o) === ref);
  if (named.length === 1) return named[0]!;
  if (named.length > 1) throw invalid(`${what} ${ref} is ambiguous (${named.length} matches found)`);
  if (ref) {
    const prefixed = list.filter((o) => o.ID.startsWith(ref));
    if (prefixed.length === 1) return prefixed[0]!;
    if (prefixed.length > 1) throw invalid(`${what} ${ref} is ambiguous (${prefixed.length} matches found)`);
  }
  throw notFound(`${what} ${ref} not found`);
}
