// Running commands and looking at processes, each bounded in time.
import { request } from 'node:http';
import { run } from '../common/run';

export { run, type RunResult } from '../common/run';
export { alive, allPids, cmdline, killPid } from '../common/proc';

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

// GET path on a unix socket: the status, or 0 when nothing answers in time.
export function getStatus(socketPath: string, path: string, timeoutMs = 2_000): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path, headers: { Host: 'docker' } }, (res) => { res.resume(); resolve(res.statusCode ?? 0); });
    req.setTimeout(timeoutMs, () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(0));
    req.end();
  });
}
