import { invalid } from '../common/errors';

// Docker's filter argument: {"key":{"value":true}} (what the CLI sends) or
// the legacy {"key":["value"]}. Unknown keys are refused like dockerd does.
export type Filters = Map<string, string[]>;

export function parseFilters(raw: string | null, allowed: readonly string[]): Filters {
  const out: Filters = new Map();
  if (!raw) return out;
  let parsed: unknown;
  try { parsed = JSON.parse(raw); } catch { throw invalid(`invalid filter: ${raw}`); }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw invalid(`invalid filter: ${raw}`);
  for (const [key, val] of Object.entries(parsed as Record<string, unknown>)) {
    if (!allowed.includes(key)) throw invalid(`Invalid filter '${key}'`);
    let values: string[];
    if (Array.isArray(val)) values = val.map(String);
    else if (val && typeof val === 'object') values = Object.entries(val as Record<string, unknown>).filter(([, on]) => on).map(([v]) => v);
    else throw invalid(`invalid filter: ${raw}`);
    out.set(key, values);
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
