import type { Node, NodeSpec } from '../../model/types';
import { invalid, precondition } from '../../common/errors';
import { matchAny, matchLabels, type Filters } from '../../common/filters';
import { nowIso } from '../../common/time';
import type { ControlContext } from './context';
import { resolveObject } from './resolve';
import { parseVersion } from './services';
import { goQuote } from '../../common/go/go-format';
import { LEADER_KEY, presenceKey } from '../../store/keys';
import { commitInBatches, type StoreTxn } from '../../store/store';
import { taskStateRank } from '../../model/types';

export const NODE_FILTERS = ['id', 'label', 'membership', 'name', 'node.label', 'role'] as const;

const fp = (msg: string) => precondition(`rpc error: code = FailedPrecondition desc = ${msg}`);

// SwarmKit's quorum safeguard (raft CanRemoveMember): after removing `id`,
// the managers still reachable (this one counts) must be a majority of those left.
export function canRemoveManager(managerIds: string[], id: string, selfId: string, reachable: (id: string) => boolean): boolean {
  let n = 0;
  for (const m of managerIds) {
    if (m === id) continue;
    if (m === selfId || reachable(m)) n++;
  }
  return n >= Math.floor((managerIds.length - 1) / 2) + 1;
}

export class NodesApi {
  constructor(private readonly ctx: ControlContext) {}

  resolve(ref: string): Node {
    const { store } = this.ctx;
    if (ref === 'self') ref = this.ctx.localNodeId;
    return resolveObject('node', ref, store.list('nodes'), (n) => n.Description.Hostname, (id) => store.get('nodes', id));
  }

  inspect(ref: string): Node { return this.withLiveness(this.resolve(ref)); }

  // A manager's Leader and Reachability are what etcd says now (the leader
  // key, presence keys under each manager's lease), never a stored copy.
  // Docker's Node (moby's NodeFromGRPC) has no Attachments: the LB addresses
  // Shoal keeps there are the allocator's business, not the API's.
  // A shallow copy: the answer is serialised at once and never changed, and
  // `node ls` of thousands of nodes should not deep-copy each one.
  private withLiveness(stored: Node): Node {
    const { Attachments: _lb, ManagerStatus: kept, ...n } = stored;
    if (n.Spec.Role !== 'manager') return n;
    const { store } = this.ctx;
    const leader = store.meta(LEADER_KEY)?.value === n.ID;
    const reachable = store.meta(presenceKey(n.ID)) !== undefined;
    return { ...n, ManagerStatus: { ...(leader ? { Leader: true } : {}), Reachability: reachable ? 'reachable' : 'unreachable', Addr: kept?.Addr ?? `${n.Status.Addr}:2377` } };
  }

  list(filters: Filters): Node[] {
    return this.ctx.store.list('nodes').filter((n) =>
      matchAny(filters.get('id'), (v) => n.ID.startsWith(v)) &&
      matchAny(filters.get('name'), (v) => n.Description.Hostname.startsWith(v) || (n.Spec.Name ?? '').startsWith(v)) &&
      matchAny(filters.get('role'), (v) => v === (n.Spec.Role ?? 'worker')) &&
      matchAny(filters.get('membership'), (v) => v === 'accepted') &&
      // `label` looks at the engine's labels, `node.label` at the node's own (swarmkit controlapi).
      matchLabels(n.Description.Engine.Labels, filters.get('label')) &&
      matchLabels(n.Spec.Labels, filters.get('node.label')),
    ).map((n) => this.withLiveness(n)).sort((a, b) => (a.CreatedAt < b.CreatedAt ? -1 : a.CreatedAt > b.CreatedAt ? 1 : 0));
  }

  async update(ref: string, versionParam: string | null, spec: NodeSpec | undefined): Promise<void> {
    const version = parseVersion(versionParam, 'node');
    if (!spec || typeof spec !== 'object') throw invalid('rpc error: code = InvalidArgument desc = NodeSpec must not be empty');
    // dockerd maps both to SwarmKit's enums case-insensitively (convert.NodeSpecToGRPC);
    // an absent one keeps the node's current value here.
    const wantRole = spec.Role?.toLowerCase() as NodeSpec['Role'];
    if (wantRole && !['worker', 'manager'].includes(wantRole)) throw invalid(`invalid Role: ${goQuote(spec.Role!)}`);
    const wantAvailability = spec.Availability?.toLowerCase() as NodeSpec['Availability'];
    if (wantAvailability && !['active', 'pause', 'drain'].includes(wantAvailability)) throw invalid(`invalid Availability: ${goQuote(spec.Availability!)}`);
    const current = this.resolve(ref);
    const role = wantRole || current.Spec.Role || 'worker';
    if (current.Spec.Role === 'manager' && role === 'worker') {
      const managers = this.ctx.store.list('nodes').filter((n) => n.Spec.Role === 'manager');
      if (managers.length <= 1) throw fp('attempting to demote the last manager of the swarm');
      // As SwarmKit, the check counts raft (etcd) members: a manager lost before
      // `swarm init --force-new-cluster` is no member and can be demoted.
      const members = await this.ctx.etcdMembers?.().catch(() => undefined);
      const voters = members ? managers.filter((n) => members.includes(n.ID)).map((n) => n.ID) : managers.map((n) => n.ID);
      if (voters.includes(current.ID) && !canRemoveManager(voters, current.ID, this.ctx.localNodeId, (id) => this.ctx.store.meta(presenceKey(id)) !== undefined)) {
        throw fp("can't remove member from the raft: this would result in a loss of quorum");
      }
    }
    const next = structuredClone(current);
    next.Version = { Index: version };
    next.Spec = {
      Name: spec.Name,
      Labels: spec.Labels ?? {},
      Role: role,
      Availability: wantAvailability || current.Spec.Availability || 'active',
    };
    if (next.Spec.Name === undefined) delete next.Spec.Name;
    next.UpdatedAt = nowIso(this.ctx.now());
    await this.ctx.store.txn().update('nodes', next, current).commit();
  }

  async remove(ref: string, force: boolean): Promise<void> {
    const n = this.resolve(ref);
    if (n.ID === this.ctx.localNodeId || n.Spec.Role === 'manager') {
      throw fp(`node ${n.ID} is a cluster manager and is a member of the raft cluster. It must be demoted to worker before removal`);
    }
    // SwarmKit refuses only a node it sees ready; unknown or down goes.
    if (!force && n.Status.State === 'ready') {
      throw fp(`node ${n.ID} is not down and can't be removed`);
    }
    await this.ctx.store.txn().delete('nodes', n).commit();
    // Its tasks can no longer be reported on (SwarmKit's orphanNodeTasks).
    const now = nowIso(this.ctx.now());
    const open = this.ctx.store.tasksOfNode(n.ID).filter((t) => taskStateRank(t.Status.State) < taskStateRank('complete'));
    await commitInBatches(this.ctx.store, open.map((t) => (txn: StoreTxn) => {
      const next = structuredClone(t);
      next.Status = { Timestamp: now, State: 'orphaned', Message: 'Task belonged to a node that has been deleted' };
      txn.update('tasks', next);
    }));
  }
}
