// `npm run faults:broken -- [--patch NAME] [--rounds N] [--seed S]`: proves
// the fault test catches a broken build. It copies the source tree to a
// temporary folder, applies test/faults/broken/NAME.patch there (the product
// itself has no switch for it), builds that copy, runs the fault test with
// the copy's daemons on a lab (SHOAL_LAB_INDEX, default 31) and passes only
// when the checker reports an anomaly of a kind that patch must cause.
// The copy starts from this tree's build (dist/, `npm run build` first) and
// only the patched files are compiled again (transpiled, no type check): a
// full tsc run took minutes on this loaded machine.
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as ts from 'typescript';
import type { AnomalyKind } from './history';

// dist/test/faults/broken.js -> the repository
const ROOT = resolve(__dirname, '../../..');
const COPY = ['src', 'test', 'bench', 'scripts', 'dist', 'package.json', 'tsconfig.json'];
const RUN_LIMIT_MS = 30 * 60_000;

// What each broken build must make the checker say.
export const EXPECTED: Record<string, AnomalyKind[]> = {
  // The API answers a service create or update before etcd committed it, and
  // drops it silently when the store refuses it (a taken name, a stale version).
  'ack-before-commit': ['lost-create', 'same-base-version', 'lost-update'],
  // A service update is applied whatever version the client based it on.
  'stale-version': ['same-base-version', 'lost-update'],
};

function run(cmd: string, args: string[], cwd: string, what: string): void {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) throw new Error(`${what}: ${(r.stderr || r.stdout || r.error?.message || `exit ${r.status}`).trim().slice(0, 2000)}`);
}

// The .ts files a patch changes (its `+++ b/PATH` lines).
export function patchedFiles(patch: string): string[] {
  return [...patch.matchAll(/^\+\+\+ b\/(\S+\.ts)$/gm)].map((m) => m[1]!);
}

// One patched file into the copy's dist/, with the project's compiler options.
function compile(dir: string, file: string): void {
  const config = ts.readConfigFile(join(dir, 'tsconfig.json'), (p) => ts.sys.readFile(p));
  const { options } = ts.convertCompilerOptionsFromJson(config.config.compilerOptions, dir);
  const out = ts.transpileModule(readFileSync(join(dir, file), 'utf8'), { compilerOptions: options, fileName: join(dir, file), reportDiagnostics: true });
  if (out.diagnostics?.length) throw new Error(`${file}: ${out.diagnostics.map((d) => ts.flattenDiagnosticMessageText(d.messageText, ' ')).join('; ')}`);
  const target = join(dir, 'dist', file.replace(/\.ts$/, '.js'));
  if (!existsSync(target)) throw new Error(`${target} does not exist: run \`npm run build\` first`);
  writeFileSync(target, out.outputText);
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { patch: { type: 'string' }, rounds: { type: 'string' }, seed: { type: 'string' }, keep: { type: 'boolean' } }, strict: true });
  const name = values.patch ?? 'ack-before-commit';
  const expected = EXPECTED[name];
  if (!expected) throw new Error(`--patch wants one of ${Object.keys(EXPECTED).join(', ')}, got "${name}"`);
  const rounds = values.rounds ?? '3';
  const seed = values.seed ?? String(Math.floor(Math.random() * 2 ** 31));
  const patch = join(ROOT, 'test/faults/broken', `${name}.patch`);
  if (!existsSync(patch)) throw new Error(`${patch} does not exist`);

  const dir = mkdtempSync(join(tmpdir(), `shoal-broken-${name}-`));
  try {
    for (const p of COPY) cpSync(join(ROOT, p), join(dir, p), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
    run('git', ['apply', '--verbose', patch], dir, `git apply ${name}.patch`);
    const changed = patchedFiles(readFileSync(patch, 'utf8'));
    for (const f of changed) compile(dir, f);
    console.log(`broken build ${name}: ${patch} applied in ${dir}; compiled again: ${changed.join(', ')}`);

    const index = process.env.SHOAL_LAB_INDEX || '31';
    const out = join(tmpdir(), `shoal-faults-broken-${name}-${seed}.json`);
    const args = [join(dir, 'dist/test/faults/run.js'), '--rounds', rounds, '--seed', seed, '--clients', '3', '--out', out];
    console.log(`running the fault test on the broken build (lab ${index}): node ${args.join(' ')}`);
    const { code, text } = await new Promise<{ code: number; text: string }>((done) => {
      const child = spawn(process.execPath, args, { env: { ...process.env, SHOAL_LAB_INDEX: index }, stdio: ['ignore', 'pipe', 'pipe'] });
      let t = '';
      const take = (d: Buffer): void => { t += d.toString(); process.stdout.write(d); };
      child.stdout.on('data', take);
      child.stderr.on('data', take);
      const timer = setTimeout(() => child.kill('SIGKILL'), RUN_LIMIT_MS);
      child.on('close', (c) => { clearTimeout(timer); done({ code: c ?? -1, text: t }); });
    });
    // A killed run leaves its lab up.
    if (code !== 0 && code !== 1) spawnSync(process.execPath, [join(dir, 'dist/src/cli/main.js'), 'lab', 'down'], { env: { ...process.env, SHOAL_LAB_INDEX: index }, timeout: 240_000 });

    const anomalies = text.split('\n').filter((l) => l.startsWith('ANOMALY '));
    const caught = anomalies.filter((l) => expected.some((k) => l.startsWith(`ANOMALY ${k}:`)));
    const last = text.trimEnd().split('\n').pop() ?? '';
    if (code === 1 && caught.length > 0) {
      const perKind = expected.map((k) => [k, caught.filter((l) => l.startsWith(`ANOMALY ${k}:`)).length] as const).filter(([, n]) => n > 0);
      console.log(`broken build ${name} CAUGHT (seed ${seed}): ${perKind.map(([k, n]) => `${n} ${k}`).join(', ')}; first: ${caught[0]}`);
      console.log(`  final line: ${last}`);
      console.log(`  replay: npm run faults:broken -- --patch ${name} --rounds ${rounds} --seed ${seed}`);
      return 0;
    }
    console.log(`broken build ${name} NOT caught (seed ${seed}, run exit ${code}): ${anomalies.length ? `only ${anomalies.map((l) => l.split(':')[0]).join(', ')}` : 'no anomaly'}; expected one of ${expected.join(', ')}`);
    return 1;
  } finally {
    if (!values.keep) rmSync(dir, { recursive: true, force: true });
    else console.log(`the broken tree is kept in ${dir}`);
  }
}

if (require.main === module) {
  main().then((code) => { process.exitCode = code; }, (err) => { console.error(`faults:broken: ${(err as Error).stack ?? err}`); process.exitCode = 2; });
}
