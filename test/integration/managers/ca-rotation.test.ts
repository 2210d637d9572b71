import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseHostLines, runLab } from '../../helpers/lab';
import { runDocker, waitFor, type DockerResult } from '../../helpers/daemon';
import { createRootCA } from '../../../src/manager/ca/ca';
import { pemCertificates, signedBy } from '../../../src/node/identity';

// Root CA rotation on a `shoal lab` (lab index 20) with the real docker CLI:
// three managers, a worker, a running service. `docker swarm ca --rotate`
// waits until every node holds a certificate of the new root; nothing
// restarts meanwhile; the join tokens then name the new root and a fifth host
// joins with one; a manager powered off and on comes back. Then a root the
// user gives (--ca-cert, --ca-key, --detach), and bad input changes nothing.
const INDEX = process.env.SHOAL_LAB_INDEX ?? '20';

interface Host { name: string; dockerHost: string; address: string }
const lab = (args: string[], timeoutMs = 300_000): Promise<DockerResult> => runLab(INDEX, args, timeoutMs);
const docker = (h: Host, args: string[], timeoutMs = 60_000): Promise<DockerResult> => runDocker(h.dockerHost, args, { timeoutMs });
async function ok(h: Host, args: string[], timeoutMs?: number): Promise<string> {
  const r = await docker(h, args, timeoutMs);
  assert.equal(r.code, 0, `docker ${args.join(' ')} on ${h.name}: ${r.stderr}`);
  return r.stdout;
}
const certDir = (h: Host): string => `/var/lib/shoal-lab${INDEX}/hosts/${h.name}/shoal/certificates`;
const pemOf = (s: string): string => pemCertificates(s).join('\n');
const nodesReady = (h: Host, n: number) => waitFor(`${n} nodes ready`, async () => {
  const r = await docker(h, ['node', 'ls', '--format', '{{.Status}}']);
  return r.code === 0 && r.stdout.trim().split('\n').filter((l) => l === 'Ready').length === n;
}, 120_000, 500);
const managersReachable = (h: Host) => waitFor('three managers reachable', async () => {
  const r = await docker(h, ['node', 'ls', '--format', '{{.ManagerStatus}}']);
  return r.code === 0 && JSON.stringify(r.stdout.trim().split('\n').filter(Boolean).sort()) === JSON.stringify(['Leader', 'Reachable', 'Reachable']);
}, 120_000, 500);
// Every node's TLSInfo: the root and the issuer the swarm names.
async function nodesOn(h: Host, root: string): Promise<boolean> {
  const ids = (await ok(h, ['node', 'ls', '-q'])).trim().split('\n');
  const nodes = JSON.parse(await ok(h, ['node', 'inspect', ...ids])) as Array<{ Description: { TLSInfo: { TrustRoot: string } } }>;
  return nodes.every((n) => pemOf(n.Description.TLSInfo.TrustRoot) === pemOf(root));
}
const inProgress = async (h: Host): Promise<boolean> => (await ok(h, ['info', '--format', '{{.Swarm.Cluster.RootRotationInProgress}}'])).trim() === 'true';
const runningTasks = async (h: Host): Promise<string[]> => (await ok(h, ['service', 'ps', '-q', '--filter', 'desired-state=running', 'keep'])).trim().split('\n').sort();

let hosts: Host[] = [];
let tmp = '';

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'shoal-ca-'));
  await lab(['down']);
  const up = await lab(['up', '--hosts', '5']);
  assert.equal(up.code, 0, up.stderr);
  hosts = parseHostLines(up.stdout.split('\n').filter((l) => /^host\d/.test(l)).join('\n'));
  assert.equal(hosts.length, 5);
});

after(async () => { await lab(['down']); rmSync(tmp, { recursive: true, force: true }); });

