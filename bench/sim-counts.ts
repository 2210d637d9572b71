import { openSync, readSync, closeSync, statSync } from 'node:fs';
import { sleep } from './util';

// What the simulated nodes' sessions delivered, read from `shoal sim` itself:
// SIGUSR2 makes each simulator print its counts at once, with `asked` (how
// many times it was asked), to its log. The bench reads them right before and
// right after a create: how many session messages carried its tasks.

export interface SimCounts { messages: number; tasks: number }
export interface SimProc { pid: number; log: string }

// The counts in the first progress line answering ask number `asked`, in
// `text` (a simulator's log from some offset on); undefined while none.
export function countsAnswering(text: string, asked: number): SimCounts | undefined {
  for (const line of text.split('\n')) {
    if (!line.includes('"asked"')) continue;
    let v: unknown;
    try { v = JSON.parse(line); } catch { continue; }
    const r = v as { asked?: unknown; sessionMessages?: unknown; tasksInMessages?: unknown };
    if (r.asked !== asked || typeof r.sessionMessages !== 'number' || typeof r.tasksInMessages !== 'number') continue;
    return { messages: r.sessionMessages, tasks: r.tasksInMessages };
  }
  return undefined;
}

function readFrom(file: string, offset: number): string {
  const size = statSync(file).size;
  if (size <= offset) return '';
  const buf = Buffer.alloc(size - offset);
  const fd = openSync(file, 'r');
  try { readSync(fd, buf, 0, buf.length, offset); } finally { closeSync(fd); }
  return buf.toString('utf8');
}

// Asks every simulator (in parallel) and sums their answers; throws naming a
// simulator that did not answer within `timeoutMs`.
export class SimCounter {
  private readonly asked = new Map<number, number>();

  async read(sims: readonly SimProc[], timeoutMs = 30_000): Promise<SimCounts> {
    const each = await Promise.all(sims.map(async (s) => {
      const n = (this.asked.get(s.pid) ?? 0) + 1;
      this.asked.set(s.pid, n);
      const offset = statSync(s.log).size;
      process.kill(s.pid, 'SIGUSR2');
      const until = Date.now() + timeoutMs;
      for (;;) {
        const got = countsAnswering(readFrom(s.log, offset), n);
        if (got) return got;
        if (Date.now() > until) throw new Error(`simulator ${s.pid} printed no counts within ${timeoutMs} ms (${s.log})`);
        await sleep(200);
      }
    }));
    return each.reduce((a, b) => ({ messages: a.messages + b.messages, tasks: a.tasks + b.tasks }), { messages: 0, tasks: 0 });
  }
}
