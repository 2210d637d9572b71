import { invalid } from '../errors';

// moby's timetypes.GetTimestamp as the prune filters (`until`) read it: a Go
// duration before now ("24h", "1h30m"), Unix seconds ("1700000000.5"), or a
// date/time (RFC 3339 and its shorter forms). Milliseconds since the epoch.
const UNIT_NS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1e3, m: 60e3, h: 3600e3 };
const DURATION = /^(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$/;

export function parseGoTimestamp(value: string, nowMs: number): number {
  if (DURATION.test(value)) {
    let ms = 0;
    for (const m of value.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) ms += Number(m[1]) * UNIT_NS[m[2]!]!;
    return nowMs - ms;
  }
  if (/^\d+(?:\.\d+)?$/.test(value)) return Number(value) * 1000;
  const t = Date.parse(value);
  if (!Number.isNaN(t)) return t;
  throw invalid(`failed to parse value as time or duration: ${JSON.stringify(value)}`);
}
