// Small helpers shared by the bench files: processes, /proc, HTTP over unix
// sockets, cleanup on exit.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { run, type RunOptions, type RunResult } from '../src/common/run';

export { alive, cmdline } from '../src/common/proc';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export type Exec = RunResult;

// Runs a command; never rejects on a non-zero exit (check `code`), kills it at the deadline.
export function exec(cmd: string, args: string[], opts: RunOptions = {}): Promise<Exec> {
  return run(cmd, args, { ...opts, timeoutMs: opts.timeoutMs ?? 60_000 });
}

export async function mustExec(cmd: string, args: string[], opts: { timeoutMs?: number; input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  const r = await exec(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

export interface HttpResult { status: number; text: string; json: any }

export function http(socketPath: string, method: string, path: string, body?: unknown, timeoutMs = 30_000): Promise<HttpResult> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request({
      socketPath, method, path,
      headers: { Host: 'docker', ...(payload !== undefined ? { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(payload)) } : {}) },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try { json = text ? JSON.parse(text) : undefined; } catch { json = undefined; }
        resolve({ status: res.statusCode ?? 0, text, json });
      });
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${path} on ${socketPath}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}

export async function httpOk(socketPath: string, method: string, path: string, body?: unknown, timeoutMs?: number): Promise<HttpResult> {
  const r = await http(socketPath, method, path, body, timeoutMs);
  if (r.status < 200 || r.status >= 300) throw new Error(`${method} ${path} on ${socketPath}: ${r.status} ${r.text.trim()}`);
  return r;
}

// Streams GET srcPath on one socket into POST dstPath on another (docker save | docker load).
export function pipeHttp(src: string, srcPath: string, dst: string, dstPath: string, timeoutMs = 120_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`copying ${srcPath} to ${dstPath}: timed out`)), timeoutMs);
    const done = (err?: Error) => { clearTimeout(timer); if (err) reject(err); else resolve(); };
    const get = request({ socketPath: src, method: 'GET', path: srcPath, headers: { Host: 'docker' } }, (res) => {
      if (res.statusCode !== 200) { res.resume(); done(new Error(`GET ${srcPath}: ${res.statusCode}`)); return; }
      const post = request({ socketPath: dst, method: 'POST', path: dstPath, headers: { Host: 'docker', 'Content-Type': 'application/x-tar' } }, (out) => {
        let text = '';
        out.setEncoding('utf8').on('data', (c: string) => { text += c; });
        out.on('end', () => (out.statusCode === 200 && !/"error"/.test(text) ? done() : done(new Error(`POST ${dstPath}: ${out.statusCode} ${text}`))));
      });
      post.on('error', done);
      res.pipe(post);
    });
    get.on('error', done);
    get.end();
  });
}

// Resident set size in bytes (0 if the process is gone).
export function rssBytes(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch { return 0; }
}

// RSS split (MB): anonymous pages (the process's own), file pages (the
// executable and libraries, shared with every process running them, counted
// in each RSS), and PSS (shared pages divided among the processes mapping them).
export interface RssSplit { anon: number; file: number; pss: number }
export function rssSplit(pid: number): RssSplit {
  const field = (text: string, name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0) / 1024;
  let status = '';
  let rollup = '';
  try { status = readFileSync(`/proc/${pid}/status`, 'utf8'); rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'); } catch { /* gone: zeros */ }
  return { anon: field(status, 'RssAnon'), file: field(status, 'RssFile'), pss: field(rollup, 'Pss') };
}

// pid and all its descendants.
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(e));
      children.set(ppid, list);
    } catch { /* gone */ }
  }
  const out: number[] = [];
  const stack = [root];
  while (stack.length) {
    const p = stack.pop()!;
    out.push(p);
    stack.push(...(children.get(p) ?? []));
  }
  return out;
}

// CPU seconds (user + system) used so far by pid and its descendants that are still alive.
// `command`: only the processes of that name (/proc/PID/comm), e.g. etcd.
export function treeCpuSeconds(root: number, command?: string): number {
  let ticks = 0;
  for (const p of processTree(root)) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      if (command !== undefined && stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')) !== command) continue;
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]);
    } catch { /* gone */ }
  }
  return ticks / 100; // USER_HZ
}

