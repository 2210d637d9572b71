import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../../src/common/log';
import { createRootCA, issueNodeCert, newJoinToken, type RootCA } from '../../../src/manager/ca/ca';
import { joinedManagers, requestMembership, withDefaultPort } from '../../../src/node/join';
import { describeCert, identityPaths, LocalIdentity, readIdentity, writeIdentity } from '../../../src/node/identity';
import { renewalDelayMs, startCertRenewal } from '../../../src/node/renewal';
import { grpcChannel, type NodeTls } from '../../../src/rpc/grpc';
import type { RpcChannel } from '../../../src/rpc/transport';
import type { Store } from '../../../src/store/store';
import { startCAServer, type CAServerFixture } from '../../helpers/ca-server-fixture';

const CLUSTER = 'clus000000000000000000001';
const HOUR_NS = 3600e9;

let ca: RootCA;
let store: Store;
let address: string;
let fixture: CAServerFixture;
const tmp = mkdtempSync(join(tmpdir(), 'shoal-node-'));

before(async () => {
  fixture = await startCAServer(CLUSTER, { nodeCertExpiryNs: 2 * HOUR_NS, managers: () => ({ leaderAddr: '10.0.0.1:2377', addrs: ['10.0.0.2:2377', '10.0.0.1:2377'] }), heartbeatMs: () => 10_000 });
  ({ ca, store, address } = fixture);
});

after(async () => {
  await fixture.close();
  rmSync(tmp, { recursive: true, force: true });
});

const tokens = (): { Worker: string; Manager: string } => fixture.tokens();

test('join over mutual TLS: CA checked against the token, certificate for our key, node in the store; then it is a node to the server', async () => {
  const m = await requestMembership({ remoteAddrs: ['127.0.0.1:1', address], token: tokens().Worker, advertiseAddr: '10.9.8.7', hostname: 'w9', availability: 'pause', timeoutMs: 10_000, log: silentLogger });
  assert.equal(m.role, 'worker');
  assert.equal(m.clusterId, CLUSTER);
  assert.equal(m.tls.caPem, ca.certPem);
  const d = describeCert(m.tls.certPem);
  assert.equal(d.nodeId, m.nodeId);
  const node = store.get('nodes', m.nodeId)!;
  assert.equal(node.Status.Addr, '10.9.8.7');
  assert.equal(node.Spec.Availability, 'pause');
  assert.equal(node.Description.Hostname, 'w9');
  // The managers the answer named, for the agent's first session.
  assert.deepEqual(m.managers, { leaderAddr: '10.0.0.1:2377', addrs: ['10.0.0.2:2377', '10.0.0.1:2377'] });
  // And the heartbeat interval, for its first connection's pings.
  assert.equal(m.heartbeatMs, 10_000);

  // On disk, then read back.
  const root = join(tmp, 'a');
  writeIdentity(root, m.tls);
  const p = identityPaths(root);
  assert.equal(statSync(p.nodeKey).mode & 0o777, 0o600);
  assert.equal(statSync(p.dir).mode & 0o777, 0o700);
  const back = readIdentity(root)!;
  assert.deepEqual(back, { nodeId: m.nodeId, clusterId: CLUSTER, role: 'worker', tls: m.tls });
  assert.equal(readIdentity(join(tmp, 'none')), undefined);
});

test('join refusals: Docker\'s texts for a malformed token, a wrong secret and a CA that is not the token\'s', async () => {
  const base = { remoteAddrs: [address], timeoutMs: 10_000, log: silentLogger };
  await assert.rejects(requestMembership({ ...base, token: 'SWMTKN-1-nope' }), /^Error: invalid join token$|invalid join token/);
  const t = tokens().Worker;
  const wrongSecret = t.slice(0, -25) + 'a'.repeat(25);
  await assert.rejects(requestMembership({ ...base, token: wrongSecret }), (e: Error) => e.message === 'rpc error: code = InvalidArgument desc = A valid join token is necessary to join this cluster');
  const other = await createRootCA();
  const otherToken = newJoinToken(other);
  await assert.rejects(requestMembership({ ...base, token: otherToken }), (e: Error) => /^remote CA does not match fingerprint\. Expected: [0-9a-f]{64}$/.test(e.message));
  await assert.rejects(requestMembership({ ...base, remoteAddrs: ['127.0.0.1:1'], token: t, timeoutMs: 2000 }), (e: Error & { kind?: string }) => e.kind === 'unavailable');
});

test('a new node looks for the managers the join named, and where it joined through when that is another address', () => {
  assert.deepEqual(joinedManagers(['10.0.0.2:2377', '10.0.0.1:2377'], ['10.0.0.1']), ['10.0.0.2:2377', '10.0.0.1:2377']);
  assert.deepEqual(joinedManagers(['10.0.0.2:2377'], ['swarm.example:2377']), ['10.0.0.2:2377', 'swarm.example:2377']);
  assert.deepEqual(joinedManagers(undefined, ['10.0.0.1', '10.0.0.3:4000']), ['10.0.0.1:2377', '10.0.0.3:4000']);
});

test('withDefaultPort', () => {
  assert.equal(withDefaultPort('10.0.0.1'), '10.0.0.1:2377');
  assert.equal(withDefaultPort('10.0.0.1:4000'), '10.0.0.1:4000');
  assert.equal(withDefaultPort('fe80::1'), '[fe80::1]:2377');
  assert.equal(withDefaultPort('[fe80::1]:5'), '[fe80::1]:5');
  assert.equal(withDefaultPort('manager1'), 'manager1:2377');
});

