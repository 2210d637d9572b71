// Docker prints timestamps as RFC 3339 with nanoseconds; JS has milliseconds.
// The last answer is kept: a pass stamps thousands of tasks with one time.
let lastMs = Number.NaN;
let lastIso = '';
export function nowIso(ms: number = Date.now()): string {
  if (ms === lastMs) return lastIso;
  lastIso = new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000000Z');
  lastMs = ms;
  return lastIso;
}

export function parseIsoMs(s: string | undefined): number {
  if (!s) return 0;
  const t = Date.parse(s);
  return Number.isNaN(t) ? 0 : t;
}

export const SECOND_NS = 1_000_000_000;
export const nsToMs = (ns: number | undefined): number => Math.floor((ns ?? 0) / 1_000_000);