export function treeRssBytes(root: number): number {
  return processTree(root).reduce((sum, p) => sum + rssBytes(p), 0);
}

// Cleanup steps run in reverse order of registration, on success, failure and ctrl-c.
type Step = { name: string; fn: () => Promise<void> };
const steps: Step[] = [];
let cleaning: Promise<void> | undefined;

export function onCleanup(name: string, fn: () => Promise<void>): () => void {
  const step = { name, fn };
  steps.push(step);
  return () => { const i = steps.indexOf(step); if (i >= 0) steps.splice(i, 1); };
}

// Steps registered after a cleanup ran are run by the next call.
export function runCleanup(): Promise<void> {
  cleaning ??= (async () => {
    while (steps.length) {
      const s = steps.pop()!;
      try {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([s.fn(), new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error('cleanup step timed out after 90 s')), 90_000); })])
          .finally(() => clearTimeout(timer));
      } catch (err) {
        process.stderr.write(`[bench] cleanup "${s.name}" failed: ${(err as Error).message}\n`);
      }
    }
  })().finally(() => { cleaning = undefined; });
  return cleaning;
}

export function installSignalCleanup(): void {
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      process.stderr.write(`\n[bench] ${sig}: cleaning up\n`);
      runCleanup().finally(() => process.exit(130));
    });
  }
}

// Polls `check` every `everyMs` until it gives something truthy; at the deadline throws with `what` and the last error.
export async function until<T>(what: string, deadlineMs: number, check: () => Promise<T | undefined | false>, everyMs = 250): Promise<T> {
  const end = Date.now() + deadlineMs;
  let last = '';
  for (;;) {
    try { const v = await check(); if (v) return v; } catch (err) { last = (err as Error).message; }
    if (Date.now() >= end) throw new Error(`${what}: not within ${deadlineMs / 1000} s${last ? ` (${last})` : ''}`);
    await sleep(everyMs);
  }
}

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

// Parses a positive number option (`--runs 3`), or gives the default.
export function positiveOption(v: string | undefined, dflt: number, what: string): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${what} wants a positive number, got ${v}`);
  return n;
}

export function sideOption(v: string | undefined): 'shoal' | 'docker' | undefined {
  if (v !== undefined && v !== 'shoal' && v !== 'docker') throw new Error('--only wants shoal or docker');
  return v;
}

// The end every bench shares: clean up, print the report, keep the JSON if
// asked, and fail when either half failed.
export async function finishBench(report: string, jsonPath: string | undefined, data: { options: unknown; shoal?: { error?: string }; engine?: { error?: string }; docker?: { error?: string } }): Promise<number> {
  await runCleanup();
  process.stdout.write(`${report}\n`);
  if (jsonPath) writeFileSync(jsonPath, `${JSON.stringify(data, null, 2)}\n`);
  return data.shoal?.error || data.engine?.error || data.docker?.error ? 1 : 0;
}

// A bench file's usage: the comment it starts with (each one says its command
// and options there), from the built file, where tsc keeps it.
export function usageOf(source: string): string {
  const lines: string[] = [];
  for (const l of source.split('\n')) {
    if (l.startsWith('//')) lines.push(l.replace(/^\/\/ ?/, ''));
    else if (lines.length || !/^("use strict";|Object\.defineProperty\(exports|\s*$)/.test(l)) break;
  }
  return lines.join('\n');
}

// Runs a bench's main and exits with its code; a crash still cleans up. A
// bench that does not take --help (or -h) itself answers it with its usage
// (the comment it starts with); any other option it does not know, with one
// line, not a stack.
export function runBenchMain(main: () => Promise<number>): void {
  main().then((code) => process.exit(code), async (err: unknown) => {
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    const file = require.main?.filename;
    let exitCode = 1;
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
      const help = file !== undefined && process.argv.slice(2).some((a) => a === '--help' || a === '-h');
      if (help) process.stdout.write(`${usageOf(readFileSync(file, 'utf8')) || `node ${file}: no usage written`}\n`);
      else process.stderr.write(`[bench] ${(err as Error).message} (--help lists the options)\n`);
      exitCode = help ? 0 : 2;
    } else {
      process.stderr.write(`[bench] ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    }
    await runCleanup();
    process.exit(exitCode);
  });
}
