// Docker prints timestamps as RFC 3339 with nanoseconds; JS has milliseconds.
export function nowIso(ms: number = Date.now()): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000000Z');
}

export function parseIsoMs(s: string | undefined): number {
  if (!s) return 0;
  const t = Date.parse(s);
  return Number.isNaN(t) ? 0 : t;
}

export const SECOND_NS = 1_000_000_000;
export const nsToMs = (ns: number | undefined): number => Math.floor((ns ?? 0) / 1_000_000);
