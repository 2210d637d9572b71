import { test } from 'node:test';
import assert from 'node:assert/strict';
import { webcrypto, X509Certificate } from 'node:crypto';
import { silentLogger } from '../../../src/common/log';
import { newKeyAndCSR, x509lib } from '../../../src/common/x509';
import { certSubjectFields, createRootCA, newJoinToken } from '../../../src/manager/ca/ca';
import { registerCAServer, splitAddr } from '../../../src/manager/ca/ca-server';
import { ClusterApi, defaultSwarmSpec } from '../../../src/manager/controlapi/cluster';
import { SecretBox } from '../../../src/manager/controlapi/secret-box';
import { GetRootCACertificate, IssueNodeCertificate, RenewNodeCertificate, WRONG_JOIN_TOKEN } from '../../../src/protocol/ca';
import { MemoryNetwork } from '../../../src/rpc/memory';
import { RpcError, type Peer } from '../../../src/rpc/transport';
import { MemoryBackend } from '../../../src/store/memory-backend';
import { Store } from '../../../src/store/store';

const CLUSTER = 'clus0000000000000000000001';
const MGR = 'mgr:2377';
const NOW = Date.parse('2026-11-23T00:00:00Z');

async function setup(expiryNs = 7_776_000_000_000_000, managers?: () => { leaderAddr?: string; addrs: string[] }) {
  const ca = await createRootCA(NOW);
  const store = await Store.open(new MemoryBackend(), silentLogger);
  const spec = defaultSwarmSpec();
  spec.CAConfig = { NodeCertExpiry: expiryNs };
  await store.txn().create('cluster', {
    ID: CLUSTER, Version: { Index: 0 }, CreatedAt: 't', UpdatedAt: 't', Spec: spec, TLSInfo: {},
    RootRotationInProgress: false, DefaultAddrPool: ['10.0.0.0/8'], SubnetSize: 24, DataPathPort: 4789,
    JoinTokens: { Worker: newJoinToken(ca), Manager: newJoinToken(ca) },
  }).commit();
  const net = new MemoryNetwork();
  const server = net.listen(MGR, () => CLUSTER);
  registerCAServer(server, { store, ca: () => ca, log: silentLogger, now: () => NOW, ...(managers ? { managers } : {}) });
  const tokens = () => store.list('cluster')[0].JoinTokens;
  return { ca, store, net, tokens };
}

const kind = (k: string) => (e: unknown): boolean => e instanceof RpcError && e.rpcKind === k;

test('anyone gets the root CA; a worker token makes a worker node with a certificate for it', async () => {
  const { ca, store, net, tokens } = await setup(2 * 3600e9);
  const anon = net.channel(undefined, MGR, '10.0.0.9');
  assert.equal((await anon.unary(GetRootCACertificate, {}, { timeoutMs: 1000 })).Certificate, ca.certPem);
  const { csrPem } = await newKeyAndCSR();
  const res = await anon.unary(IssueNodeCertificate, { Token: tokens().Worker, CSR: csrPem, Availability: 'drain', AdvertiseAddr: '10.0.0.7:2377', Hostname: 'w1' }, { timeoutMs: 5000 });
  assert.equal(res.Role, 'worker');
  assert.equal(res.ClusterID, CLUSTER);
  assert.equal(res.CACertificate, ca.certPem);
  assert.deepEqual(certSubjectFields(res.Certificate), { cn: res.NodeID, ou: 'swarm-worker', o: CLUSTER });
  const cert = new X509Certificate(res.Certificate);
  assert.ok(cert.verify(new X509Certificate(ca.certPem).publicKey));
  assert.equal(Date.parse(cert.validTo), NOW + 2 * 3600_000, 'expiry from the cluster spec');
  const node = store.get('nodes', res.NodeID)!;
  assert.deepEqual(node.Spec, { Labels: {}, Role: 'worker', Availability: 'drain' });
  assert.deepEqual(node.Status, { State: 'unknown', Addr: '10.0.0.7' });
  assert.equal(node.Description.Hostname, 'w1');
  assert.equal(node.ManagerStatus, undefined);
});

