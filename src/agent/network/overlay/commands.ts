import { run } from '../../../common/run';

// iproute2 from Node: reads as JSON (`ip -j`, `bridge -j`), writes as one
// batch on stdin (`-force` goes on past a failed line and names each failure
// on stderr, so one bad entry never blocks the others). Every call bounded.

export const COMMAND_TIMEOUT_MS = 15_000;

export class CommandError extends Error {
  constructor(message: string) { super(message); this.name = 'CommandError'; }
}

export async function readJson(cmd: 'ip' | 'bridge', args: string[], timeoutMs = COMMAND_TIMEOUT_MS): Promise<unknown> {
  const r = await run(cmd, ['-j', ...args], { timeoutMs });
  if (r.code !== 0) throw new CommandError(`${cmd} -j ${args.join(' ')}: ${r.stderr.trim() || `exit ${r.code}`}`);
  const text = r.stdout.trim();
  if (!text) return [];
  try { return JSON.parse(text) as unknown; } catch { throw new CommandError(`${cmd} -j ${args.join(' ')}: output is not JSON`); }
}

export interface BatchFailure { line: string; error: string }

// Runs the lines; resolves with the lines that failed (with iproute2's message).
export async function runBatch(cmd: 'ip' | 'bridge', lines: string[], timeoutMs = COMMAND_TIMEOUT_MS): Promise<BatchFailure[]> {
  if (!lines.length) return [];
  const r = await run(cmd, ['-force', '-batch', '-'], { input: `${lines.join('\n')}\n`, timeoutMs });
  if (r.code === 0) return [];
  return batchFailures(lines, r.stderr, r.code);
}

// iproute2 prints the error, then "Command failed -:N" for line N (from 1).
export function batchFailures(lines: string[], stderr: string, code: number): BatchFailure[] {
  const out: BatchFailure[] = [];
  const text = stderr.split('\n');
  let pending: string[] = [];
  for (const t of text) {
    const m = /^Command failed -:(\d+)$/.exec(t.trim());
    if (!m) { if (t.trim()) pending.push(t.trim()); continue; }
    const line = lines[Number(m[1]) - 1];
    if (line !== undefined) out.push({ line, error: pending.join('; ') || 'failed' });
    pending = [];
  }
  if (!out.length) out.push({ line: lines.join('; '), error: stderr.trim() || `exit ${code}` });
  return out;
}