test('an interrupted renewal (new key, old certificate) is completed on read; a mismatch without the pending file is an error', async () => {
  const m = await requestMembership({ remoteAddrs: [address], token: tokens().Worker, timeoutMs: 10_000, log: silentLogger });
  const root = join(tmp, 'b');
  writeIdentity(root, m.tls);
  const p = identityPaths(root);
  const renewed = await issueNodeCert(ca, m.nodeId, 'worker', CLUSTER, 3 * HOUR_NS);
  // As if the daemon died between the two renames.
  writeFileSync(p.nodeKey, renewed.keyPem, { mode: 0o600 });
  writeFileSync(`${p.nodeCert}.tmp`, renewed.certPem);
  assert.equal(readIdentity(root)!.tls.certPem, renewed.certPem);
  assert.ok(!existsSync(`${p.nodeCert}.tmp`));
  writeFileSync(p.nodeKey, m.tls.keyPem);
  assert.throws(() => readIdentity(root), /does not belong/);
  assert.throws(() => writeIdentity(root, { ...m.tls, keyPem: renewed.keyPem }), /does not belong/);
});

test('renewal is due between 50% and 80% of the validity', () => {
  assert.equal(renewalDelayMs(0, 1000, 0, 0), 500);
  assert.equal(renewalDelayMs(0, 1000, 0, 1), 800);
  assert.equal(renewalDelayMs(0, 1000, 700, 0), 0);
  assert.equal(renewalDelayMs(0, 1000, 100, 0.5), 550);
});

test('renewal: due certificates renew by themselves; renewNow after a promotion brings the manager role; failures are bounded', async () => {
  const m = await requestMembership({ remoteAddrs: [address], token: tokens().Worker, timeoutMs: 10_000, log: silentLogger });
  const root = join(tmp, 'c');
  writeIdentity(root, m.tls);
  let tls = m.tls;
  const saved: NodeTls[] = [];
  let ch: RpcChannel | undefined;
  const channel = (): RpcChannel => (ch ??= grpcChannel(address, tls));
  let resolveSaved!: () => void;
  const firstSave = new Promise<void>((r) => { resolveSaved = r; });
  const d0 = describeCert(m.tls.certPem);
  // The clock says we are past 80% of the validity: renew at once.
  const r = startCertRenewal({
    identity: () => tls, channel, log: silentLogger, now: () => d0.validFrom + 0.9 * (d0.validTo - d0.validFrom),
    save: (next) => { writeIdentity(root, next); tls = next; saved.push(next); ch?.close(); ch = undefined; resolveSaved(); },
  });
  try {
    await firstSave;
    assert.equal(describeCert(saved[0].certPem).nodeId, m.nodeId);
    assert.notEqual(saved[0].keyPem, m.tls.keyPem, 'a new key each renewal');
    assert.equal(readIdentity(root)!.tls.certPem, saved[0].certPem);
  } finally {
    r.stop();
  }
  // docker node promote: the manager's store says manager now.
  await store.mutate('nodes', m.nodeId, (n) => { n.Spec.Role = 'manager'; return n; });
  const r2 = startCertRenewal({ identity: () => tls, channel, log: silentLogger, save: (next) => { tls = next; ch?.close(); ch = undefined; } });
  try {
    await r2.renewNow();
    assert.equal(describeCert(tls.certPem).role, 'manager');
    assert.equal(readIdentity(root)!.role, 'worker', 'save decides where it goes (here: memory only)');
  } finally {
    r2.stop();
  }
  // No manager reachable: a round of bounded attempts, then the error.
  const r3 = startCertRenewal({ identity: () => tls, channel: () => undefined, log: silentLogger, save: () => assert.fail('nothing to save'), retryDelaysMs: [10, 10] });
  try {
    await assert.rejects(r3.renewNow(), /no manager reachable/);
  } finally {
    r3.stop();
  }
  // A removed node is refused.
  await store.txn().delete('nodes', store.get('nodes', m.nodeId)!).commit();
  const r4 = startCertRenewal({ identity: () => tls, channel, log: silentLogger, save: () => assert.fail('nothing to save'), retryDelaysMs: [] });
  try {
    await assert.rejects(r4.renewNow(), /not found when attempting to renew certificate/);
  } finally {
    r4.stop();
    ch?.close();
  }
});

test('LocalIdentity: save writes to disk, then serves and announces the new identity; another node\'s identity is refused', async () => {
  const m = await requestMembership({ remoteAddrs: [address], token: tokens().Worker, timeoutMs: 10_000, log: silentLogger });
  const root = join(tmp, 'd');
  writeIdentity(root, m.tls);
  const local = new LocalIdentity(root, readIdentity(root)!);
  const seen: string[] = [];
  local.onChange((id) => seen.push(id.role));
  const promoted = await issueNodeCert(ca, m.nodeId, 'manager', CLUSTER, 3 * HOUR_NS);
  local.save({ caPem: ca.certPem, certPem: promoted.certPem, keyPem: promoted.keyPem });
  assert.equal(local.current.role, 'manager');
  assert.equal(local.tls().certPem, promoted.certPem);
  assert.equal(readIdentity(root)!.role, 'manager');
  assert.deepEqual(seen, ['manager']);
  const stranger = await issueNodeCert(ca, 'stranger00000000000000001', 'manager', CLUSTER, 3 * HOUR_NS);
  assert.throws(() => local.save({ caPem: ca.certPem, certPem: stranger.certPem, keyPem: stranger.keyPem }), /refusing to replace/);
  assert.equal(local.current.nodeId, m.nodeId);
});