test('the join\'s answer names the managers and the leader as the answering manager knows them now, and leaves them out when it knows none', async () => {
  let known: { leaderAddr?: string; addrs: string[] } = { leaderAddr: '10.0.0.1:2377', addrs: ['10.0.0.2:2377', '10.0.0.1:2377'] };
  const { net, tokens } = await setup(undefined, () => known);
  const anon = net.channel(undefined, MGR, '10.0.0.9');
  const join = async () => anon.unary(IssueNodeCertificate, { Token: tokens().Worker, CSR: (await newKeyAndCSR()).csrPem }, { timeoutMs: 5000 });
  assert.deepEqual((await join()).Managers, { LeaderAddr: '10.0.0.1:2377', Addrs: ['10.0.0.2:2377', '10.0.0.1:2377'] });
  known = { addrs: ['10.0.0.2:2377'] }; // no leader known (an election under way)
  assert.deepEqual((await join()).Managers, { Addrs: ['10.0.0.2:2377'] });
  known = { addrs: [] };
  assert.equal((await join()).Managers, undefined);
});

test('the join\'s answer carries the heartbeat interval in force, when the server is given it', async () => {
  let intervalMs = 2500;
  const { ca, store } = await setup();
  const net = new MemoryNetwork();
  registerCAServer(net.listen(MGR, () => CLUSTER), { store, ca: () => ca, log: silentLogger, now: () => NOW, heartbeatMs: () => intervalMs });
  const anon = net.channel(undefined, MGR, '10.0.0.9');
  const join = async () => anon.unary(IssueNodeCertificate, { Token: store.first('cluster')!.JoinTokens.Worker, CSR: (await newKeyAndCSR()).csrPem }, { timeoutMs: 5000 });
  assert.equal((await join()).HeartbeatMs, 2500);
  intervalMs = 10_000;
  assert.equal((await join()).HeartbeatMs, 10_000);
});

test('a manager token makes a manager; without an advertise address the caller\'s address is used', async () => {
  const { store, net, tokens } = await setup();
  const { csrPem } = await newKeyAndCSR();
  const res = await net.channel(undefined, MGR, '10.0.0.8').unary(IssueNodeCertificate, { Token: tokens().Manager, CSR: csrPem }, { timeoutMs: 5000 });
  assert.equal(res.Role, 'manager');
  assert.equal(certSubjectFields(res.Certificate).ou, 'swarm-manager');
  const node = store.get('nodes', res.NodeID)!;
  assert.deepEqual(node.Status, { State: 'unknown', Addr: '10.0.0.8' });
  assert.equal(node.Spec.Availability, 'active');
  assert.deepEqual(node.ManagerStatus, { Reachability: 'unknown', Addr: '10.0.0.8:2377' });
});

