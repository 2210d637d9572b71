import { mayForward, networksOfAsker, type DnsRecords } from './records';

// What to do with one question from one asking address (pure: the records of
// the current view in, a decision out; `rand` only orders equal answers).

export interface DnsQuestion { name: string; type: string; class?: string }

export type Resolution =
  | { kind: 'a'; addrs: string[] }   // the name is ours: these IPv4 answers
  | { kind: 'ptr'; name: string }    // a reverse look-up of one of our addresses
  | { kind: 'nodata' }               // the name is ours but has nothing of that type (AAAA, MX, ...)
  | { kind: 'forward' }              // not ours: the host's upstream servers answer
  | { kind: 'refuse' };              // not ours, and the asker may not go upstream (internal networks): SERVFAIL

const REVERSE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.in-addr\.arpa$/;

export function normalizeName(name: string): string {
  return (name.endsWith('.') ? name.slice(0, -1) : name).toLowerCase();
}

export function resolve(records: DnsRecords, asker: string, q: DnsQuestion, rand: () => number = Math.random): Resolution {
  const elsewhere: Resolution = mayForward(records, asker) ? { kind: 'forward' } : { kind: 'refuse' };
  if (q.class !== undefined && q.class !== 'IN' && q.class !== 'ANY') return elsewhere;
  const name = normalizeName(q.name);
  if (!name) return elsewhere;
  const networks = networksOfAsker(records, asker);

  const rev = REVERSE.exec(name);
  if (rev) {
    const addr = rev.slice(1, 5).reverse().join('.');
    for (const n of networks) {
      const owner = records.reverse.get(n)?.get(addr);
      if (owner !== undefined) return q.type === 'PTR' || q.type === 'ANY' ? { kind: 'ptr', name: owner } : { kind: 'nodata' };
    }
    return elsewhere;
  }

  let found = false;
  const addrs = new Set<string>();
  for (const n of networks) {
    const r = records.names.get(n)?.get(name);
    if (!r) continue;
    found = true;
    for (const a of r) addrs.add(a);
  }
  if (!found) return elsewhere;
  if ((q.type !== 'A' && q.type !== 'ANY') || addrs.size === 0) return { kind: 'nodata' };
  // Several answers are always shuffled (as Docker does): clients that take
  // the first spread over them.
  const out = [...addrs];
  shuffleInPlace(out, rand);
  return { kind: 'a', addrs: out };
}

function shuffleInPlace<T>(xs: T[], rand: () => number): void {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
}
