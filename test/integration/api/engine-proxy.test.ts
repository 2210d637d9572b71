import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { Router } from '../../../src/api/router';
import { createApiServer } from '../../../src/api/server';
import { EngineProxy } from '../../../src/api/proxy';
import { registerPingRoutes } from '../../../src/api/routes/ping';
import { registerInfoRoute } from '../../../src/api/routes/engine-info';
import { registerEventRoutes, formatTimestamp, nowNs, type SwarmEventLog } from '../../../src/api/routes/events';
import type { SwarmInfo } from '../../../src/model/types';
import { silentLogger } from '../../../src/common/log';
import { ensureBusyboxImage } from '../../helpers/images';

// The real dockerd behind a real Shoal API server (ping, info, events routes;
// everything else through EngineProxy), driven by both docker CLIs.

const ENGINE = 'unix:///var/run/docker.sock';
const IMAGE = 'shoal-test/busybox:1';
const CLIS = ['/usr/bin/docker', '/usr/local/bin/docker'].filter((p) => existsSync(p));
const PREFIX = `shoal-api-it-${process.pid}`;
const INACTIVE: SwarmInfo = { NodeID: '', NodeAddr: '', LocalNodeState: 'inactive', ControlAvailable: false, Error: '', RemoteManagers: null };

let dir: string;
let sock: string;
let server: Server;
let proxy: EngineProxy;
let events: SwarmEventLog;
const conns = new Set<Socket>();
const containers = new Set<string>();
const images = new Set<string>();

interface Ran { code: number | null; stdout: string; stderr: string }