test('a wrong token, a rotated token, a bad CSR or a non-P-256 key is refused and leaves no node', async () => {
  const { ca, store, net, tokens } = await setup();
  const anon = net.channel(undefined, MGR, '10.0.0.9');
  const { csrPem } = await newKeyAndCSR();
  const old = tokens().Worker;
  await assert.rejects(anon.unary(IssueNodeCertificate, { Token: old.slice(0, -1) + (old.endsWith('a') ? 'b' : 'a'), CSR: csrPem }, { timeoutMs: 5000 }),
    (e: RpcError) => e.kind === 'invalid' && e.message === WRONG_JOIN_TOKEN && e.message === 'rpc error: code = InvalidArgument desc = A valid join token is necessary to join this cluster');
  // swarm join-token --rotate worker: the CLI's swarm update with rotateWorkerToken.
  const api = new ClusterApi({ store, localNodeId: 'x', now: () => NOW }, () => ca, new SecretBox(SecretBox.generateKey()));
  const before = api.get();
  await api.update(String(before.Version.Index), before.Spec, { worker: true, manager: false });
  assert.notEqual(tokens().Worker, old);
  assert.equal(tokens().Manager, before.JoinTokens.Manager);
  await assert.rejects(anon.unary(IssueNodeCertificate, { Token: old, CSR: csrPem }, { timeoutMs: 5000 }), (e: RpcError) => e.message === WRONG_JOIN_TOKEN);
  assert.equal((await anon.unary(IssueNodeCertificate, { Token: tokens().Worker, CSR: csrPem }, { timeoutMs: 5000 })).Role, 'worker');
  // A request whose signature does not hold (another key's CSR with this key swapped in is hard to make; a corrupted one will do).
  const corrupt = csrPem.replace(/\n([A-Za-z0-9+/]{10})/, (_m, s: string) => `\n${s.split('').reverse().join('')}`);
  await assert.rejects(anon.unary(IssueNodeCertificate, { Token: tokens().Worker, CSR: corrupt }, { timeoutMs: 5000 }), kind('invalid'));
  // An RSA key is refused.
  const x509 = await x509lib();
  const rsa = await webcrypto.subtle.generateKey({ name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, true, ['sign', 'verify']) as webcrypto.CryptoKeyPair;
  const rsaCsr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=x', keys: rsa, signingAlgorithm: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as never });
  await assert.rejects(anon.unary(IssueNodeCertificate, { Token: tokens().Worker, CSR: rsaCsr.toString('pem') + '\n' }, { timeoutMs: 5000 }), (e: RpcError) => e.kind === 'invalid' && /P-256/.test(e.message));
  assert.equal(store.list('nodes').length, 1, 'only the one good join made a node');
});

test('renewal: signed with the role in the store now; unknown or removed nodes and callers without a certificate are refused', async () => {
  const { store, net, tokens } = await setup();
  const { csrPem } = await newKeyAndCSR();
  const joined = await net.channel(undefined, MGR, '10.0.0.5').unary(IssueNodeCertificate, { Token: tokens().Worker, CSR: csrPem }, { timeoutMs: 5000 });
  const me: Peer = { nodeId: joined.NodeID, role: 'worker', clusterId: CLUSTER, address: '10.0.0.5' };
  const ch = net.channel(me, MGR);
  const renewed = await ch.unary(RenewNodeCertificate, { CSR: (await newKeyAndCSR()).csrPem }, { timeoutMs: 5000 });
  assert.equal(renewed.Role, 'worker');
  assert.deepEqual(certSubjectFields(renewed.Certificate), { cn: joined.NodeID, ou: 'swarm-worker', o: CLUSTER });
  // docker node promote
  await store.mutate('nodes', joined.NodeID, (n) => { n.Spec.Role = 'manager'; return n; });
  const promoted = await ch.unary(RenewNodeCertificate, { CSR: (await newKeyAndCSR()).csrPem }, { timeoutMs: 5000 });
  assert.equal(promoted.Role, 'manager');
  assert.equal(certSubjectFields(promoted.Certificate).ou, 'swarm-manager');
  // docker node rm
  await store.txn().delete('nodes', store.get('nodes', joined.NodeID)!).commit();
  await assert.rejects(ch.unary(RenewNodeCertificate, { CSR: csrPem }, { timeoutMs: 5000 }),
    (e: RpcError) => e.kind === 'not_found' && e.message === `rpc error: code = NotFound desc = node ${joined.NodeID} not found when attempting to renew certificate`);
  await assert.rejects(net.channel(undefined, MGR).unary(RenewNodeCertificate, { CSR: csrPem }, { timeoutMs: 5000 }), kind('permission'));
});

test('advertise addresses are read as IP[:port]', () => {
  assert.deepEqual(splitAddr('10.1.2.3'), { ip: '10.1.2.3' });
  assert.deepEqual(splitAddr('10.1.2.3:4000'), { ip: '10.1.2.3', port: 4000 });
  assert.deepEqual(splitAddr('[fe80::1]:2377'), { ip: 'fe80::1', port: 2377 });
  assert.deepEqual(splitAddr('fe80::1'), { ip: 'fe80::1' });
  assert.equal(splitAddr('eth0'), undefined);
  assert.equal(splitAddr('host.example:2377'), undefined);
});

