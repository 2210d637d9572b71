// `node dist/bench/profile-summary.js FILE.cpuprofile [--top 30] [--callers FN [--depth N]] [--inclusive FN,FN] [--stalls MS]`: where a
// CPU profile's time went, as text: self time by function and by module (an
// npm package, a Shoal source file, node's own code, V8's GC and idle), so a
// profile from --leader-prof or --sim-prof can be read and quoted without
// DevTools. `--inclusive FN,FN`: each function's time with all it called. `--stalls MS`: every stretch of at least MS without an idle
// sample (the event loop held, or the process starved), with the Shoal
// functions (innermost frame of ours) and GC that filled it. A .heapprofile
// (--leader-prof FILE.heapprofile): live bytes by allocating function, by
// module and by the innermost Shoal frame on the allocating stack; an
// .allocprofile: the same for every byte allocated, garbage included.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { profileKind } from './inspector-profile';

interface CallFrame { functionName: string; url: string; lineNumber: number }
interface ProfileNode { id: number; callFrame: CallFrame; children?: number[] }
interface Profile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

// The module a frame belongs to: a package, a file of ours, node, or V8.
export function moduleOf(f: CallFrame): string {
  if (!f.url) return f.functionName.startsWith('(') ? f.functionName : `(${f.functionName || 'native'})`;
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(f.url);
  if (pkg) return pkg[1]!;
  if (f.url.startsWith('node:')) return 'node:' + f.url.slice(5).split('/')[0];
  const ours = /\/dist\/(.+)$/.exec(f.url);
  return ours ? ours[1]! : f.url;
}

export interface Summary { totalMs: number; byFunction: Array<[string, number]>; byModule: Array<[string, number]>; callers: Array<[string, number]> }

// A frame of Shoal's own code (not a package's, node's or V8's).
const isOurs = (f: CallFrame): boolean => /\/dist\/src\//.test(f.url);

const frameKey = (f: CallFrame): string => `${f.functionName || '(anonymous)'} ${moduleOf(f)}:${f.lineNumber + 1}`;

// `callersOf`: also the self time of frames whose function name is that, by
// the chain of their callers (up to `depth` frames, three unless said), to
// tell who calls a hot helper; deeper, to tell which caller of a shared one
// (Buffer.from, say) the time belongs to.
// The profile's nodes by ID, and each node's parent.
function tree(p: Profile): { nodes: Map<number, ProfileNode>; parent: Map<number, number> } {
  const nodes = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  return { nodes, parent };
}

export function summarize(p: Profile, callersOf?: string, depth = 3): Summary {
  const { nodes, parent } = tree(p);
  const callers = new Map<string, number>();
  const selfUs = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) selfUs.set(p.samples[i]!, (selfUs.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i] ?? 0));
  const fn = new Map<string, number>();
  const mod = new Map<string, number>();
  let total = 0;
  for (const [id, us] of selfUs) {
    const f = nodes.get(id)!.callFrame;
    const m = moduleOf(f);
    const key = frameKey(f);
    if (callersOf && f.functionName === callersOf) {
      const chain: string[] = [];
      for (let q = parent.get(id); q !== undefined && chain.length < depth; q = parent.get(q)) chain.push(frameKey(nodes.get(q)!.callFrame));
      const k = chain.join(' < ');
      callers.set(k, (callers.get(k) ?? 0) + us);
    }
    fn.set(key, (fn.get(key) ?? 0) + us);
    mod.set(m, (mod.get(m) ?? 0) + us);
    total += us;
  }
  const sorted = (m: Map<string, number>): Array<[string, number]> => [...m].map(([k, v]): [string, number] => [k, v / 1000]).sort((a, b) => b[1] - a[1]);
  return { totalMs: total / 1000, byFunction: sorted(fn), byModule: sorted(mod), callers: sorted(callers) };
}

// Milliseconds of samples with a frame named `name` anywhere on their stack
// (the function and all it called), counted once however deep it recurses.
export function inclusiveMs(p: Profile, name: string): number {
  const { nodes, parent } = tree(p);
  const within = new Map<number, boolean>();
  const under = (id: number): boolean => {
    let w = within.get(id);
    if (w !== undefined) return w;
    const q = parent.get(id);
    w = nodes.get(id)!.callFrame.functionName === name || (q !== undefined && under(q));
    within.set(id, w);
    return w;
  };
  let us = 0;
  for (let i = 0; i < p.samples.length; i++) if (under(p.samples[i]!)) us += p.timeDeltas[i] ?? 0;
  return us / 1000;
}

export interface Stall { startMs: number; ms: number; top: Array<[string, number]> }

// Stretches of at least `minMs` with no idle sample, in order, each with its
// three heaviest innermost Shoal frames (or module, outside Shoal's code).
export function stalls(p: Profile, minMs: number): Stall[] {
  const { nodes, parent } = tree(p);
  const owner = new Map<number, string>();
  const ownerOf = (id: number): string => {
    let o = owner.get(id);
    if (o !== undefined) return o;
    for (let q: number | undefined = id; q !== undefined; q = parent.get(q)) {
      const f = nodes.get(q)!.callFrame;
      if (isOurs(f)) { o = frameKey(f); break; }
    }
    o ??= moduleOf(nodes.get(id)!.callFrame);
    owner.set(id, o);
    return o;
  };
  const out: Stall[] = [];
  let t = 0;
  let start = -1;
  let by = new Map<string, number>();
  const close = (end: number): void => {
    if (start >= 0 && end - start >= minMs * 1000) {
      out.push({ startMs: start / 1000, ms: (end - start) / 1000, top: [...by].sort((a, b) => b[1] - a[1]).slice(0, 3).map(([k, us]): [string, number] => [k, us / 1000]) });
    }
    start = -1;
    by = new Map();
  };
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i] ?? 0;
    t += dt;
    const id = p.samples[i]!;
    if (nodes.get(id)!.callFrame.functionName === '(idle)') { close(t - dt); continue; }
    if (start < 0) start = t - dt;
    const o = ownerOf(id);
    by.set(o, (by.get(o) ?? 0) + dt);
  }
  close(t);
  return out;
}

