#!/usr/bin/env node
// What `npm test` runs after the build: the unit tests, then the integration
// tests one file at a time (they share the host's dockerd), with the spec
// reporter on stdout and the TAP summary (`# pass N`, `# fail N`) at the end.
//
// Integration tests need a dockerd answering on /var/run/docker.sock, a plain
// (not swarm-mode) engine, /usr/bin/etcd and the docker CLI: if any is
// missing this FAILS (a green run that skipped the real tests would lie).
// `bash scripts/setup.sh --deps-only` provides all of them.
//
//   node scripts/run-tests.js [unit|integration] [--only PATTERN]
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const DIST = path.join(ROOT, 'dist', 'test');
const ENGINE_SOCKET = '/var/run/docker.sock';
const PER_TEST_TIMEOUT_MS = 10 * 60_000;          // one test (or suite hook)
const PHASE_TIMEOUT_MS = { unit: 10 * 60_000, integration: 75 * 60_000 };

const args = process.argv.slice(2);
const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : undefined;
const phases = args.filter((a) => a === 'unit' || a === 'integration');
const wanted = phases.length ? phases : ['unit', 'integration'];

function findTests(dir) {
  if (!fs.existsSync(dir)) return [];
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...findTests(p));
    else if (e.isFile() && e.name.endsWith('.test.js')) out.push(p);
  }
  return out.sort();
}

// Compiled tests whose source is gone (renamed or deleted .ts) must not run.
function withSource(files) {
  return files.filter((f) => {
    const rel = path.relative(path.join(ROOT, 'dist'), f).replace(/\.js$/, '.ts');
    return fs.existsSync(path.join(ROOT, rel));
  });
}

function ping(socketPath) {
  return new Promise((resolve) => {
    const req = http.request({ socketPath, path: '/info', timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 5 s')));
    req.on('error', (err) => resolve({ status: 0, error: err.message }));
    req.end();
  });
}

async function integrationPrerequisites() {
  const problems = [];
  const info = await ping(ENGINE_SOCKET);
  if (info.status !== 200) {
    problems.push(`no dockerd answers on ${ENGINE_SOCKET} (${info.error || `status ${info.status}`})`);
  } else {
    try {
      const state = JSON.parse(info.body).Swarm?.LocalNodeState;
      if (state && state !== 'inactive') problems.push(`the host dockerd is in swarm state "${state}"; Shoal needs a plain engine (docker swarm leave --force)`);
    } catch { problems.push('the host dockerd answered /info with something that is not JSON'); }
  }
  for (const bin of ['/usr/bin/etcd', '/usr/bin/docker']) {
    try { fs.accessSync(bin, fs.constants.X_OK); } catch { problems.push(`${bin} is missing`); }
  }
  if (!fs.existsSync(path.join(ROOT, 'dist', 'src', 'cli', 'main.js'))) problems.push('dist/src/cli/main.js is missing (the build failed?)');
  if (!fs.existsSync('/usr/local/bin/docker')) console.log('[run-tests] note: /usr/local/bin/docker (CLI 28) is not on this machine; tests that drive it will fail');
  return problems;
}

function parseTap(file) {
  const sums = {};
  let text = '';
  try { text = fs.readFileSync(file, 'utf8'); } catch { return sums; }
  for (const m of text.matchAll(/^# (tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) ([\d.]+)$/gm)) sums[m[1]] = Number(m[2]);
  return sums;
}

function runPhase(name, files, extra) {
  return new Promise((resolve) => {
    const tap = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-tests-')), `${name}.tap`);
    const nodeArgs = ['--test', '--test-reporter=spec', '--test-reporter-destination=stdout', '--test-reporter=tap', `--test-reporter-destination=${tap}`, `--test-timeout=${PER_TEST_TIMEOUT_MS}`, ...extra, ...files];
    console.log(`\n[run-tests] ${name}: ${files.length} file(s)`);
    const started = Date.now();
    const child = spawn(process.execPath, nodeArgs, { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'], env: process.env });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      console.error(`\n[run-tests] ${name} tests still running after ${PHASE_TIMEOUT_MS[name] / 60000} min: killing them`);
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
    }, PHASE_TIMEOUT_MS[name]);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const sums = parseTap(tap);
      fs.rmSync(path.dirname(tap), { recursive: true, force: true });
      resolve({ name, code: code ?? 1, signal, timedOut, sums, seconds: (Date.now() - started) / 1000 });
    });
  });
}

async function main() {
  const results = [];
  const failures = [];
  for (const phase of wanted) {
    let files = withSource(findTests(path.join(DIST, phase)));
    if (only) files = files.filter((f) => f.includes(only));
    if (files.length === 0) {
      if (only) continue;
      failures.push(`no ${phase} tests found under dist/test/${phase} (did the build run?)`);
      continue;
    }
    if (phase === 'integration') {
      const problems = await integrationPrerequisites();
      if (problems.length) {
        const bar = '!'.repeat(78);
        console.error(`\n${bar}\n[run-tests] INTEGRATION PREREQUISITES MISSING: NOT RUNNING ${files.length} INTEGRATION TEST FILE(S)\n${problems.map((p) => `  - ${p}`).join('\n')}\nRun \`bash scripts/setup.sh --deps-only\` (as root) first.\n${bar}`);
        failures.push(`integration prerequisites missing: ${problems.join('; ')}`);
        // Counted as failures in the summary, so nothing reads this run as green.
        results.push({ name: `${phase} (NOT RUN: prerequisites missing)`, code: 1, sums: { tests: files.length, pass: 0, fail: files.length }, seconds: 0 });
        continue;
      }
    }
    const r = await runPhase(phase, files, phase === 'integration' ? ['--test-concurrency=1'] : []);
    results.push(r);
    if (r.timedOut) failures.push(`${phase} tests timed out`);
    else if (r.code !== 0) failures.push(`${phase} tests failed (exit ${r.code}${r.signal ? `, ${r.signal}` : ''})`);
    if (phase === 'integration' && (r.sums.skipped || 0) > 0) failures.push(`${r.sums.skipped} integration test(s) skipped: integration tests must run, not skip`);
    if (r.sums.tests === undefined) failures.push(`${phase}: no test summary (the runner crashed?)`);
  }

  console.log('\n[run-tests] summary');
  const total = {};
  for (const r of results) {
    console.log(`## ${r.name} (${r.seconds.toFixed(1)} s)`);
    for (const k of ['tests', 'suites', 'pass', 'fail', 'cancelled', 'skipped', 'todo']) {
      console.log(`# ${k} ${r.sums[k] ?? '?'}`);
      total[k] = (total[k] || 0) + (r.sums[k] || 0);
    }
  }
  if (results.length > 1) {
    console.log('## all');
    for (const k of ['tests', 'pass', 'fail', 'cancelled', 'skipped', 'todo']) console.log(`# ${k} ${total[k]}`);
  }
  if (failures.length) {
    console.error(`\n[run-tests] FAILED:\n${failures.map((f) => `  - ${f}`).join('\n')}`);
    process.exit(1);
  }
  console.log('\n[run-tests] all passed');
}

main().catch((err) => { console.error(err); process.exit(1); });
