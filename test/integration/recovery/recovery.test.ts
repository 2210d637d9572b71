import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseHostLines, runLab, type LabHost } from '../../helpers/lab';
import { runDocker, SHOAL_MAIN, waitFor, type DockerResult } from '../../helpers/daemon';

// Recovery on `shoal lab`s with the real docker CLI (issue 10, item 2).
// Lab A (SHOAL_LAB_INDEX, 18 by default): three managers and two workers, a
// service with a secret, a config and an overlay network; two managers powered
// off for good, writes fail, `docker swarm init --force-new-cluster` on the
// third brings everything back, a write succeeds, the worker's tasks kept
// running, a fresh node joins as a manager. Then `shoal backup` there, and
// `shoal restore` on lab B (RESTORE_LAB_INDEX, 19 by default), hosts in no
// swarm: bad files and a host already in a swarm refused with nothing
// changed, then the swarm back with its tokens, a task reading its secret,
// and a worker joining with the old token.
const LAB_A = process.env.SHOAL_LAB_INDEX ?? '18';
const LAB_B = process.env.RESTORE_LAB_INDEX ?? '19';
const IMAGE = 'shoal-test/busybox:1';
const SECRET = 'recovery-secret-value';

const docker = (h: LabHost, args: string[], input?: string): Promise<DockerResult> =>
  runDocker(h.dockerHost, args, { timeoutMs: 60_000, ...(input !== undefined ? { input } : {}) });

async function ok(h: LabHost, args: string[], input?: string): Promise<string> {
  const r = await docker(h, args, input);
  assert.equal(r.code, 0, `docker ${args.join(' ')} on ${h.name}: ${r.stderr}`);
  return r.stdout;
}

// `shoal backup|restore ARGS` against a lab host's daemon; never rejects.
function shoal(h: LabHost, args: string[]): Promise<DockerResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [SHOAL_MAIN, args[0]!, '-H', h.dockerHost, ...args.slice(1)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('close', (code) => { clearTimeout(timer); resolve({ code: code ?? -1, stdout, stderr }); });
  });
}

