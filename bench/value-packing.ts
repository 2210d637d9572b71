// How the etcd backend stores values (src/store/value-packing.ts): bytes per
// task as stored, and the time to pack and unpack one, beside the text as it
// was stored before, the same deflate with a new zlib stream a value (as
// before store/reusable-zlib.ts), and with zlib's defaults (a 32 KiB
// window, memLevel 8, a 16 KiB output buffer a call). Pure CPU, no daemon.
// Each malloc setting runs in a process of its own, side by side: the
// daemon's (common/node-flags.ts, blocks of 16 KiB and up mapped on their
// own) and glibc's defaults; zlib's state is such blocks.
// Tasks are made as the managers write them: pending, assigned, and running
// with a container (a third each), fresh IDs and timestamps.
//
//   node dist/bench/value-packing.js [--values 20000] [--runs 5] [--json FILE]
import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { writeFileSync } from 'node:fs';
import { newId } from '../src/common/ids';
import { nowIso } from '../src/common/time';
import { DAEMON_GLIBC_TUNABLES } from '../src/common/node-flags';
import { deflateOneShot, inflateOneShot, packingDictionary, packValue, unpackValue } from '../src/store/value-packing';
import { median, positiveOption, runBenchMain } from './util';

function taskValue(i: number, base: number): string {
  const states = [['pending', 'pending task scheduling'], ['assigned', 'scheduler assigned task to node'], ['running', 'started']] as const;
  const [state, message] = states[i % 3]!;
  const created = nowIso(base + i * 7);
  const updated = nowIso(base + i * 7 + 900 + (i % 50));
  return JSON.stringify({
    ID: newId(), CreatedAt: created, UpdatedAt: updated, Labels: {}, ServiceID: 'x0ix3i5bu8v3kt35v8w0jk3mq', Slot: i + 1,
    ...(state === 'pending' ? {} : { NodeID: newId() }),
    Status: { Timestamp: updated, State: state, Message: message, ...(state === 'running' ? { ContainerStatus: { ContainerID: randomBytes(32).toString('hex'), PID: 1000 + (i % 30000), ExitCode: 0 } } : {}) },
    DesiredState: 'running', SpecRef: randomBytes(20).toString('hex'),
  });
}

// Microseconds a value, over all of them.
function timeEach<T>(values: readonly T[], fn: (v: T) => unknown): number {
  const t0 = process.hrtime.bigint();
  for (const v of values) fn(v);
  return Number(process.hrtime.bigint() - t0) / values.length / 1000;
}

interface Run { plainBytes: number; packedBytes: number; packUs: number; unpackUs: number; oneShotPackUs: number; oneShotUnpackUs: number; defaultChunkPackUs: number; defaultChunkUnpackUs: number }

function oneRun(count: number): Run {
  const texts = Array.from({ length: count }, (_, i) => taskValue(i, Date.now()));
  const packed = texts.map((t) => packValue(t));
  for (let i = 0; i < texts.length; i++) {
    const r = unpackValue(packed[i]!);
    if (!r.ok || r.value !== texts[i]) throw new Error(`value ${i} did not survive packing`);
  }
  // The same dictionary with zlib's default state and buffers.
  const dictionary = packingDictionary();
  const raw = packed.map((p) => p.subarray(2));
  return {
    plainBytes: texts.reduce((n, t) => n + Buffer.byteLength(t), 0) / count,
    packedBytes: packed.reduce((n, p) => n + p.length, 0) / count,
    packUs: timeEach(texts, (t) => packValue(t)),
    unpackUs: timeEach(packed, (p) => unpackValue(p)),
    // As packValue and unpackValue did before they kept their streams
    // (store/reusable-zlib.ts): a new zlib stream a value, the same options.
    oneShotPackUs: timeEach(texts, (t) => deflateOneShot(Buffer.from(t))),
    oneShotUnpackUs: timeEach(raw, (p) => inflateOneShot(p)),
    defaultChunkPackUs: timeEach(texts, (t) => deflateRawSync(t, { dictionary })),
    defaultChunkUnpackUs: timeEach(raw, (p) => inflateRawSync(p, { dictionary }).toString()),
  };
}

// One malloc setting: runs in this process, prints its runs as JSON.
function measure(count: number, runs: number): Run[] {
  oneRun(Math.min(count, 2000)); // warm-up: compiled code, zlib's first allocations
  const all: Run[] = [];
  for (let i = 0; i < runs; i++) all.push(oneRun(count));
  return all;
}

const SETTINGS = [
  { name: `the daemon's (${DAEMON_GLIBC_TUNABLES})`, tunables: DAEMON_GLIBC_TUNABLES },
  { name: "glibc's defaults", tunables: '' },
];

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { values: { type: 'string' }, runs: { type: 'string' }, json: { type: 'string' }, child: { type: 'boolean' } } });
  const count = Math.floor(positiveOption(values.values, 20_000, 'values'));
  const runs = Math.floor(positiveOption(values.runs, 5, 'runs'));
  if (values.child) { process.stdout.write(JSON.stringify(measure(count, runs))); return 0; }
  const bySetting = SETTINGS.map((s) => {
    const env: NodeJS.ProcessEnv = { ...process.env, GLIBC_TUNABLES: s.tunables };
    const out = execFileSync(process.execPath, [process.argv[1]!, '--child', '--values', String(count), '--runs', String(runs)], { env, encoding: 'utf8', timeout: 600_000 });
    return { ...s, runs: JSON.parse(out) as Run[] };
  });
  const m = (all: Run[], k: keyof Run): number => median(all.map((r) => r[k]));
  const [mine, glibc] = bySetting.map((b) => b.runs) as [Run[], Run[]];
  const us = (k: keyof Run): string => `${m(mine, k).toFixed(1)} | ${m(glibc, k).toFixed(1)}`;
  const lines = [
    '# Values as stored in etcd (bench/value-packing.ts)',
    '',
    `${count} task values a run, ${runs} runs, medians; µs under the daemon's malloc setting | under glibc's defaults:`,
    '',
    '| | bytes a task | pack, µs | unpack, µs |',
    '|---|---|---|---|',
    `| JSON as is (before packing) | ${m(mine, 'plainBytes').toFixed(0)} | - | - |`,
    `| packed (value-packing.ts) | ${m(mine, 'packedBytes').toFixed(0)} (${(m(mine, 'packedBytes') / m(mine, 'plainBytes') * 100).toFixed(0)} %) | ${us('packUs')} | ${us('unpackUs')} |`,
    `| the same, a new zlib stream a value (before reusable-zlib.ts) | = | ${us('oneShotPackUs')} | ${us('oneShotUnpackUs')} |`,
    `| the same with zlib's default state and buffers | = | ${us('defaultChunkPackUs')} | ${us('defaultChunkUnpackUs')} |`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  if (values.json) writeFileSync(values.json, `${JSON.stringify({ options: { values: count, runs }, settings: bySetting }, null, 2)}\n`);
  return 0;
}

runBenchMain(main);
