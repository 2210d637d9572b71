// The serving side of membership.JoinManager (protocol/membership.ts): any
// manager adds the caller to etcd as a learner and hands it what a manager
// needs that is not in etcd (the CA key, the data key). The leader's member
// upkeep (members.ts) promotes the learner once etcd says it has caught up.
import { invalid, unavailable } from '../../common/errors';
import type { Logger } from '../../common/log';
import { JoinManager } from '../../protocol/membership';
import type { RpcServer } from '../../rpc/transport';
import { initialCluster, type EtcdMember, type EtcdMembers } from '../../store/etcd-members';
import type { Store } from '../../store/store';

export interface MembershipServerDeps {
  store: () => Store | undefined;   // undefined while this node is not an active manager
  members: () => EtcdMembers | undefined;
  caKeyPem: () => string;
  dataKey: () => Buffer;
  log: Logger;
  addRetryMs?: number;
}

// etcd refuses a member change until every voter has been connected for 5 s
// ("unhealthy cluster"); a join right after another waits for that.
const ADD_RETRY_MS = 20_000;

export function registerMembershipServer(server: RpcServer, deps: MembershipServerDeps): void {
  server.unary(JoinManager, async (req, ctx) => {
    const store = deps.store();
    const etcd = deps.members();
    if (!store || !etcd) throw unavailable('rpc error: code = Unavailable desc = this node is not an active manager');
    const nodeId = ctx.peer!.nodeId;
    // The certificate says manager; the store must agree (a demoted node's old certificate does not count).
    const node = store.get('nodes', nodeId);
    if (!node || node.Spec.Role !== 'manager') throw invalid(`rpc error: code = PermissionDenied desc = node ${nodeId} is not a manager of this swarm`);
    const peerUrl = req.PeerURL;
    let list = await etcd.memberList();
    const taken = list.find((m) => m.peerUrls.includes(peerUrl) && m.name && m.name !== nodeId);
    if (taken) throw invalid(`rpc error: code = AlreadyExists desc = peer URL ${peerUrl} belongs to etcd member ${taken.name}`);
    // The joiner always starts with an empty etcd directory: a member it ran
    // before (a demoted and promoted node, a retried join) is removed and
    // made again; only one added but never started is reused.
    let member = list.find((m) => m.peerUrls.includes(peerUrl) && !m.name);
    const stale = list.filter((m) => m.name === nodeId);
    const deadline = Date.now() + (deps.addRetryMs ?? ADD_RETRY_MS);
    const retried = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
      for (let delay = 200; ; delay = Math.min(1000, delay * 2)) {
        try { return await fn(); } catch (err) {
          if (Date.now() + delay > deadline) throw unavailable(`rpc error: code = Unavailable desc = cannot ${what}: ${(err as Error).message}`);
          await new Promise((r) => setTimeout(r, delay));
        }
      }
    };
    for (const m of stale) {
      deps.log.info({ nodeId, member: m.id }, 'removing the etcd member this manager ran before');
      await retried('remove the earlier etcd member', () => etcd.memberRemove(m.id));
    }
    if (!member) {
      const added = await retried('add the etcd member', () => etcd.memberAdd(peerUrl, true));
      member = added.added;
      list = added.members;
      deps.log.info({ nodeId, member: member.id, peerUrl }, 'manager joining: etcd learner added');
    } else {
      list = await etcd.memberList();
    }
    return {
      InitialCluster: initialCluster(list as EtcdMember[], nodeId, peerUrl),
      MemberID: member.id,
      CAKey: deps.caKeyPem(),
      DataKey: deps.dataKey().toString('base64'),
    };
  });
}
