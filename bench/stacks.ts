// `node dist/bench/stacks.js`: the time from `docker stack deploy` of seed
// 003's application (app.yml + haproxy.cfg, test/helpers/seed-stacks.ts)
// until it answers on its published port, on a three-host Shoal lab (one
// manager, two workers; SHOAL_LAB_INDEX 14) against a three-host Docker Swarm
// lab (`lab up --docker-swarm`, index 15), one after the other in the same run.
//
//   node dist/bench/stacks.js [--rounds 3] [--only shoal,docker] [--deadline 120] [--json FILE]
//
// Per round: deploy (the CLI on the manager, images already on every host,
// `--resolve-image never`); "running" = every task of the three services
// running; "answers" = /hello-world/ through haproxy answers on the published
// port 80 of every host's address (busybox wget from the machine), version
// checked. Then `stack rm` and a wait until no container of it is left.
// Docker Swarm's routing mesh needs IPVS, which this kernel lacks: its port is
// polled for --deadline after its tasks run and reported as never answering.
import { join } from 'node:path';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { run } from '../src/common/run';
import { runDocker } from '../test/helpers/daemon';
import { parseHostLines, runLab, type LabHost } from '../test/helpers/lab';
import { APP_PORT, appYml, HAPROXY_CFG } from '../test/helpers/seed-stacks';
import { ensureStackImages, loadImages, STACK_IMAGES } from '../test/helpers/stack-images';
import { parseArgs } from 'node:util';
import { finishBench, installSignalCleanup, median, onCleanup, positiveOption, runBenchMain, until } from './util';

type Kind = 'shoal' | 'docker';
const INDEX: Record<Kind, string> = { shoal: process.env.SHOAL_LAB_INDEX ?? '14', docker: process.env.DOCKER_LAB_INDEX ?? '15' };
const VERSION = '1.0';
// How long Docker's port is polled after its tasks run (it never answers here: no IPVS).
const DOCKER_PORT_WAIT_MS = 20_000;
const say = (s: string) => process.stderr.write(`[stacks] ${s}\n`);

interface Options { rounds: number; kinds: Kind[]; deadlineMs: number; json?: string }
interface Side { running: number[]; answers: number[]; neverAnswered: number; error?: string }