test('docker swarm ca --rotate on three managers and a worker: every node moves to the new root, nothing restarts', async () => {
  const [h1, h2, h3, h4, h5] = hosts as [Host, Host, Host, Host, Host];
  await ok(h1, ['swarm', 'init', '--advertise-addr', h1.address]);
  const manager = /docker swarm join --token (\S+) (\S+)/.exec(await ok(h1, ['swarm', 'join-token', 'manager']))!;
  const worker = /docker swarm join --token (\S+) (\S+)/.exec(await ok(h1, ['swarm', 'join-token', 'worker']))!;
  await ok(h2, ['swarm', 'join', '--token', manager[1]!, manager[2]!]);
  await ok(h3, ['swarm', 'join', '--token', manager[1]!, manager[2]!]);
  await ok(h4, ['swarm', 'join', '--token', worker[1]!, worker[2]!]);
  await managersReachable(h1);
  await nodesReady(h1, 4);
  await ok(h1, ['service', 'create', '--detach', '--name', 'keep', '--replicas', '4', 'shoal-test/busybox:1', 'sleep', '100000']);
  const tasks = await waitFor('4 tasks running', async () => {
    const r = await docker(h1, ['service', 'ps', '--no-trunc', '--format', '{{.ID}} {{.CurrentState}}', '--filter', 'desired-state=running', 'keep']);
    const lines = r.stdout.trim().split('\n').filter((l) => / Running /.test(l));
    return r.code === 0 && lines.length === 4 ? lines.map((l) => l.split(' ')[0]!).sort() : undefined;
  }, 120_000, 500);

  const oldRoot = pemOf(await ok(h1, ['swarm', 'ca']));
  assert.equal(pemCertificates(oldRoot).length, 1);
  const oldWorkerToken = worker[1]!;

  // The rotation, waited for by the CLI (its progress bars, then the new root).
  const t0 = Date.now();
  const out = await ok(h2, ['swarm', 'ca', '--rotate'], 240_000);
  const seconds = (Date.now() - t0) / 1000;
  console.log(`# docker swarm ca --rotate (3 managers, 1 worker) took ${seconds.toFixed(1)} s`);
  assert.match(out, /rotated TLS certificates/);
  const newRoot = pemOf(out);
  assert.equal(pemCertificates(newRoot).length, 1);
  assert.notEqual(newRoot, oldRoot);
  assert.equal(pemOf(await ok(h3, ['swarm', 'ca'])), newRoot);
  assert.equal(await inProgress(h1), false);
  assert.ok(await nodesOn(h1, newRoot), 'every node reports the new root');

  // On every host: the node trusts the new root alone, its certificate comes
  // from it, and the old root verifies none of it.
  for (const h of [h1, h2, h3, h4]) {
    await waitFor(`${h.name} holds the new root alone`, async () => pemOf(readFileSync(join(certDir(h), 'swarm-root-ca.crt'), 'utf8')) === newRoot, 30_000, 200);
    const cert = readFileSync(join(certDir(h), 'swarm-node.crt'), 'utf8');
    assert.ok(signedBy(cert, newRoot), `${h.name}: certificate of the new root`);
    assert.ok(!signedBy(pemCertificates(cert)[0]!, oldRoot), `${h.name}: the old root verifies nothing new`);
  }
  // etcd's certificates too (managers).
  for (const h of [h1, h2, h3]) assert.ok(signedBy(readFileSync(join(certDir(h), 'etcd.crt'), 'utf8'), newRoot), `${h.name}: etcd certificate`);

  // Nothing restarted.
  assert.deepEqual(await runningTasks(h1), tasks);
  assert.equal((await ok(h1, ['service', 'ps', '-q', 'keep'])).trim().split('\n').length, 4, 'no task was replaced');

  // Join tokens name the new root: the old one is refused, the new one works.
  const newWorker = /docker swarm join --token (\S+) (\S+)/.exec(await ok(h1, ['swarm', 'join-token', 'worker']))!;
  assert.notEqual(newWorker[1], oldWorkerToken);
  assert.equal(newWorker[1]!.split('-')[3], oldWorkerToken.split('-')[3], 'same secret, new digest');
  const refused = await docker(h5, ['swarm', 'join', '--token', oldWorkerToken, newWorker[2]!]);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /remote CA does not match fingerprint/);
  await ok(h5, ['swarm', 'join', '--token', newWorker[1]!, newWorker[2]!]);
  await nodesReady(h1, 5);

  // A manager powered off and on after the rotation comes back.
  assert.equal((await lab(['kill', h2.name])).code, 0);
  assert.equal((await lab(['start', h2.name])).code, 0);
  await managersReachable(h2);
  await nodesReady(h2, 5);
  assert.match(await ok(h2, ['node', 'ls']), /Leader/);
  // The power-off killed the task on that host: the service is whole again (4 running).
  await waitFor('4 tasks running after the power cycle', async () => (await runningTasks(h2)).length === 4, 120_000, 500);
});

test('a root the user gives (--ca-cert, --ca-key, --detach); bad input refused, nothing changed', async () => {
  const [h1, h2] = hosts as [Host, Host];
  const before = pemOf(await ok(h1, ['swarm', 'ca']));
  const given = await createRootCA();
  const other = await createRootCA();
  const file = (name: string, text: string): string => { const p = join(tmp, name); writeFileSync(p, text); return p; };
  const cert = file('ca.crt', given.certPem);
  const key = file('ca.key', given.keyPem);
  const otherKey = file('other.key', other.keyPem);

  const noKey = await docker(h1, ['swarm', 'ca', '--rotate', '--ca-cert', cert]);
  assert.notEqual(noKey.code, 0);
  assert.match(noKey.stderr, /the --ca-cert flag requires that a --ca-key flag and\/or --external-ca flag be provided as well/);
  const mismatch = await docker(h1, ['swarm', 'ca', '--rotate', '--ca-cert', cert, '--ca-key', otherKey]);
  assert.notEqual(mismatch.code, 0);
  assert.match(mismatch.stderr, /certificate key mismatch/);
  const external = await docker(h1, ['swarm', 'ca', '--rotate', '--external-ca', 'protocol=cfssl,url=https://127.0.0.1:9', '--ca-cert', cert]);
  assert.notEqual(external.code, 0);
  assert.match(external.stderr, /external CA/);
  assert.equal(pemOf(await ok(h1, ['swarm', 'ca'])), before);
  assert.equal(await inProgress(h1), false);

  const t0 = Date.now();
  assert.equal((await ok(h2, ['swarm', 'ca', '--rotate', '--detach', '--ca-cert', cert, '--ca-key', key])).trim(), '');
  await waitFor('the given root everywhere', async () => {
    return !(await inProgress(h1)) && pemOf(await ok(h1, ['swarm', 'ca'])) === pemOf(given.certPem) && await nodesOn(h1, given.certPem);
  }, 180_000, 500);
  console.log(`# rotation to a given root (--detach, 5 nodes) converged in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  assert.equal(pemOf(await ok(h1, ['swarm', 'ca', '-q'])), pemOf(given.certPem));
  await managersReachable(h1);
});
