// Failover times from a fault test's saved history (`npm run faults` writes
// /tmp/shoal-faults-<seed>.json, or --out FILE): for each fault that hit the
// leader's host, the time from the fault to the end of the first acknowledged
// write sent after it; median and worst per fault kind and overall; after a
// quorum loss, the time from the heal to the first acknowledged write; and the
// count of unknown outcomes.
//
//   node dist/bench/faults.js FILE...
import { readFileSync } from 'node:fs';
import { failover, quorumRecovery, type FaultMark } from '../test/faults/checker';
import type { Entry } from '../test/faults/history';

const files = process.argv.slice(2);
if (files.length === 0) { console.error('usage: node dist/bench/faults.js FILE... (saved by npm run faults)'); process.exit(2); }
const runs = files.map((f) => JSON.parse(readFileSync(f, 'utf8')) as { seed: number; rounds: number; history: Entry[]; faults: FaultMark[] });
const fmt = (ms: number | undefined): string => (ms === undefined ? '-' : `${(ms / 1000).toFixed(2)} s`);
console.log('| fault on the leader\'s host | samples | median | worst |');
console.log('|---|---|---|---|');
const kinds = [...new Set(runs.flatMap((r) => r.faults.map((f) => f.kind)))].sort();
for (const k of [...kinds, 'all']) {
  const samples = runs.flatMap((r) => failover(r.history, r.faults.filter((f) => k === 'all' || f.kind === k)).samples).sort((a, b) => a - b);
  if (samples.length === 0) { console.log(`| ${k} | 0 | - | - |`); continue; }
  console.log(`| ${k} | ${samples.length} | ${fmt(samples[Math.floor((samples.length - 1) / 2)])} | ${fmt(samples[samples.length - 1])} |`);
}
const quorum = runs.flatMap((r) => quorumRecovery(r.history, r.faults)).sort((a, b) => a - b);
console.log(`| after a quorum loss (from the heal) | ${quorum.length} | ${fmt(quorum[Math.floor((quorum.length - 1) / 2)])} | ${fmt(quorum[quorum.length - 1])} |`);
const writes = runs.reduce((s, r) => s + r.history.length, 0);
const unknown = runs.reduce((s, r) => s + r.history.filter((e) => e.outcome === 'unknown').length, 0);
console.log(`\n${runs.map((r) => `seed ${r.seed} (${r.rounds} rounds)`).join(', ')}: ${writes} writes, ${unknown} unknown outcomes`);