function options(): Options | 'help' {
  const { values } = parseArgs({ options: { rounds: { type: 'string' }, only: { type: 'string' }, deadline: { type: 'string' }, json: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) return 'help';
  const kinds = (values.only ?? 'shoal,docker').split(',').map((k) => k.trim());
  for (const k of kinds) if (k !== 'shoal' && k !== 'docker') throw new Error(`--only wants shoal and/or docker, got ${k}`);
  return {
    rounds: Math.min(10, Math.round(positiveOption(values.rounds, 3, 'rounds'))),
    kinds: kinds as Kind[],
    deadlineMs: Math.min(600, positiveOption(values.deadline, 120, 'deadline')) * 1000,
    ...(values.json ? { json: values.json } : {}),
  };
}

const answers = async (address: string): Promise<boolean> => {
  const r = await run('busybox', ['timeout', '3', 'busybox', 'wget', '-q', '-O-', `http://${address}:${APP_PORT}/hello-world/`], { timeoutMs: 10_000 });
  return r.code === 0 && r.stdout.includes(`version ${VERSION}`);
};

async function side(kind: Kind, o: Options): Promise<Side> {
  const fig: Side = { running: [], answers: [], neverAnswered: 0 };
  const dir = join(mkdtempSync(`/tmp/shoal-bench-stacks-${kind}-`), 'lab');
  const files = join(dir, '..', 'files');
  const lab = (args: string[], ms = 300_000) => runLab(INDEX[kind], [...args, '--dir', dir], ms);
  const down = async () => { const r = await lab(['down'], 120_000); if (r.code !== 0) say(`${kind} lab down: ${r.stderr.trim()}`); };
  const unregister = onCleanup(`${kind} lab`, down);
  try {
    say(`${kind}: lab up --hosts 3 --managers 1 --workers 2 (index ${INDEX[kind]})`);
    const up = await lab(['up', '--hosts', '3', '--managers', '1', '--workers', '2', ...(kind === 'docker' ? ['--docker-swarm'] : [])]);
    if (up.code !== 0) throw new Error(`lab up: ${up.stderr.trim()}`);
    const hosts: LabHost[] = parseHostLines(up.stdout);
    const manager = hosts.find((h) => h.role === 'manager')!;
    const images = [STACK_IMAGES.haproxy, STACK_IMAGES.visualizer, STACK_IMAGES.web(VERSION)];
    await Promise.all(hosts.map((h) => loadImages(join(dir, 'hosts', h.name, 'docker.sock'), images)));
    mkdirSync(files, { recursive: true });
    writeFileSync(join(files, 'haproxy.cfg'), HAPROXY_CFG);
    // The image every host has (no registry in this bench: Docker's could only be reached through its mesh).
    writeFileSync(join(files, 'app.yml'), appYml(VERSION, join(files, 'haproxy.cfg'), '15s', STACK_IMAGES.web(VERSION)));
    const docker = async (args: string[]) => {
      const r = await runDocker(manager.dockerHost, args, { timeoutMs: o.deadlineMs });
      if (r.code !== 0) throw new Error(`docker ${args.join(' ')}: ${r.stderr.trim()}`);
      return r.stdout;
    };
    const allRunning = async () => {
      const out = await docker(['stack', 'ps', '--filter', 'desired-state=running', '--format', '{{.CurrentState}}', 'app']);
      const lines = out.split('\n').filter(Boolean);
      return lines.length === 5 && lines.every((l) => l.startsWith('Running'));
    };
    for (let r = 1; r <= o.rounds; r++) {
      const t0 = performance.now();
      await docker(['stack', 'deploy', '--resolve-image', 'never', '-c', join(files, 'app.yml'), 'app']);
      const running = await until('every task running', o.deadlineMs, async () => (await allRunning()) && (performance.now() - t0) / 1000);
      fig.running.push(running);
      let answered: number | undefined;
      try {
        answered = await until('the published port answering on every host', kind === 'docker' ? DOCKER_PORT_WAIT_MS : o.deadlineMs, async () => {
          for (const h of hosts) if (!(await answers(h.address))) return false;
          return (performance.now() - t0) / 1000;
        }, 100);
        fig.answers.push(answered);
      } catch {
        fig.neverAnswered++;
      }
      say(`${kind} round ${r}: tasks running after ${running.toFixed(2)} s, ${answered === undefined ? `port ${APP_PORT} never answered` : `answers on every host after ${answered.toFixed(2)} s`}`);
      await docker(['stack', 'rm', 'app']);
      await until('no container of the stack left', o.deadlineMs, async () => {
        for (const h of hosts) {
          const ps = await runDocker(`unix://${join(dir, 'hosts', h.name, 'docker.sock')}`, ['ps', '-aq', '--filter', 'label=com.docker.stack.namespace=app']);
          if (ps.code !== 0 || ps.stdout.trim()) return false;
        }
        return true;
      }, 500);
      // Docker removes the stack's networks asynchronously; a deploy right after can race them.
      await until('the stack\'s networks gone', o.deadlineMs, async () => !(await docker(['network', 'ls', '--format', '{{.Name}}'])).split('\n').some((n) => n.startsWith('app_')), 500);
    }
  } catch (err) {
    fig.error = (err as Error).message.split('\n')[0];
    say(`${kind} half failed: ${(err as Error).message}`);
  } finally {
    unregister();
    await down();
  }
  return fig;
}

function report(o: Options, figs: Partial<Record<Kind, Side>>): string {
  const f = (xs: number[]) => (xs.length ? `${median(xs).toFixed(2)} s (${xs.map((x) => x.toFixed(2)).join(', ')})` : '-');
  const lines = [`seed 003 app.yml: stack deploy until every task runs / until port ${APP_PORT} answers on all 3 hosts; medians of ${o.rounds} rounds`];
  for (const k of o.kinds) {
    const s = figs[k];
    if (!s) continue;
    lines.push(`${k.padEnd(7)} running ${f(s.running)}; answers ${s.answers.length ? f(s.answers) : 'never'}${s.neverAnswered ? ` (${s.neverAnswered} of ${s.running.length} rounds: port ${APP_PORT} never answered within ${(k === 'docker' ? DOCKER_PORT_WAIT_MS : o.deadlineMs) / 1000} s after its tasks ran${k === 'docker' ? ': its routing mesh needs IPVS, absent from this kernel' : ''})` : ''}${s.error ? `; FAILED: ${s.error}` : ''}`);
  }
  return lines.join('\n');
}

async function main(): Promise<number> {
  const o = options();
  if (o === 'help') { process.stdout.write('usage: node dist/bench/stacks.js [--rounds 3] [--only shoal,docker] [--deadline 120] [--json FILE]\n'); return 0; }
  if (process.getuid?.() !== 0) throw new Error('the bench needs root (it makes labs)');
  installSignalCleanup();
  await ensureStackImages();
  const figs: Partial<Record<Kind, Side>> = {};
  for (const k of o.kinds) figs[k] = await side(k, o);
  // A Docker side whose port never answers is the expected result here, not a failure.
  return finishBench(report(o, figs), o.json, { options: o, ...(figs.shoal ? { shoal: figs.shoal } : {}), ...(figs.docker ? { docker: figs.docker } : {}) });
}

runBenchMain(main);
