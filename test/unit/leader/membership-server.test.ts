import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../../src/common/log';
import { createRootCA } from '../../../src/manager/ca/ca';
import { registerMembershipServer } from '../../../src/manager/leader/membership-server';
import { JoinManager } from '../../../src/protocol/membership';
import { MemoryNetwork } from '../../../src/rpc/memory';
import type { EtcdMember, EtcdMembers } from '../../../src/store/etcd-members';
import { MemoryBackend } from '../../../src/store/memory-backend';
import { Store } from '../../../src/store/store';

const CLUSTER = 'clus0000000000000000000001';
const MGR = 'mgr:2377';

// etcd's membership as it behaves: one learner at a time ("too many learner
// members"), a learner promoted (by the leader's upkeep) once it has started.
class FakeEtcd implements EtcdMembers {
  members: EtcdMember[] = [{ id: '1', name: 'm1', peerUrls: ['https://10.0.0.1:4380'], learner: false }];
  private next = 2;
  refusals = 0;
  async memberList(): Promise<EtcdMember[]> { return this.members.map((m) => ({ ...m })); }
  async memberAdd(peerUrl: string, learner: boolean): Promise<{ added: EtcdMember; members: EtcdMember[] }> {
    if (learner && this.members.some((m) => m.learner)) { this.refusals++; throw new Error('9 FAILED_PRECONDITION: etcdserver: too many learner members in cluster'); }
    const added = { id: String(this.next++), name: '', peerUrls: [peerUrl], learner };
    this.members.push(added);
    // The new member starts, catches up and is promoted a little later.
    setTimeout(() => { added.name = `started-${added.id}`; added.learner = false; }, 300);
    return { added: { ...added }, members: await this.memberList() };
  }
  async memberPromote(): Promise<void> {}
  async memberRemove(id: string): Promise<void> { this.members = this.members.filter((m) => m.id !== id); }
}

test('two managers joining at once both get an etcd member (the second waits for the first learner)', async () => {
  const store = await Store.open(new MemoryBackend(), silentLogger);
  const node = (id: string) => ({
    ID: id, Version: { Index: 0 }, CreatedAt: 't', UpdatedAt: 't', Spec: { Labels: {}, Role: 'manager' as const, Availability: 'active' as const },
    Description: { Hostname: id, Platform: { Architecture: 'x86_64', OS: 'linux' }, Resources: {}, Engine: { EngineVersion: 't', Plugins: [] }, TLSInfo: {} },
    Status: { State: 'ready' as const, Addr: '10.0.0.9' },
  });
  await store.txn().create('nodes', node('m2')).create('nodes', node('m3')).commit();
  const ca = await createRootCA();
  const etcd = new FakeEtcd();
  const net = new MemoryNetwork();
  registerMembershipServer(net.listen(MGR, () => CLUSTER), {
    store: () => store, members: () => etcd, caKeyPem: () => ca.keyPem, dataKey: () => Buffer.alloc(32, 7), log: silentLogger, addRetryMs: 5_000,
  });
  const join = (id: string, ip: string) => net.channel({ nodeId: id, role: 'manager', clusterId: CLUSTER, address: ip }, MGR)
    .unary(JoinManager, { PeerURL: `https://${ip}:4380` }, { timeoutMs: 10_000 });
  const [a, b] = await Promise.all([join('m2', '10.0.0.2'), join('m3', '10.0.0.3')]);
  assert.notEqual(a.MemberID, b.MemberID);
  assert.ok(etcd.refusals > 0, 'the second add was refused at first (one learner at a time)');
  assert.deepEqual(etcd.members.map((m) => m.peerUrls[0]).sort(), ['https://10.0.0.1:4380', 'https://10.0.0.2:4380', 'https://10.0.0.3:4380']);
  await store.close();
});
