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
const ADD_RETRY_MS = 15_000;

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
    let member = list.find((m) => m.peerUrls.includes(peerUrl));
    // A member left by this node's earlier attempt under another URL is stale.
    for (const m of list) {
      if (m.name === nodeId && m !== member) {
        deps.log.info({ nodeId, member: m.id }, 'removing the stale etcd member of a manager that joins again');
        await etcd.memberRemove(m.id);
      }
    }
    if (member && member.name && member.name !== nodeId) throw invalid(`rpc error: code = AlreadyExists desc = peer URL ${peerUrl} belongs to etcd member ${member.name}`);
    if (!member) {
      const deadline = Date.now() + (deps.addRetryMs ?? ADD_RETRY_MS);
      for (let delay = 200; ; delay = Math.min(1000, delay * 2)) {
        try {
          const added = await etcd.memberAdd(peerUrl, true);
          member = added.added;
          list = added.members;
          break;
        } catch (err) {
          if (Date.now() + delay > deadline) throw unavailable(`rpc error: code = Unavailable desc = cannot add the etcd member: ${(err as Error).message}`);
          await new Promise((r) => setTimeout(r, delay));
        }
      }
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
