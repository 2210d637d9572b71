// `node dist/bench/swarm-init.js`: how long `docker swarm init` takes on a
// fresh Shoal daemon (its answer now waits for the node's agent to register
// with the dispatcher), and whether a `docker node update` sent right after
// it is taken (before the wait, the registration's own write could refuse it
// "update out of sequence"). Each run starts its own daemon as the test
// harness does (own temp dir, socket, etcd ports, the host's dockerd).
//
//   node dist/bench/swarm-init.js [--runs 5] [--json FILE]
import { parseArgs } from 'node:util';
import { startShoal } from '../test/helpers/daemon';
import { finishBench, installSignalCleanup, median, onCleanup, positiveOption, runBenchMain } from './util';

const say = (s: string) => process.stderr.write(`[swarm-init] ${s}\n`);

interface Run { initMs: number; updateTaken: boolean; updateError?: string }

async function oneRun(i: number): Promise<Run> {
  const hostname = `init-bench-${i}`;
  const h = await startShoal({ hostname });
  const forget = onCleanup(`daemon ${i}`, () => h.cleanup());
  try {
    const t0 = process.hrtime.bigint();
    const init = await h.docker(['swarm', 'init', '--advertise-addr', '127.0.0.1'], { timeoutMs: 60_000 });
    const initMs = Number(process.hrtime.bigint() - t0) / 1e6;
    if (init.code !== 0) throw new Error(`swarm init: ${init.stderr.trim()}`);
    const update = await h.docker(['node', 'update', '--availability', 'drain', hostname], { timeoutMs: 30_000 });
    return { initMs, updateTaken: update.code === 0, ...(update.code === 0 ? {} : { updateError: update.stderr.trim() }) };
  } finally {
    forget();
    await h.cleanup();
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { runs: { type: 'string' }, json: { type: 'string' } } });
  const runs = Math.round(positiveOption(values.runs, 5, 'runs'));
  installSignalCleanup();
  const rows: Run[] = [];
  for (let i = 0; i < runs; i++) {
    rows.push(await oneRun(i));
    const r = rows.at(-1)!;
    say(`run ${i + 1}: init ${r.initMs.toFixed(0)} ms, node update right after: ${r.updateTaken ? 'taken' : `refused (${r.updateError})`}`);
  }
  const ms = rows.map((r) => r.initMs);
  const report = `swarm init over ${runs} fresh daemons: median ${median(ms).toFixed(0)} ms (${Math.min(...ms).toFixed(0)}-${Math.max(...ms).toFixed(0)}); node update right after taken ${rows.filter((r) => r.updateTaken).length} of ${runs}`;
  const shoal = { runs: rows, ...(rows.some((r) => !r.updateTaken) ? { error: 'a node update right after init was refused' } : {}) };
  return finishBench(report, values.json, { options: { runs }, shoal });
}

runBenchMain(main);
