// `node dist/bench/memory.js`: a Shoal daemon's memory idle, on this machine.
// Starts one daemon as the test harness does (own temp dir, socket, etcd
// ports, the host's dockerd), waits --idle seconds, samples the RSS of the
// daemon process --samples times (--interval apart; the median is kept), then
// `docker swarm init`, waits again and samples the daemon and its etcd child.
// The daemon runs with SHOAL_MEMORY_REPORT=1, so its V8 heap figures (last
// `memory` log line) are printed too.
//
//   node dist/bench/memory.js [--idle 60] [--samples 5] [--interval 2] [--node-options "..."] [--json FILE]
//
// --idle is 60 s by default: V8 gives back the heap grown by swarm init only
// after its idle-time GCs (at 20 s the daemon still held 5-8 MB more, varying).
// --node-options replaces the daemon's NODE_OPTIONS (to try V8 flags; "" for none).
// Goals (issue 8): a worker's daemon under 60 MB, a manager's daemon + etcd under 100 MB.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { startShoal, type ShoalHandle } from '../test/helpers/daemon';
import { finishBench, installSignalCleanup, median, onCleanup, positiveOption, rssBytes, runBenchMain, sleep } from './util';

const MB = 1024 * 1024;
const say = (s: string) => process.stderr.write(`[memory] ${s}\n`);

interface Options { idleMs: number; samples: number; intervalMs: number; nodeOptions?: string; json?: string }
interface Heap { rssMB: number; heapTotalMB: number; heapUsedMB: number; externalMB: number; arrayBuffersMB: number }
// MB resident; file = pages of the executable and libraries (shared with every process running them).
interface Rss { total: number; anon: number; file: number }
interface Phase { daemon: Rss; etcd?: Rss; heap?: Heap }

function rss(pid: number): Rss {
  let status = '';
  try { status = readFileSync(`/proc/${pid}/status`, 'utf8'); } catch { /* gone: zeros */ }
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) / 1024;
  return { total: rssBytes(pid) / MB, anon: kb('RssAnon'), file: kb('RssFile') };
}

const medianRss = (xs: Rss[]): Rss => ({ total: median(xs.map((x) => x.total)), anon: median(xs.map((x) => x.anon)), file: median(xs.map((x) => x.file)) });

function options(): Options {
  const { values } = parseArgs({
    options: {
      idle: { type: 'string' }, samples: { type: 'string' }, interval: { type: 'string' }, 'node-options': { type: 'string' },
      json: { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write('usage: node dist/bench/memory.js [--idle 60] [--samples 5] [--interval 2] [--node-options "..."] [--json FILE]\n');
    process.exit(0);
  }
  return {
    idleMs: positiveOption(values.idle, 60, 'idle') * 1000,
    samples: Math.round(positiveOption(values.samples, 5, 'samples')),
    intervalMs: positiveOption(values.interval, 2, 'interval') * 1000,
    nodeOptions: values['node-options'],
    json: values.json,
  };
}

// The heap figures of the daemon's last `memory` log line.
function lastHeap(h: ShoalHandle): Heap | undefined {
  const lines = h.logs().split('\n').filter((l) => l.includes('"msg":"memory"'));
  for (const line of lines.reverse()) {
    try { return JSON.parse(line) as Heap; } catch { /* a torn line */ }
  }
  return undefined;
}

async function phase(h: ShoalHandle, o: Options, withEtcd: boolean): Promise<Phase> {
  await sleep(o.idleMs);
  const daemon: Rss[] = [];
  const etcd: Rss[] = [];
  for (let i = 0; i < o.samples; i++) {
    if (i > 0) await sleep(o.intervalMs);
    daemon.push(rss(h.pid));
    const e = h.etcdPid();
    if (withEtcd && e) etcd.push(rss(e));
  }
  if (withEtcd && etcd.length === 0) throw new Error('no etcd process found after swarm init');
  return { daemon: medianRss(daemon), ...(withEtcd ? { etcd: medianRss(etcd) } : {}), heap: lastHeap(h) };
}

function report(o: Options, before: Phase, after: Phase): string {
  const f = (n: number | undefined) => (n === undefined ? '-' : n.toFixed(1));
  const r = (x: Rss | undefined) => (x ? `${f(x.total)} MB (anon ${f(x.anon)}, file ${f(x.file)})` : '-');
  const heap = (p: Phase) => (p.heap ? `heap ${f(p.heap.heapUsedMB)}/${f(p.heap.heapTotalMB)} MB used/total, external ${f(p.heap.externalMB)} MB (array buffers ${f(p.heap.arrayBuffersMB)})` : 'heap: no memory log line yet');
  return [
    `\nShoal daemon RSS idle (median of ${o.samples} samples ${o.intervalMs / 1000} s apart, after ${o.idleMs / 1000} s idle; NODE_OPTIONS=${JSON.stringify(process.env.NODE_OPTIONS ?? '')})`,
    `  not in a swarm   daemon ${r(before.daemon)}; ${heap(before)}`,
    `  swarm init       daemon ${r(after.daemon)} + etcd ${r(after.etcd)} = ${f(after.daemon.total + (after.etcd?.total ?? 0))} MB; daemon ${heap(after)}`,
    '  (file: pages of the node / etcd executables and libraries, shared with every process running the same file)',
    '  goals: a worker\'s daemon < 60 MB; a manager\'s daemon + etcd < 100 MB',
  ].join('\n');
}

async function main(): Promise<number> {
  const o = options();
  if (process.getuid?.() !== 0) throw new Error('the bench needs root (the daemon runs etcd and talks to the host dockerd)');
  installSignalCleanup();
  // The harness passes this process's environment to the daemon.
  process.env.SHOAL_MEMORY_REPORT = '1';
  if (o.nodeOptions !== undefined) process.env.NODE_OPTIONS = o.nodeOptions;
  const h = await startShoal({ hostname: 'memory-bench', logLevel: 'info' });
  const teardown = async (): Promise<void> => {
    if (h.running()) await h.docker(['swarm', 'leave', '--force'], { timeoutMs: 60_000 });
    await h.cleanup();
  };
  const unregister = onCleanup('Shoal daemon', teardown);
  let before: Phase, after: Phase;
  try {
    say(`daemon pid ${h.pid}: ${o.idleMs / 1000} s idle, not in a swarm`);
    before = await phase(h, o, false);
    say(`not in a swarm: daemon ${before.daemon.total.toFixed(1)} MB; swarm init`);
    const init = await h.docker(['swarm', 'init'], { timeoutMs: 60_000 });
    if (init.code !== 0) throw new Error(`docker swarm init via Shoal failed: ${init.stderr.trim()}`);
    after = await phase(h, o, true);
    say(`in a swarm: daemon ${after.daemon.total.toFixed(1)} MB, etcd ${after.etcd?.total.toFixed(1)} MB`);
  } finally {
    unregister();
    await teardown();
  }
  const figures: { error?: string; before: Phase; after: Phase } = { before, after };
  return finishBench(report(o, before, after), o.json, { options: o, shoal: figures });
}

runBenchMain(main);