// A join inside `lab up` can fail on a loaded machine (seen: a worker's join
// refused with "update out of sequence"); the lab is made again once.
async function up(index: string, args: string[]): Promise<LabHost[]> {
  let r: DockerResult | undefined;
  for (let attempt = 0; attempt < 2; attempt++) {
    await runLab(index, ['down']);
    r = await runLab(index, ['up', ...args], 400_000);
    if (r.code === 0) return parseHostLines(r.stdout);
    console.log(`lab ${index} up failed (attempt ${attempt + 1}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  }
  assert.fail(`lab up: ${r!.stderr}`);
}

// Service web's running tasks: task ID -> node hostname.
async function runningTasks(h: LabHost): Promise<Map<string, string>> {
  const out = await ok(h, ['service', 'ps', 'web', '--filter', 'desired-state=running', '--format', '{{.ID}} {{.Node}} {{.CurrentState}}']);
  const m = new Map<string, string>();
  for (const l of out.trim().split('\n').filter(Boolean)) {
    const [id, node, state] = l.trim().split(/\s+/);
    if (state === 'Running') m.set(id!, node!);
  }
  return m;
}

const replicas = async (h: LabHost): Promise<string> => (await ok(h, ['service', 'ls', '--filter', 'name=web', '--format', '{{.Replicas}}'])).trim();
const names = async (h: LabHost, what: string): Promise<string> => (await ok(h, [what, 'ls', '--format', '{{.Name}}'])).trim();

let a: LabHost[] = [];
let b: LabHost[] = [];
const dir = mkdtempSync(join(tmpdir(), 'shoal-recovery-'));

before(async () => {
  a = await up(LAB_A, ['--hosts', '5', '--managers', '3', '--workers', '2']);
  assert.equal(a.length, 5);
});

after(async () => {
  const keep = process.env.KEEP_LAB_LOGS;
  if (keep) {
    for (const [index, hosts] of [[LAB_A, a], [LAB_B, b]] as const) {
      for (const h of hosts) { try { copyFileSync(`/var/lib/shoal-lab${index}/hosts/${h.name}/shoal.log`, `${keep}/lab${index}-${h.name}.log`); } catch { /* not there */ } }
    }
  }
  await runLab(LAB_A, ['down']);
  await runLab(LAB_B, ['down']);
  rmSync(dir, { recursive: true, force: true });
});

let workerToken = '';
let clusterId = '';

test('force-new-cluster: quorum lost, one surviving manager brings the swarm back', async () => {
  const [h1, h2, h3, h4, h5] = a as [LabHost, LabHost, LabHost, LabHost, LabHost];
  await ok(h1, ['network', 'create', '-d', 'overlay', 'net1']);
  await ok(h1, ['secret', 'create', 's1', '-'], SECRET);
  await ok(h1, ['config', 'create', 'c1', '-'], 'config-body');
  await ok(h1, ['service', 'create', '--detach', '--name', 'web', '--replicas', '5', '--network', 'net1', '--secret', 's1', '--config', 'c1',
    IMAGE, 'sh', '-c', 'cat /run/secrets/s1; echo; sleep 100000']);
  await waitFor('web 5/5', async () => (await replicas(h1)) === '5/5', 120_000, 1_000);
  workerToken = (await ok(h1, ['swarm', 'join-token', '-q', 'worker'])).trim();
  clusterId = (await ok(h1, ['info', '--format', '{{.Swarm.Cluster.ID}}'])).trim();
  const before = await runningTasks(h3);
  const onWorker = [...before].filter(([, node]) => node === h4.name).map(([id]) => id);
  assert.ok(onWorker.length >= 1, `a task on the worker ${h4.name}: ${JSON.stringify([...before])}`);

  // Two of three managers gone for good: no quorum, writes refused.
  for (const h of [h1, h2]) { const r = await runLab(LAB_A, ['kill', h.name]); assert.equal(r.code, 0, r.stderr); }
  await waitFor('quorum loss seen on host3', async () => (await ok(h3, ['info', '--format', '{{.Swarm.ControlAvailable}}'])).trim() === 'false', 30_000, 500);
  const refused = await docker(h3, ['secret', 'create', 'refused', '-'], 'x');
  assert.notEqual(refused.code, 0, refused.stdout);
  assert.match(refused.stderr, /does not have a leader/);

  const started = Date.now();
  const init = await docker(h3, ['swarm', 'init', '--force-new-cluster', '--advertise-addr', h3.address]);
  assert.equal(init.code, 0, init.stderr);
  console.log(`force-new-cluster answered in ${Date.now() - started} ms`);
  assert.equal((await ok(h3, ['info', '--format', '{{.Swarm.Cluster.ID}}'])).trim(), clusterId);
  assert.equal(await names(h3, 'service'), 'web');
  assert.equal(await names(h3, 'secret'), 's1');
  assert.equal(await names(h3, 'config'), 'c1');
  assert.match(await names(h3, 'network'), /^net1$/m);
  assert.equal((await ok(h3, ['swarm', 'join-token', '-q', 'worker'])).trim(), workerToken);
  await waitFor('a write after force-new-cluster', async () => (await docker(h3, ['secret', 'create', 's2', '-'], 'x')).code === 0, 30_000, 500);
  console.log(`first write ${Date.now() - started} ms after force-new-cluster started`);

  // This node leads; the lost managers stay listed as managers, unreachable (as Docker's).
  const status = await waitFor(`${h3.name} Leader`, async () => {
    const out = await ok(h3, ['node', 'ls', '--format', '{{.Hostname}} {{.ManagerStatus}}']);
    return new RegExp(`^${h3.name} Leader$`, 'm').test(out) ? out : undefined;
  }, 15_000, 250);
  assert.match(status, new RegExp(`^${h1.name} Unreachable$`, 'm'));
  assert.match(status, new RegExp(`^${h2.name} Unreachable$`, 'm'));

  // The worker's tasks kept running and are counted; the lost hosts' tasks are replaced.
  await waitFor('web 5/5 again, lost hosts\' tasks replaced', async () => {
    const now = await runningTasks(h3);
    return now.size === 5 && [...now.values()].every((n) => n !== h1.name && n !== h2.name) && (await replicas(h3)) === '5/5';
  }, 120_000, 1_000);
  const after = await runningTasks(h3);
  for (const id of onWorker) assert.equal(after.get(id), h4.name, `worker task ${id} still running on ${h4.name}`);

  // The lost managers can be cleared as Docker allows (they are no etcd members).
  await ok(h3, ['node', 'demote', h1.name]);

  // A fresh node joins as a manager with the manager token.
  const mgr = await ok(h3, ['swarm', 'join-token', 'manager']);
  const m = /docker swarm join --token (\S+) (\S+)/.exec(mgr);
  assert.ok(m, mgr);
  await ok(h5, ['swarm', 'leave']);
  assert.match(await ok(h5, ['swarm', 'join', '--token', m[1]!, m[2]!]), /This node joined a swarm as a manager/);
  await waitFor('host5 a reachable manager', async () => new RegExp(`^${h5.name} Reachable$`, 'm').test(await ok(h3, ['node', 'ls', '--format', '{{.Hostname}} {{.ManagerStatus}}'])), 60_000, 1_000);
  await waitFor('a write with two managers', async () => (await docker(h5, ['config', 'create', 'c2', '-'], 'y')).code === 0, 30_000, 500);
});

test('backup on a running manager, refused restores change nothing, restore on a fresh host', async () => {
  const h3 = a[2]!;
  const file = join(dir, 'swarm.backup');
  const bk = await shoal(h3, ['backup', file]);
  assert.equal(bk.code, 0, bk.stderr);
  assert.equal(statSync(file).mode & 0o777, 0o600);

  // A host already in a swarm is refused, and keeps its swarm.
  const busy = await shoal(h3, ['restore', file]);
  assert.equal(busy.code, 1);
  assert.match(busy.stderr, /already part of a swarm/);
  assert.equal(await names(h3, 'service'), 'web');

  b = await up(LAB_B, ['--hosts', '2']);
  const [g1, g2] = b as [LabHost, LabHost];
  const data = readFileSync(file);
  const bad: Array<[string, Buffer, RegExp]> = [
    ['truncated', data.subarray(0, data.length - 100), /truncated/],
    ['corrupt', Buffer.concat([data.subarray(0, data.length - 10), Buffer.from('0123456789')]), /checksum does not match/],
    ['version', Buffer.concat([Buffer.from('SHOAL-BACKUP 9'), data.subarray('SHOAL-BACKUP 1'.length)]), /format version 9 is not supported/],
  ];
  for (const [what, bytes, msg] of bad) {
    const p = join(dir, `${what}.backup`);
    writeFileSync(p, bytes);
    const r = await shoal(g1, ['restore', p]);
    assert.equal(r.code, 1, `${what}: ${r.stdout}`);
    assert.match(r.stderr, msg);
    assert.equal((await ok(g1, ['info', '--format', '{{.Swarm.LocalNodeState}}'])).trim(), 'inactive', `${what}: nothing changed`);
  }

  const started = Date.now();
  const r = await shoal(g1, ['restore', file]);
  assert.equal(r.code, 0, r.stderr);
  console.log(`restore answered in ${Date.now() - started} ms`);
  assert.equal((await ok(g1, ['info', '--format', '{{.Swarm.Cluster.ID}}'])).trim(), clusterId);
  assert.equal((await ok(g1, ['swarm', 'join-token', '-q', 'worker'])).trim(), workerToken);
  assert.equal(await names(g1, 'service'), 'web');
  assert.equal(await names(g1, 'secret'), 's1\ns2');
  assert.equal(await names(g1, 'config'), 'c1\nc2');
  assert.match(await names(g1, 'network'), /^net1$/m);

  // The old nodes are marked down and web's tasks come to this host; one reads its secret.
  const container = await waitFor('a web task running on the restored host', async () => {
    const id = (await ok(g1, ['ps', '-q', '--filter', 'label=com.docker.swarm.service.name=web'])).trim().split('\n')[0];
    return id || undefined;
  }, 120_000, 1_000);
  await waitFor('the task printed its secret', async () => (await ok(g1, ['logs', container])).includes(SECRET), 30_000, 500);

  // A worker joins with the old token.
  assert.match(await ok(g2, ['swarm', 'join', '--token', workerToken, `${g1.address}:2377`]), /This node joined a swarm as a worker/);
  await waitFor('the worker ready', async () => new RegExp(`^${g2.name} Ready$`, 'm').test(await ok(g1, ['node', 'ls', '--format', '{{.Hostname}} {{.Status}}'])), 60_000, 1_000);
});
