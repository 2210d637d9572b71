import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { startShoal, type ShoalHandle } from '../../helpers/daemon';
import { SecretBox } from '../../../src/manager/controlapi/secret-box';
import { openCAKey } from '../../../src/manager/ca/ca-key';
import type { ClusterObject } from '../../../src/store/objects';
import { unpackValue } from '../../../src/store/value-packing';

interface Run { code: number; out: string }

// A command as the unprivileged user nobody (no supplementary groups), bounded.
function asNobody(cmd: string[], timeoutMs = 15_000): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', '--', ...cmd], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/' } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => { clearTimeout(t); resolve({ code: code ?? 128, out }); });
  });
}

// What an HTTP(S) client without a certificate gets from each URL argument:
// one line "URL STATUS n BODY" or "URL ERR msg".
const PROBE = `
const one = (url) => new Promise((done) => {
  const lib = require(url.startsWith('https') ? 'https' : 'http');
  const req = lib.request(url, { method: 'POST', rejectUnauthorized: false, timeout: 4000, headers: { 'content-type': 'application/json' } }, (res) => {
    let b = ''; res.on('data', (d) => { b += d; }); res.on('end', () => { console.log(url, 'STATUS', res.statusCode, b.slice(0, 300).replace(/\\n/g, ' ')); done(); });
  });
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', (e) => { console.log(url, 'ERR', e.code || e.message); done(); });
  req.end('{"key":"Lw==","range_end":"AA=="}');
});
(async () => { for (const u of process.argv.slice(1)) await one(u); })();
`;

const mode = (p: string): number => statSync(p).mode & 0o777;

