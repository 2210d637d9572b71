// Figures read from a daemon's own log (pino JSON lines) between two
// times: the bench counts what the daemons say they did (bench/scale.ts).
// Pure: log text in, lines out; anything that is not such a line is skipped.

export interface Compaction { at: string; oldSpaceMB: [number, number]; ms: number }

// The lines with message `msg` logged from `fromMs` to `toMs` (ms since the epoch).
export function linesIn(logText: string, msg: string, fromMs: number, toMs: number): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const line of logText.split('\n')) {
    if (!line.includes(msg)) continue;
    let v: unknown;
    try { v = JSON.parse(line); } catch { continue; }
    if (typeof v !== 'object' || v === null) continue;
    const r = v as Record<string, unknown>;
    const at = typeof r.time === 'string' ? Date.parse(r.time) : NaN;
    if (r.msg === msg && at >= fromMs && at <= toMs) out.push(r);
  }
  return out;
}

// The heap compactions (src/daemon/heap-compaction.ts) in that span.
export function compactionsIn(logText: string, fromMs: number, toMs: number): Compaction[] {
  const out: Compaction[] = [];
  for (const r of linesIn(logText, 'heap compacted while quiet', fromMs, toMs)) {
    const old = r.oldSpaceMB;
    if (!Array.isArray(old) || old.length !== 2 || !old.every((x) => typeof x === 'number') || typeof r.ms !== 'number') continue;
    out.push({ at: r.time as string, oldSpaceMB: old as [number, number], ms: r.ms });
  }
  return out;
}
