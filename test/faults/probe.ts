// The failover probe: while a fault hits the leader's host, one more client
// writes through the other managers only, one write at a time, until one is
// acknowledged. The clients pick managers at random and wait on the one they
// picked (a paused daemon holds its requests until it resumes): in a round
// where all of them waited on the faulted host, the history held no write
// that could show the swarm working again, and the failover figure was the
// fault's length (5.6 s for a 5.5 s pause). The probe's writes are configs of
// names of its own, recorded like every other write, so the checker proves
// them too.
import { CREATE_LABEL, type Entry } from './history';
import { answerOf, call } from './http';
import { setTimeout as sleep } from 'node:timers/promises';

// Each attempt's bound, the pause after a failed one, and the probe's own bound.
const PROBE_REQUEST_MS = 2_000;
const PROBE_PAUSE_MS = 50;
const PROBE_MS = 30_000;

export interface ProbeOptions {
  managers: { host: string; socket: string }[];
  avoid: string;              // the faulted host
  round: number;
  record: (e: Entry) => void;
  now: () => number;
}

export async function probeFailover(o: ProbeOptions): Promise<void> {
  const others = o.managers.filter((m) => m.host !== o.avoid);
  if (others.length === 0) return;
  const deadline = o.now() + PROBE_MS;
  for (let n = 1; o.now() < deadline; n++) {
    const m = others[(n - 1) % others.length]!;
    const id = `p${o.round}-${n}`;
    const name = `probe-${o.round}-${n}`;
    const start = o.now();
    const r = await call(m.socket, 'POST', '/configs/create', { Name: name, Labels: { [CREATE_LABEL]: id }, Data: Buffer.from(`${id}\n`).toString('base64') }, PROBE_REQUEST_MS);
    const e: Entry = { id, client: 0, op: 'create', kind: 'config', name, manager: m.host, start, end: o.now(), ...answerOf(r, true) };
    o.record(e);
    if (e.outcome === 'ok') return;
    await sleep(PROBE_PAUSE_MS);
  }
}
