import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseHostLines, runLab } from '../../helpers/lab';
import { runDocker, waitFor, type DockerResult } from '../../helpers/daemon';
import { readKeyFile } from '../../../src/node/key-lock';
import { parseUnlockKey } from '../../../src/manager/ca/unlock-key';

// Autolock on three managers of a `shoal lab` (lab index 16), with the real
// docker CLI: init --autolock, two managers join (their keys get wrapped
// through the store), a manager's host powered off and on is locked, a wrong
// key is refused, unlock and it serves; unlock-key --rotate reaches the other
// managers, whose restart then needs the new key.
const INDEX = process.env.SHOAL_LAB_INDEX ?? '16';

interface Host { name: string; dockerHost: string; address: string }
const lab = (args: string[], timeoutMs = 240_000): Promise<DockerResult> => runLab(INDEX, args, timeoutMs);
const docker = (h: Host, args: string[], input?: string): Promise<DockerResult> => runDocker(h.dockerHost, args, { timeoutMs: 60_000, ...(input !== undefined ? { input } : {}) });
async function ok(h: Host, args: string[], input?: string): Promise<string> {
  const r = await docker(h, args, input);
  assert.equal(r.code, 0, `docker ${args.join(' ')} on ${h.name}: ${r.stderr}`);
  return r.stdout;
}
const keyOf = (out: string): string => { const m = /SWMKEY-1-[A-Za-z0-9+/]+/.exec(out); assert.ok(m, out); return m[0]; };
const FILES = ['swarm-node.key', 'etcd.key', 'swarm-secrets.key'];
// Every key file of the host opens with this key (and is wrapped).
const wrappedUnder = (h: Host, key: string): boolean => FILES.every((f) => {
  const path = `/var/lib/shoal-lab${INDEX}/hosts/${h.name}/shoal/certificates/${f}`;
  try { return readFileSync(path, 'utf8').startsWith('shoal-locked-key:') && readKeyFile(path, parseUnlockKey(key)) !== undefined; } catch { return false; }
});
const state = async (h: Host): Promise<string> => (await docker(h, ['info', '--format', '{{.Swarm.LocalNodeState}}'])).stdout.trim();
const threeManagers = (h: Host) => waitFor('three managers', async () => {
  const r = await docker(h, ['node', 'ls', '--format', '{{.ManagerStatus}}']);
  return r.code === 0 && JSON.stringify(r.stdout.trim().split('\n').sort()) === JSON.stringify(['Leader', 'Reachable', 'Reachable']);
}, 90_000, 500);

let hosts: Host[] = [];

before(async () => {
  await lab(['down']);
  const up = await lab(['up', '--hosts', '3', '--image', '']);
  assert.equal(up.code, 0, up.stderr);
  hosts = parseHostLines(up.stdout.split('\n').filter((l) => /^host\d/.test(l)).join('\n'));
  assert.equal(hosts.length, 3);
});

after(async () => { await lab(['down']); });

test('three managers under autolock: restart locked, wrong key refused, unlock; rotation reaches every manager', async () => {
  const [h1, h2, h3] = hosts as [Host, Host, Host];
  let key = keyOf(await ok(h1, ['swarm', 'init', '--autolock', '--advertise-addr', h1.address]));
  const m = /docker swarm join --token (\S+) (\S+)/.exec(await ok(h1, ['swarm', 'join-token', 'manager']));
  assert.ok(m);
  await ok(h2, ['swarm', 'join', '--token', m[1]!, m[2]!]);
  await ok(h3, ['swarm', 'join', '--token', m[1]!, m[2]!]);
  await threeManagers(h1);
  for (const h of hosts) await waitFor(`${h.name}'s keys wrapped`, async () => wrappedUnder(h, key), 20_000, 200);
  await ok(h1, ['secret', 'create', 'locked_secret', '-'], 's3cret');

  // A manager's host off and on: locked, the others keep serving.
  assert.equal((await lab(['kill', h2.name])).code, 0);
  assert.equal((await lab(['start', h2.name])).code, 0);
  await waitFor(`${h2.name} locked`, async () => (await state(h2)) === 'locked', 60_000, 500);
  assert.match((await docker(h2, ['node', 'ls'])).stderr, /Swarm is encrypted and needs to be unlocked before it can be used\. Please use "docker swarm unlock" to unlock it\./);
  assert.match(await ok(h1, ['secret', 'ls']), /locked_secret/);
  const wrong = 'SWMKEY-1-' + Buffer.alloc(32, 9).toString('base64').replace(/=+$/, '');
  const refused = await docker(h2, ['swarm', 'unlock'], `${wrong}\n`);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /swarm could not be unlocked: invalid key provided/);
  assert.equal(await state(h2), 'locked');
  await ok(h2, ['swarm', 'unlock'], `${key}\n`);
  assert.equal(await state(h2), 'active');
  await threeManagers(h2);
  assert.match(await ok(h2, ['secret', 'ls']), /locked_secret/);

  // Rotation on one manager reaches the others through the store.
  const next = keyOf(await ok(h2, ['swarm', 'unlock-key', '--rotate']));
  assert.notEqual(next, key);
  for (const h of hosts) await waitFor(`${h.name}'s keys under the new key`, async () => wrappedUnder(h, next), 20_000, 200);
  key = next;
  assert.equal((await lab(['kill', h3.name])).code, 0);
  assert.equal((await lab(['start', h3.name])).code, 0);
  await waitFor(`${h3.name} locked`, async () => (await state(h3)) === 'locked', 60_000, 500);
  await ok(h3, ['swarm', 'unlock'], `${key}\n`);
  await threeManagers(h3);
  assert.equal((await ok(h3, ['swarm', 'unlock-key', '-q'])).trim(), key);
});
