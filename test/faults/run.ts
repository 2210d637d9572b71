// `npm run faults -- --rounds N --seed S [--keep] [--cycle] [--minutes M]`: the fault test
// on a five-host `shoal lab` (3 managers, 2 workers; SHOAL_LAB_INDEX, default
// 30). Clients write through random managers while the nemesis hurts one host
// or process per round; then everything is healed, the cluster must settle,
// and the checker reads the history and every manager's final state.
// --cycle runs the fault kinds in turn (the CI's short form); --keep leaves
// the lab up; --minutes M starts no round after M minutes (the final line
// then counts the rounds that ran); --kinds a,b picks each round's fault from
// those kinds only. `npm run faults:broken` (broken.ts) runs
// it on a deliberately broken build: the checker must catch it.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseHostLines, runLab } from '../helpers/lab';
import { check, failover, quorumAnomalies, quorumRecovery, type FaultMark } from './checker';
import { runClient } from './clients';
import { probeFailover } from './probe';
import { type Anomaly, type AnomalyKind, type Entry, type FinalState } from './history';
import { daemonPid, finalState, healthy, hostDir, lab, labState, pings, restartDaemon, shoalSocket, unhealthy, type FaultLab } from './lab';
import { linesNaming, storeLines } from './host-logs';
import { FAULTS, planRound, runRound, type FaultKind } from './nemesis';
import { rng } from './prng';

const ROUND_RECOVER_MS = 120_000;
const SETTLE_MS = 240_000;
const CONVERGENCE: AnomalyKind[] = ['not-converged', 'orphan-container', 'task-on-down-node', 'managers-disagree', 'manager-unreadable'];

const t0 = performance.now();
const say = (s: string): void => { console.log(`[${((performance.now() - t0) / 1000).toFixed(1).padStart(6)}s] ${s}`); };

async function until(what: string, fn: () => Promise<boolean>, timeoutMs: number, everyMs = 1_000): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await fn()) return true;
    if (performance.now() > deadline) { say(`${what}: not within ${timeoutMs / 1000} s`); return false; }
    await sleep(everyMs);
  }
}

function tailOf(file: string, lines = 15): string {
  try { return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).map((x) => `    ${x.slice(0, 400)}`).join('\n'); } catch { return '    (no log)'; }
}

// How often a manager's log says its election lease failed (why a manager flaps Reachable/Unreachable).
function leaseNotes(file: string): string {
  let text = '';
  try { text = readFileSync(file, 'utf8'); } catch { return '(no log)'; }
  const count = (re: RegExp): number => (text.match(re) ?? []).length;
  return `lost ${count(/manager lease lost/g)}, late ${count(/too late to count/g)}, stepped down ${count(/no longer the leader/g)}`;
}

