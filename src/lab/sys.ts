// Running commands and looking at processes, each bounded in time.
import { readdirSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { run } from '../common/run';

export { run, type RunResult } from '../common/run';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));


export async function must(cmd: string, args: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.code}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

// Polls until check() is truthy; throws with `what` at the deadline. Errors from check count as "not yet".
export async function until<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs: number, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) { last = (err as Error).message; }
    if (Date.now() >= deadline) throw new Error(`${what}: not within ${Math.round(timeoutMs / 1000)} s${last ? ` (${last})` : ''}`);
    await sleep(everyMs);
  }
}

export function alive(pid: number | undefined): boolean {
  if (!pid) return false;
  try { process.kill(pid, 0); } catch { return false; }
  try { return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8')); } catch { return false; }
}

export function cmdline(pid: number): string {
  try { return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim(); } catch { return ''; }
}

export function allPids(): number[] {
  return readdirSync('/proc').filter((e) => /^\d+$/.test(e)).map(Number);
}

export function killPid(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try { process.kill(pid, signal); } catch { /* already gone */ }
}

// GET path on a unix socket: the status, or 0 when nothing answers in time.
export function getStatus(socketPath: string, path: string, timeoutMs = 2_000): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path, headers: { Host: 'docker' } }, (res) => { res.resume(); resolve(res.statusCode ?? 0); });
    req.setTimeout(timeoutMs, () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(0));
    req.end();
  });
}