interface HeapNode { callFrame: CallFrame; selfSize: number; children?: HeapNode[] }
export interface HeapSummary { totalBytes: number; byFunction: Array<[string, number]>; byModule: Array<[string, number]>; byOurs: Array<[string, number]> }

// Live bytes of a sampling heap profile, three ways; `byOurs` charges each
// allocation to the innermost frame of Shoal's code above it (a JSON.parse or
// a Map's growth counted where Shoal asked for it).
export function summarizeHeap(head: HeapNode): HeapSummary {
  const fn = new Map<string, number>();
  const mod = new Map<string, number>();
  const ours = new Map<string, number>();
  let total = 0;
  const add = (m: Map<string, number>, k: string, v: number): void => { m.set(k, (m.get(k) ?? 0) + v); };
  const walk = (n: HeapNode, owner: string | undefined): void => {
    const f = n.callFrame;
    const o = isOurs(f) ? frameKey(f) : owner;
    if (n.selfSize > 0) {
      add(fn, frameKey(f), n.selfSize);
      add(mod, moduleOf(f), n.selfSize);
      add(ours, o ?? moduleOf(f), n.selfSize);
      total += n.selfSize;
    }
    for (const c of n.children ?? []) walk(c, o);
  };
  walk(head, undefined);
  const sorted = (m: Map<string, number>): Array<[string, number]> => [...m].sort((a, b) => b[1] - a[1]);
  return { totalBytes: total, byFunction: sorted(fn), byModule: sorted(mod), byOurs: sorted(ours) };
}

function mainHeap(file: string, top: number): void {
  const s = summarizeHeap((JSON.parse(readFileSync(file, 'utf8')) as { head: HeapNode }).head);
  const line = ([k, b]: [string, number]): string => `${(b / 2 ** 20).toFixed(1).padStart(8)} MB ${((100 * b) / s.totalBytes).toFixed(1).padStart(5)} %  ${k}`;
  const what = profileKind(file) === 'alloc' ? 'allocated' : 'live';
  process.stdout.write(`${file}: ${(s.totalBytes / 2 ** 20).toFixed(1)} MB ${what} (sampled)\n\nby module\n`);
  process.stdout.write(s.byModule.slice(0, top).map(line).join('\n') + '\n\nby innermost Shoal frame\n');
  process.stdout.write(s.byOurs.slice(0, top).map(line).join('\n') + '\n\nby function\n');
  process.stdout.write(s.byFunction.slice(0, top).map(line).join('\n') + '\n');
}

function main(): void {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string' }, callers: { type: 'string' }, depth: { type: 'string' }, stalls: { type: 'string' }, inclusive: { type: 'string' } } });
  // Read through `head`: a reader that has seen enough is no error.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => { if (e.code === 'EPIPE') process.exit(0); throw e; });
  const file = positionals[0];
  if (!file) { process.stderr.write('usage: profile-summary FILE.cpuprofile [--top N] [--callers FN [--depth N]] [--inclusive FN,FN] [--stalls MS]\n'); process.exit(2); }
  const top = Number(values.top ?? 30);
  if (profileKind(file) !== 'cpu') { mainHeap(file, top); return; }
  // Read once: the summaries below only read it.
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const depth = Number(values.depth ?? 3);
  if (!Number.isInteger(depth) || depth < 1) { process.stderr.write(`--depth: a whole number of frames, 1 or more (got ${values.depth})\n`); process.exit(2); }
  const s = summarize(profile, values.callers, depth);
  const busy = s.totalMs - (s.byModule.find(([m]) => m === '(idle)')?.[1] ?? 0);
  const line = ([k, ms]: [string, number]): string => `${ms.toFixed(0).padStart(8)} ms ${((100 * ms) / busy).toFixed(1).padStart(5)} %  ${k}`;
  process.stdout.write(`${file}: ${(s.totalMs / 1000).toFixed(1)} s profiled, ${(busy / 1000).toFixed(1)} s not idle (percentages of that)\n\nby module\n`);
  process.stdout.write(s.byModule.slice(0, top).map(line).join('\n') + '\n\nby function\n');
  process.stdout.write(s.byFunction.slice(0, top).map(line).join('\n') + '\n');
  if (values.callers) process.stdout.write(`\ncallers of ${values.callers} (${depth} frames)\n` + s.callers.slice(0, top).map(line).join('\n') + '\n');
  if (values.inclusive) {
    process.stdout.write('\ninclusive (the function and what it called)\n' + values.inclusive.split(',').map((n): [string, number] => [n, inclusiveMs(profile, n)]).map(line).join('\n') + '\n');
  }
  if (values.stalls) {
    const found = stalls(profile, Number(values.stalls));
    process.stdout.write(`\n${found.length} stretches of ${values.stalls} ms or more without an idle sample\n`);
    for (const st of found) process.stdout.write(`${(st.startMs / 1000).toFixed(1).padStart(7)} s  ${st.ms.toFixed(0).padStart(6)} ms  ${st.top.map(([k, ms]) => `${k} ${ms.toFixed(0)} ms`).join(' | ')}\n`);
  }
}

if (require.main === module) main();