describe('etcd and the keys are root-only', () => {
  let shoal: ShoalHandle;
  const ok = async (args: string[], input?: string) => {
    const r = await shoal.docker(args, input === undefined ? {} : { input });
    assert.equal(r.code, 0, `docker ${args.join(' ')}: ${r.stderr}${r.stdout}`);
    return r.stdout;
  };
  const certs = () => join(shoal.dataRoot, 'certificates');
  // etcd's values as stored (packed, store/value-packing.ts), and as text.
  const storedValues = async (prefix: string): Promise<Array<{ key: string; stored: Buffer; text: string }>> => {
    const kvs = await shoal.etcdClient().getAll().prefix(prefix).buffers();
    return Object.entries(kvs).map(([key, stored]) => {
      const r = unpackValue(stored);
      assert.ok(r.ok, `${key}: ${r.ok ? '' : r.problem}`);
      return { key, stored, text: r.value };
    });
  };
  const clusterKey = async (): Promise<{ key: string; cluster: ClusterObject }> => {
    const [{ key, text }] = await storedValues('/shoal/v1/o/cluster/');
    return { key: key!, cluster: JSON.parse(text!) as ClusterObject };
  };

  before(async () => {
    shoal = await startShoal({ hostname: 'locked-down' });
    await ok(['swarm', 'init']);
    await ok(['secret', 'create', 'db_pass', '-'], 'hunter2');
    await ok(['config', 'create', 'app_conf', '-'], 'a=1');
    // The harness's temp dir is 0700 itself: open it, so the data root's own modes are what is tested.
    chmodSync(shoal.dir, 0o755);
  });
  after(async () => { await shoal?.cleanup(); });

  test('nobody gets nothing from etcd\'s client and peer URLs', async () => {
    for (const url of [shoal.etcdClientUrl, shoal.etcdPeerUrl]) {
      const ctl = await asNobody(['etcdctl', '--endpoints', url, '--insecure-skip-tls-verify', '--dial-timeout', '1s', '--command-timeout', '2s', 'get', '--prefix', '/shoal']);
      assert.notEqual(ctl.code, 0, `etcdctl on ${url} without a certificate: ${ctl.out}`);
      assert.doesNotMatch(ctl.out, /shoal\/v1|PRIVATE KEY|SWMTKN/);
      const plain = await asNobody(['etcdctl', '--endpoints', url.replace('https:', 'http:'), '--dial-timeout', '1s', '--command-timeout', '2s', 'get', '--prefix', '/shoal']);
      assert.notEqual(plain.code, 0, `etcdctl over plain http on ${url}: ${plain.out}`);
      assert.doesNotMatch(plain.out, /shoal\/v1/);
      const targets = ['/v3/kv/range', '/members', '/version', '/health'].flatMap((path) => [url + path, url.replace('https:', 'http:') + path]);
      const raw = await asNobody([process.execPath, '-e', PROBE, ...targets]);
      const lines = raw.out.trim().split('\n').filter((l) => l.startsWith('http'));
      assert.equal(lines.length, targets.length, raw.out);
      for (const line of lines) {
        assert.doesNotMatch(line, /STATUS 200/, `answered a client without a certificate: ${line}`);
        assert.match(line, /^\S+ (ERR|STATUS 400)/, line);
      }
    }
    // The daemon's own certificate does get in (the check above can fail).
    const { cluster } = await clusterKey();
    assert.ok(cluster.ID);
  });

  test('with autolock off there is no unlock key to print and nothing to unlock (autolock itself: autolock.test.ts)', async () => {
    assert.equal((await shoal.api('GET', '/v1.41/swarm')).json.Spec.EncryptionConfig.AutoLockManagers, false);
    const key = await shoal.docker(['swarm', 'unlock-key']);
    assert.notEqual(key.code, 0);
    assert.match(key.stderr, /no unlock key is set/);
    assert.doesNotMatch(key.stdout, /SWMKEY|docker swarm unlock/);
    assert.deepEqual((await shoal.api('GET', '/v1.41/swarm/unlockkey')).json, { UnlockKey: '' });
    const unlock = await shoal.docker(['swarm', 'unlock']);
    assert.notEqual(unlock.code, 0);
    assert.match(unlock.stderr, /swarm is not locked/);
    const api = await shoal.api('POST', '/v1.41/swarm/unlock', { UnlockKey: 'SWMKEY-1-x' });
    assert.equal(api.status, 409);
    assert.equal(api.json.message, 'swarm is not locked');
  });

  test('nobody cannot list or read the data root, its logs or its keys', async () => {
    const root = shoal.dataRoot;
    assert.equal(mode(root), 0o700);
    assert.equal(mode(certs()), 0o700);
    assert.equal(mode(join(root, 'etcd')), 0o700);
    assert.equal(mode(join(root, 'etcd.log')), 0o600);
    for (const f of ['swarm-node.key', 'etcd.key', 'swarm-secrets.key']) assert.equal(mode(join(certs(), f)), 0o600, f);
    const ls = await asNobody(['ls', root]);
    assert.notEqual(ls.code, 0);
    assert.match(ls.out, /Permission denied/);
    for (const f of [join(root, 'etcd.log'), join(certs(), 'swarm-node.key'), join(certs(), 'etcd.key'), join(certs(), 'swarm-secrets.key'), join(root, 'etcd', 'member-data', 'member', 'snap', 'db')]) {
      const cat = await asNobody(['cat', f]);
      assert.notEqual(cat.code, 0, `nobody read ${f}`);
      assert.match(cat.out, /Permission denied/);
    }
  });

  test('no private key is readable in etcd\'s values; the CA key is sealed', async () => {
    const all = await storedValues('/');
    assert.ok(all.length > 3, 'the dump does read the state');
    // Packed on the way in: the big values (the cluster object's certificates) are not kept as text.
    const stored = all.find((kv) => kv.key.startsWith('/shoal/v1/o/cluster/'))!;
    assert.deepEqual([stored.stored[0], stored.stored[1]], [0x00, 0x01]);
    assert.ok(stored.stored.length < Buffer.byteLength(stored.text), `cluster object stored in ${stored.stored.length} of ${Buffer.byteLength(stored.text)} bytes`);
    for (const { key, text } of all) assert.doesNotMatch(text, /BEGIN (EC )?PRIVATE KEY|hunter2/, key);
    const { cluster } = await clusterKey();
    assert.match(cluster.SealedCAKey ?? '', /^v1:/);
    assert.equal(cluster.CAKey, undefined);
  });

  test('modes are made tight again on start, whatever was there', async () => {
    await shoal.stop();
    chmodSync(shoal.dataRoot, 0o755);
    chmodSync(certs(), 0o755);
    chmodSync(join(shoal.dataRoot, 'etcd.log'), 0o644);
    chmodSync(join(certs(), 'swarm-node.key'), 0o644);
    chmodSync(join(certs(), 'swarm-secrets.key'), 0o644);
    await shoal.restart();
    assert.equal(mode(shoal.dataRoot), 0o700);
    assert.equal(mode(certs()), 0o700);
    assert.equal(mode(join(shoal.dataRoot, 'etcd.log')), 0o600);
    assert.equal(mode(join(certs(), 'swarm-node.key')), 0o600);
    assert.equal(mode(join(certs(), 'swarm-secrets.key')), 0o600);
  });

  test('a swarm of the earlier release (clear CA key, no etcd certificate, http peer URL) starts, keeps its state, and is migrated', async () => {
    const { key, cluster } = await clusterKey();
    const dataKey = Buffer.from(readFileSync(join(certs(), 'swarm-secrets.key'), 'utf8').trim(), 'base64');
    const caKeyPem = openCAKey(new SecretBox(dataKey), cluster);
    const old: ClusterObject = { ...cluster, CAKey: caKeyPem };
    delete old.SealedCAKey;
    delete (old as Partial<ClusterObject>).Version;
    const client = shoal.etcdClient();
    await client.put(key).value(JSON.stringify(old));
    const members = await client.cluster.memberList({});
    await client.cluster.memberUpdate({ ID: members.members[0]!.ID, peerURLs: [shoal.etcdPeerUrl.replace('https:', 'http:')] });
    await shoal.stop();
    rmSync(join(certs(), 'etcd.crt'));
    rmSync(join(certs(), 'etcd.key'));
    rmSync(join(shoal.dataRoot, 'etcd', 'identity.json'));

    await shoal.restart();
    assert.match(await ok(['secret', 'ls']), /db_pass/);
    assert.match(await ok(['config', 'ls']), /app_conf/);
    const after = (await clusterKey()).cluster;
    assert.equal(after.CAKey, undefined, 'the clear CA key is gone from etcd');
    assert.equal(openCAKey(new SecretBox(dataKey), after), caKeyPem, 'sealed, it is the same key');
    const peer = (await shoal.etcdClient().cluster.memberList({})).members[0]!.peerURLs;
    // The peer URL is now on the node's advertise address (peers on other hosts dial it), same port.
    assert.equal(peer.length, 1);
    assert.match(peer[0]!, new RegExp(`^https://[\\d.]+:${new URL(shoal.etcdPeerUrl).port}$`));
    assert.ok(existsSync(join(certs(), 'etcd.crt')));
    assert.equal(mode(join(certs(), 'etcd.key')), 0o600);
  });

  test('a missing data key is a clear start error, never silently made again', async () => {
    await shoal.stop();
    const keyPath = join(certs(), 'swarm-secrets.key');
    const aside = join(shoal.dataRoot, 'key-aside');
    renameSync(keyPath, aside);
    await assert.rejects(shoal.restart(), /data key .*swarm-secrets\.key is missing but the CA key and 1 secret\(s\) in etcd are sealed with it/);
    assert.equal(existsSync(keyPath), false, 'no new key was made');
    assert.ok(!readdirSync(certs()).includes('swarm-secrets.key.tmp'));
    renameSync(aside, keyPath);
    await shoal.restart();
    const info = await shoal.api('GET', '/v1.41/info');
    assert.equal(info.json.Swarm.ControlAvailable, true);
  });
});
