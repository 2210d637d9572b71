import { invalid } from './errors';
import { bool, decodeGo, map, slice, str } from './go/go-json';

// Docker's filter argument (moby filters.FromJSON): {"key":{"value":true}},
// what the CLI sends, where every value named counts whatever its boolean; or
// the legacy {"key":["value"]}. A body of neither form is refused with the
// first form's decoding error, an unknown key with "Invalid filter 'key'"
// (unless any key is allowed, as on /events). Text that is no JSON is a 400:
// dockerd 20.10 answers 500 with Go's decoder error, but the fault is the
// client's, and Shoal answers it alike on every route.
export type Filters = Map<string, string[]>;

const CURRENT_FORM = map(map(bool));
const LEGACY_FORM = map(slice(str()));

export function parseFilters(raw: string | null, allowed: readonly string[] | 'any'): Filters {
  const out: Filters = new Map();
  if (!raw) return out;
  let parsed: unknown;
  try { parsed = JSON.parse(raw); } catch { throw invalid(`invalid filter: ${raw}`); }
  let fields: Record<string, string[] | null>;
  try {
    const current = decodeGo<Record<string, Record<string, boolean> | null> | null>(parsed, CURRENT_FORM) ?? {};
    fields = Object.fromEntries(Object.entries(current).map(([k, v]) => [k, Object.keys(v ?? {})]));
  } catch (first) {
    try { fields = decodeGo<Record<string, string[] | null> | null>(parsed, LEGACY_FORM) ?? {}; } catch { throw first; }
  }
  for (const [key, values] of Object.entries(fields)) {
    if (allowed !== 'any' && !allowed.includes(key)) throw invalid(`Invalid filter '${key}'`);
    out.set(key, values ?? []);
  }
  return out;
}

// label filters: every "key" or "key=value" must match (AND).
export function matchLabels(labels: Record<string, string> | undefined, wanted: string[] | undefined): boolean {
  if (!wanted || wanted.length === 0) return true;
  const l = labels ?? {};
  return wanted.every((w) => {
    const eq = w.indexOf('=');
    if (eq < 0) return Object.prototype.hasOwnProperty.call(l, w);
    return l[w.slice(0, eq)] === w.slice(eq + 1);
  });
}

// Any of the values matches (OR), as dockerd's filters.ExactMatch / prefix match.
export function matchAny(values: string[] | undefined, test: (v: string) => boolean): boolean {
  if (!values || values.length === 0) return true;
  return values.some(test);
}