// Runs a CLI with a deadline; `input` is piped to stdin and then closed
// (stdin is closed at once when there is none).
function run(cli: string, args: string[], opts: { input?: string; keepStdinOpen?: boolean; timeoutMs?: number; host?: string; env?: Record<string, string> } = {}): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(cli, ['-H', opts.host ?? `unix://${sock}`, ...args], {
      env: { ...cleanEnv(), ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cli} ${args.join(' ')} did not finish in ${opts.timeoutMs ?? 60_000} ms; stdout=${stdout} stderr=${stderr}`));
    }, opts.timeoutMs ?? 60_000);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
    child.stdin.on('error', () => undefined);
    if (opts.keepStdinOpen) child.stdin.write(opts.input ?? '');
    else child.stdin.end(opts.input);
  });
}

function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_CONFIG: join(dir, 'config'), DOCKER_CLI_HINTS: 'false' };
  for (const k of ['DOCKER_HOST', 'DOCKER_CONTEXT', 'DOCKER_TLS_VERIFY', 'DOCKER_CERT_PATH', 'DOCKER_API_VERSION', 'DOCKER_BUILDKIT']) delete env[k];
  return env;
}

const ok = (r: Ran, what: string): Ran => { assert.equal(r.code, 0, `${what} failed: ${r.stderr}${r.stdout}`); return r; };
const name = (cli: string, what: string): string => {
  const n = `${PREFIX}-${cli.includes('local') ? 'new' : 'old'}-${what}`;
  containers.add(n);
  return n;
};

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'shoal-api-it-'));
  sock = join(dir, 'shoal.sock');
  await ensureBusyboxImage(ENGINE, IMAGE);
  const router = new Router();
  registerPingRoutes(router);
  registerInfoRoute(router, { engineAddress: ENGINE, swarmInfo: () => INACTIVE });
  events = registerEventRoutes(router, { engineAddress: ENGINE });
  proxy = new EngineProxy(ENGINE);
  server = createApiServer({ router, engine: proxy, engineVersion: () => '20.10.24+dfsg1', log: silentLogger });
  server.on('connection', (c: Socket) => { conns.add(c); c.on('close', () => conns.delete(c)); });
  await new Promise<void>((resolve) => server.listen(sock, resolve));
});

after(async () => {
  const direct = CLIS[0]!;
  if (containers.size) spawnSync(direct, ['-H', ENGINE, 'rm', '-f', ...containers], { timeout: 60_000, stdio: 'ignore' });
  if (images.size) spawnSync(direct, ['-H', ENGINE, 'rmi', '-f', ...images], { timeout: 60_000, stdio: 'ignore' });
  for (const c of conns) c.destroy();
  proxy?.close();
  events?.close();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  rmSync(dir, { recursive: true, force: true });
});

for (const cli of CLIS) {
  const which = cli.includes('local') ? 'CLI 28' : 'CLI 20.10';

  test(`${which}: docker version negotiates 1.41 through Shoal`, { timeout: 60_000 }, async () => {
    const r = ok(await run(cli, ['version', '--format', '{{.Server.APIVersion}} {{.Server.Version}}']), 'docker version');
    assert.match(r.stdout.trim(), /^1\.41 20\.10\./);
  });

  test(`${which}: docker info shows the engine with Shoal's Swarm block`, { timeout: 60_000 }, async () => {
    const r = ok(await run(cli, ['info', '--format', '{{.ServerVersion}} swarm={{.Swarm.LocalNodeState}}']), 'docker info');
    assert.match(r.stdout.trim(), /^20\.10\.\S+ swarm=inactive$/);
  });

  test(`${which}: docker run --rm echo hi`, { timeout: 90_000 }, async () => {
    const r = ok(await run(cli, ['run', '--rm', '--name', name(cli, 'hi'), IMAGE, 'echo', 'hi']), 'docker run');
    assert.equal(r.stdout, 'hi\n');
  });

  test(`${which}: docker run -i with stdin piped ends when stdin does`, { timeout: 90_000 }, async () => {
    const r = ok(await run(cli, ['run', '-i', '--rm', '--name', name(cli, 'cat'), IMAGE, 'cat'], { input: 'hello\n' }), 'docker run -i');
    assert.equal(r.stdout, 'hello\n');
  });

  test(`${which}: docker run -i whose container exits while stdin stays open ends at once`, { timeout: 90_000 }, async () => {
    const t0 = Date.now();
    const r = ok(await run(cli, ['run', '-i', '--rm', '--name', name(cli, 'quick'), IMAGE, 'echo', 'quick'], { keepStdinOpen: true, timeoutMs: 30_000 }), 'docker run -i');
    assert.equal(r.stdout, 'quick\n');
    assert.ok(Date.now() - t0 < 30_000);
  });

  test(`${which}: docker attach follows a running container to its end`, { timeout: 90_000 }, async () => {
    const n = name(cli, 'attach');
    ok(await run(cli, ['run', '-d', '--name', n, IMAGE, 'sh', '-c', 'sleep 1; echo n1; sleep 1; echo n2']), 'docker run -d');
    const r = ok(await run(cli, ['attach', '--no-stdin', n], { timeoutMs: 30_000 }), 'docker attach');
    assert.match(r.stdout, /n2\n$/);
  });

  test(`${which}: live docker events through Shoal; the stream is released when the CLI goes`, { timeout: 90_000 }, async () => {
    const n = name(cli, 'live');
    const child = spawn(cli, ['-H', `unix://${sock}`, 'events', '--filter', `container=${n}`, '--format', '{{.Type}} {{.Action}}'], { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
    try {
      await waitFor(() => events.subscribers === 1, 10_000, 'the events subscription');
      ok(await run(cli, ['run', '--rm', '--name', n, IMAGE, 'true']), 'docker run');
      await waitFor(() => out.includes('container destroy'), 20_000, `container events (got ${JSON.stringify(out)})`);
      assert.ok(out.includes('container start'));
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
    await waitFor(() => events.subscribers === 0, 10_000, 'the events subscription to be released');
  });

  test(`${which}: docker run -d, then logs -f ends when the container exits; events since/until show it`, { timeout: 120_000 }, async () => {
    const n = name(cli, 'logs');
    const since = formatTimestamp(nowNs() - 1_000_000_000n);
    ok(await run(cli, ['run', '-d', '--name', n, IMAGE, 'sh', '-c', 'echo one; sleep 2; echo two']), 'docker run -d');
    const logs = ok(await run(cli, ['logs', '-f', n], { timeoutMs: 60_000 }), 'docker logs -f');
    assert.equal(logs.stdout, 'one\ntwo\n');
    const until = formatTimestamp(nowNs() + 1_000_000_000n);
    const ev = ok(await run(cli, ['events', '--since', since, '--until', until, '--filter', `container=${n}`, '--format', '{{.Type}} {{.Action}}'], { timeoutMs: 30_000 }), 'docker events');
    const seen = ev.stdout.trim().split('\n');
    for (const want of ['container create', 'container start', 'container die']) assert.ok(seen.includes(want), `${want} in ${JSON.stringify(seen)}`);
  });

  test(`${which}: docker exec, exec -i with stdin, cp both ways`, { timeout: 120_000 }, async () => {
    const n = name(cli, 'exec');
    ok(await run(cli, ['run', '-d', '--name', n, IMAGE, 'sleep', '300']), 'docker run -d');
    assert.equal(ok(await run(cli, ['exec', n, 'echo', 'x']), 'docker exec').stdout, 'x\n');
    assert.equal(ok(await run(cli, ['exec', '-i', n, 'cat'], { input: 'data through exec\n' }), 'docker exec -i').stdout, 'data through exec\n');
    const local = join(dir, `cp-${which.replace(/\W/g, '')}.txt`);
    writeFileSync(local, 'copied in\n');
    ok(await run(cli, ['cp', local, `${n}:/tmp/in.txt`]), 'docker cp in');
    assert.equal(ok(await run(cli, ['exec', n, 'cat', '/tmp/in.txt']), 'cat').stdout, 'copied in\n');
    const out = join(dir, `out-${which.replace(/\W/g, '')}`);
    ok(await run(cli, ['cp', `${n}:/tmp/in.txt`, out]), 'docker cp out');
    assert.equal(spawnSync('cat', [out], { encoding: 'utf8' }).stdout, 'copied in\n');
    const exported = await new Promise<number>((resolve, reject) => {
      const child = spawn(cli, ['-H', `unix://${sock}`, 'export', n], { env: cleanEnv(), stdio: ['ignore', 'pipe', 'inherit'] });
      let size = 0;
      child.stdout.on('data', (d: Buffer) => { size += d.length; });
      const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error('docker export timed out')); }, 60_000);
      child.on('close', (code) => { clearTimeout(timer); code === 0 ? resolve(size) : reject(new Error(`docker export exited ${code}`)); });
    });
    assert.ok(exported > 1_000_000, `export of ${exported} bytes holds busybox`);
    ok(await run(cli, ['rm', '-f', n]), 'docker rm');
  });

  test(`${which}: docker build (classic builder) with a context through Shoal`, { timeout: 180_000 }, async () => {
    const ctx = mkdtempSync(join(dir, 'ctx-'));
    writeFileSync(join(ctx, 'Dockerfile'), `FROM ${IMAGE}\nCOPY hello.txt /hello.txt\nRUN cat /hello.txt > /copy.txt\n`);
    writeFileSync(join(ctx, 'hello.txt'), 'built by shoal\n');
    const tag = `shoal-test/built-${which.replace(/\W/g, '').toLowerCase()}:1`;
    images.add(tag);
    ok(await run(cli, ['build', '-q', '-t', tag, ctx], { env: { DOCKER_BUILDKIT: '0' }, timeoutMs: 150_000 }), 'docker build');
    const r = ok(await run(cli, ['run', '--rm', '--name', name(cli, 'built'), tag, 'cat', '/copy.txt']), 'run built image');
    assert.equal(r.stdout, 'built by shoal\n');
  });

  test(`${which}: docker pull of an unreachable name fails with the engine's message`, { timeout: 120_000 }, async () => {
    const ref = 'shoal-unreachable.invalid/nothing:1';
    const viaShoal = await run(cli, ['pull', ref], { timeoutMs: 100_000 });
    assert.notEqual(viaShoal.code, 0);
    assert.match(viaShoal.stderr, /Error response from daemon: .*shoal-unreachable\.invalid/);
    const direct = await run(cli, ['pull', ref], { host: ENGINE, timeoutMs: 100_000 });
    const firstLine = (s: string): string => s.split('\n').find((l) => l.startsWith('Error response from daemon'))!.replace(/(lookup \S+).*$/, '$1');
    assert.equal(firstLine(viaShoal.stderr), firstLine(direct.stderr));
  });

  test(`${which}: docker run -it through a pty (script)`, { timeout: 90_000, skip: !existsSync('/usr/bin/script') && 'no script(1)' }, async () => {
    const n = name(cli, 'tty');
    const cmd = `${cli} -H unix://${sock} run -it --rm --name ${n} ${IMAGE} sh -c 'echo tty:$(tty)'`;
    const r = await new Promise<Ran>((resolve, reject) => {
      const child = spawn('script', ['-qec', cmd, '/dev/null'], { env: cleanEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
      child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
      const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`docker run -it timed out: ${stdout} ${stderr}`)); }, 60_000);
      child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
      child.on('error', (e) => { clearTimeout(timer); reject(e); });
    });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /tty:\/dev\/pts\/\d+/);
  });

  test(`${which}: docker run -it: keystrokes reach the shell, its exit code comes back`, { timeout: 90_000, skip: !existsSync('/usr/bin/script') && 'no script(1)' }, async () => {
    const n = name(cli, 'tty-in');
    const child = spawn('script', ['-qec', `${cli} -H unix://${sock} run -it --rm --name ${n} ${IMAGE} sh`, '/dev/null'], { env: cleanEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    const code = new Promise<number | null>((resolve) => child.on('close', resolve));
    try {
      await waitFor(() => out.includes('# '), 30_000, `the shell prompt (got ${JSON.stringify(out)})`);
      child.stdin.write('echo in-tty-$((40+2))\r');
      await waitFor(() => out.includes('in-tty-42'), 20_000, `the command output (got ${JSON.stringify(out)})`);
      child.stdin.write('exit 3\r');
      const deadline = setTimeout(() => child.kill('SIGKILL'), 30_000);
      assert.equal(await code, 3, out);
      clearTimeout(deadline);
    } finally {
      child.kill('SIGKILL');
    }
  });
}