function describe(a: Anomaly): string {
  return `ANOMALY ${a.kind}: ${a.objects.join(' ')}${a.requests.length ? ` [requests ${a.requests.join(' ')}]` : ''}\n    ${a.detail}`;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { rounds: { type: 'string' }, seed: { type: 'string' }, keep: { type: 'boolean' }, cycle: { type: 'boolean' }, clients: { type: 'string' }, out: { type: 'string' }, minutes: { type: 'string' }, kinds: { type: 'string' } },
    strict: true,
  });
  const rounds = Number(values.rounds ?? '20');
  const seed = values.seed !== undefined ? Number(values.seed) : Math.floor(Math.random() * 2 ** 31);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds wants a whole number >= 1, got "${values.rounds}"`);
  if (!Number.isInteger(seed) || seed < 0) throw new Error(`--seed wants a whole number >= 0, got "${values.seed}"`);
  // --minutes: no round starts after that long (the lab's start counts); the run then settles and checks what ran.
  const minutes = values.minutes !== undefined ? Number(values.minutes) : undefined;
  if (minutes !== undefined && !(minutes > 0)) throw new Error(`--minutes wants a number > 0, got "${values.minutes}"`);
  const kinds = values.kinds !== undefined ? values.kinds.split(',') as FaultKind[] : [...FAULTS];
  const unknownKind = kinds.find((k) => !FAULTS.includes(k));
  if (unknownKind !== undefined || kinds.length === 0) throw new Error(`--kinds wants some of ${FAULTS.join(',')}, got "${values.kinds}"`);
  const index = process.env.SHOAL_LAB_INDEX || '30';
  const r = rng(seed);
  const clients = values.clients !== undefined ? Number(values.clients) : r.int(2, 4);
  if (!Number.isInteger(clients) || clients < 1 || clients > 8) throw new Error(`--clients wants 1..8, got "${values.clients}"`);
  // Every option that changes what the run does, so the line replays it (the CI test passes --clients).
  const replay = `npm run faults -- --rounds ${rounds} --seed ${seed}${values.cycle ? ' --cycle' : ''}${values.clients !== undefined ? ` --clients ${clients}` : ''}${values.kinds !== undefined ? ` --kinds ${kinds.join(',')}` : ''}`;
  say(`seed ${seed}, ${rounds} rounds, ${clients} clients, lab index ${index} (replay: ${replay})`);

  await runLab(index, ['down']);
  const up = await runLab(index, ['up', '--hosts', '5', '--managers', '3', '--workers', '2'], 600_000);
  if (up.code !== 0) throw new Error(`lab up: ${up.stderr.trim()}`);
  const lines = parseHostLines(up.stdout).filter((h) => /^host\d+$/.test(h.name));
  const l: FaultLab = {
    index, dir: `/var/lib/shoal-lab${index}`,
    hosts: lines.map((h) => h.name),
    managers: lines.filter((h) => h.role === 'manager').map((h) => h.name),
    workers: lines.filter((h) => h.role === 'worker').map((h) => h.name),
  };
  if (l.managers.length !== 3 || l.workers.length !== 2) throw new Error(`lab up: expected 3 managers and 2 workers, got ${up.stdout}`);
  say(`lab up: managers ${l.managers.join(' ')}, workers ${l.workers.join(' ')}`);

  let ran = 0;
  const history: Entry[] = [];
  const marks: FaultMark[] = [];
  const extra: Anomaly[] = [];
  let stop = false;
  try {
    const managers = l.managers.map((h) => ({ host: h, socket: shoalSocket(l, h) }));
    const running = Array.from({ length: clients }, (_, i) => runClient({
      client: i + 1, rng: rng((seed ^ (0x9e3779b9 * (i + 1))) >>> 0),
      managers,
      record: (e) => { history.push(e); }, stopped: () => stop, now: () => performance.now() - t0,
    }));
    const clientsDone = Promise.all(running);
    try {
      for (let i = 1; i <= rounds; i++) {
        if (minutes !== undefined && performance.now() - t0 > minutes * 60_000) { say(`time bound (${minutes} min) reached: ${ran} of ${rounds} rounds ran`); break; }
        ran = i;
        const round = planRound(r, l, i, values.cycle ? kinds[(i - 1) % kinds.length] : kinds.length === FAULTS.length ? undefined : r.pick(kinds));
        let probe: Promise<void> | undefined;
        try {
          const mark = await runRound(l, round, say, () => {
            probe = probeFailover({ managers, avoid: round.target, round: i, record: (e) => { history.push(e); }, now: () => performance.now() - t0 });
          });
          marks.push({ ...mark, at: mark.at - t0, ...(mark.inPlace !== undefined ? { inPlace: mark.inPlace - t0 } : {}), ...(mark.quorumLost ? { quorumLost: { from: mark.quorumLost.from - t0, to: mark.quorumLost.to - t0 } } : {}) });
        } catch (err) {
          // A heal that did not work is a finding, not the end of the run: say why, power-cycle the host.
          const log = tailOf(join(hostDir(l, round.target), 'shoal.log'));
          say(`round ${i}: ${(err as Error).message}; last lines of ${round.target}'s shoal.log:\n${log}`);
          extra.push({ kind: 'not-recovered', objects: [`host/${round.target}`], requests: [], detail: `round ${i} (${round.kind} ${round.target}): ${(err as Error).message}` });
          for (const h of [round.target, ...(round.second ? [round.second] : [])]) await lab(l, ['start', h]).catch((e: Error) => say(`lab start ${h}: ${e.message}`));
        }
        await probe;
        let issue: string | undefined;
        const ok = await until(`round ${i}: cluster healthy after the heal`, async () => (issue = await unhealthy(l)) === undefined, ROUND_RECOVER_MS);
        if (!ok) {
          say(`round ${i}: still ${issue}; leases per manager: ${l.managers.map((h) => `${h} ${leaseNotes(join(hostDir(l, h), 'shoal.log'))}`).join('; ')}`);
          extra.push({ kind: 'not-recovered', objects: [`host/${round.target}`], requests: [], detail: `round ${i} (${round.kind} ${round.target}): not every node Ready and every manager reachable ${ROUND_RECOVER_MS / 1000} s after the heal (last: ${issue})` });
        }
      }
    } finally {
      stop = true;
      await clientsDone;
    }
    say(`clients stopped: ${history.length} writes recorded`);

    // Heal everything (each round healed its own; this is the safety net), then settle.
    const cut = labState(l);
    for (const h of l.hosts) {
      if (cut.partitioned.has(h)) await lab(l, ['heal', h]);
      if (cut.off.has(h)) await lab(l, ['start', h]);
      if (!daemonPid(l, h)) await restartDaemon(l, h);
      if (!(await pings(l, h))) await lab(l, ['start', h]);
    }
    let final: FinalState | undefined;
    let waiting = 'the nodes';
    const settleFrom = performance.now();
    const settled = await until('every node Ready and every service converged', async () => {
      if (!(await healthy(l))) { waiting = 'the nodes'; return false; }
      final = await finalState(l);
      const left = check(history, final).filter((a) => CONVERGENCE.includes(a.kind));
      waiting = left.map((a) => `${a.kind} ${a.objects.join(' ')}`).join('; ');
      return left.length === 0;
    }, SETTLE_MS, 2_000);
    say(settled ? `settled in ${((performance.now() - settleFrom) / 1000).toFixed(1)} s` : `not settled; still waiting for: ${waiting}`);
    say(`election leases per manager over the run: ${l.managers.map((h) => `${h} ${leaseNotes(join(hostDir(l, h), 'shoal.log'))}`).join('; ')}`);
    // A mirror the audit had to reload healed, but a change was lost on its way from etcd: worth knowing of.
    let repaired = 0;
    for (const h of l.managers) {
      const repairs = mirrorRepairs(join(hostDir(l, h), 'shoal.log'));
      repaired += repairs.length;
      if (repairs.length) say(`${h}: its store mirror disagreed with etcd ${repairs.length} time(s) and was reloaded:\n${repairs.map((x) => `    ${x.slice(0, 400)}`).join('\n')}`);
    }
    // The settled reading (managers agreed on it); reading again could catch a write in flight on one manager only.
    if (!settled || final === undefined) final = await finalState(l);

    const anomalies = [...extra, ...quorumAnomalies(history, marks), ...check(history, final)];
    const out = values.out ?? `/tmp/shoal-faults-${seed}.json`;
    writeFileSync(out, JSON.stringify({ seed, rounds: ran, clients, faults: marks, history, final, anomalies }, null, 1));

    const count = (o: string): number => history.filter((e) => e.outcome === o).length;
    const f = failover(history, marks);
    console.log(`history: ${history.length} writes (${count('ok')} ok, ${count('fail')} failed, ${count('unknown')} unknown); final: ${final.managers[0]?.services.length ?? 0} services, ${final.managers[0]?.secrets.length ?? 0} secrets, ${final.managers[0]?.configs.length ?? 0} configs, ${final.containers.filter((c) => c.running).length} running task containers; saved in ${out}`);
    console.log(`faults: ${FAULTS.map((k) => `${k} ${marks.filter((m) => m.kind === k).length}`).join(', ')}; on the leader's host: ${marks.filter((m) => m.hitLeader).length}`);
    console.log(`failover (fault on the leader's host in place -> first acknowledged write sent after it, the probe's through the other managers included): ${f.samples.length ? `median ${Math.round(f.median!)} ms, worst ${Math.round(f.worst!)} ms over ${f.samples.length}` : 'no sample'}; unknown outcomes: ${f.unknowns}`);
    const q = quorumRecovery(history, marks).sort((x, y) => x - y);
    if (q.length) console.log(`after a quorum loss (heal -> first acknowledged write sent after it): median ${Math.round(q[Math.floor((q.length - 1) / 2)]!)} ms, worst ${Math.round(q[q.length - 1]!)} ms over ${q.length}`);
    for (const a of anomalies) console.log(describe(a));
    if (ran < rounds) console.log(`time bound: ${ran} of the ${rounds} rounds asked for ran in ${minutes} min`);
    // The lab goes at the end (unless --keep), and a replay of the seed may not fail again.
    const logs = out.replace(/\.json$/, '') + '-logs';
    if (anomalies.length || repaired) { keepLogs(l, logs); console.log(`each host's shoal.log and etcd.log kept in ${logs}`); }
    if (anomalies.length === 0) { console.log(`${ran} rounds, 0 anomalies`); return 0; }
    // CI keeps only its output: each manager's store and etcd-supervisor lines say how its mirror followed etcd.
    const hostLogs = new Map(l.hosts.flatMap((h): Array<[string, string]> => { const text = readLog(join(hostDir(l, h), 'shoal.log')); return text === undefined ? [] : [[h, text]]; }));
    for (const h of l.managers) { const text = hostLogs.get(h); console.log(`${h}'s store and etcd lines (last 40):\n${text === undefined ? '    (no log)' : storeLines(text)}`); }
    // And what every host logged about the objects an anomaly names (a task, a container): why it is where it is.
    for (const a of anomalies) {
      const ids = a.objects.map((o) => o.slice(o.lastIndexOf('/') + 1)).filter((id) => id.length >= 12);
      if (ids.length) console.log(`lines naming ${ids.join(', ')} (last 30):\n${linesNaming([...hostLogs], ids)}`);
    }
    // The same seed plans the same rounds: replaying the ones that ran needs no time bound.
    console.log(`${ran} rounds, ${anomalies.length} anomalies (seed ${seed}: ${ran < rounds ? replay.replace(`--rounds ${rounds}`, `--rounds ${ran}`) : replay})`);
    return 1;
  } finally {
    if (!values.keep) await runLab(index, ['down']);
    else say(`lab ${index} kept up (SHOAL_LAB_INDEX=${index} shoal lab down removes it)`);
  }
}

function mirrorRepairs(file: string): string[] {
  return (readLog(file) ?? '').split('\n').filter((x) => x.includes('store mirror disagrees with etcd'));
}

// A host's log, or undefined if it has none (a host never started).
function readLog(file: string): string | undefined {
  try { return readFileSync(file, 'utf8'); } catch { return undefined; }
}

// Each host's daemon log and its etcd's (managers), copied for a run with anomalies or mirror reloads.
function keepLogs(l: FaultLab, dir: string): void {
  mkdirSync(dir, { recursive: true });
  for (const h of l.hosts) {
    for (const [from, to] of [[['shoal.log'], `${h}.log`], [['shoal', 'etcd.log'], `${h}-etcd.log`]] as const) {
      try { copyFileSync(join(hostDir(l, h), ...from), join(dir, to)); } catch { /* a host without one (a worker has no etcd) */ }
    }
  }
}

main().then((code) => { process.exitCode = code; }, (err) => { console.error(`faults: ${(err as Error).stack ?? err}`); process.exitCode = 2; });
