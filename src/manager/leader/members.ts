// The leader keeps etcd's members in line with the managers in the store:
// a learner that has started is promoted (etcd refuses until it has caught
// up, so this is retried every round), a member whose node is no longer a
// manager (demoted, removed) is removed after a grace period, a member added
// for a join that never started is removed after a while. Decisions in
// planMembers (pure).
//
// The grace period: a demoted node leaves etcd by itself once it has seen
// its demotion. Removing its member under it at once raced with a promotion
// right after the demotion: the node, still a manager, lost its etcd member
// and nothing gave it back.
import type { Logger } from '../../common/log';
import type { EtcdMember, EtcdMembers } from '../../store/etcd-members';
import type { Store } from '../../store/store';

export const UNSTARTED_MEMBER_MS = 120_000;
export const DEMOTED_MEMBER_GRACE_MS = 10_000;
const ROUND_MS = 1_000;

export interface MemberPlan { promote: string[]; remove: string[] }

// How long each member has been in a state that leads to its removal.
export interface MemberSightings {
  unstarted: Map<string, number>;    // member ID -> first seen without a name
  notManager: Map<string, number>;   // member ID -> first seen with a node that is not a manager
}

export function planMembers(members: EtcdMember[], managerIds: Set<string>, selfId: string, seen: MemberSightings, now: number): MemberPlan {
  const promote: string[] = [];
  const remove: string[] = [];
  for (const m of members) {
    if (!m.name) {
      const since = seen.unstarted.get(m.id);
      if (since !== undefined && now - since > UNSTARTED_MEMBER_MS) remove.push(m.id);
      continue;
    }
    if (m.name === selfId) continue; // the leader never removes itself: it hands over first
    if (!managerIds.has(m.name)) {
      const since = seen.notManager.get(m.id);
      if (since !== undefined && now - since > DEMOTED_MEMBER_GRACE_MS) remove.push(m.id);
    } else if (m.learner) promote.push(m.id);
  }
  return { promote, remove };
}

// Keeps the sightings in line with the member list and the managers (for planMembers).
export function updateSightings(seen: MemberSightings, members: EtcdMember[], managerIds: Set<string>, now: number): void {
  const unstarted = new Set(members.filter((m) => !m.name).map((m) => m.id));
  const notManager = new Set(members.filter((m) => m.name && !managerIds.has(m.name)).map((m) => m.id));
  for (const [ids, map] of [[unstarted, seen.unstarted], [notManager, seen.notManager]] as const) {
    for (const id of ids) if (!map.has(id)) map.set(id, now);
    for (const id of [...map.keys()]) if (!ids.has(id)) map.delete(id);
  }
}

export function startMemberUpkeep(opts: { store: Store; etcd: EtcdMembers; selfId: string; log: Logger; roundMs?: number }): { stop(): void } {
  const seen: MemberSightings = { unstarted: new Map(), notManager: new Map() };
  let stopped = false;
  let busy = false;
  const round = async (): Promise<void> => {
    const members = await opts.etcd.memberList();
    const now = Date.now();
    const managers = new Set(opts.store.list('nodes').filter((n) => n.Spec.Role === 'manager').map((n) => n.ID));
    updateSightings(seen, members, managers, now);
    const plan = planMembers(members, managers, opts.selfId, seen, now);
    for (const id of plan.promote) {
      if (stopped) return;
      try {
        await opts.etcd.memberPromote(id);
        opts.log.info({ member: id, name: members.find((m) => m.id === id)?.name }, 'etcd learner promoted to voting member');
      } catch (err) {
        opts.log.debug({ member: id, err: (err as Error).message }, 'etcd learner not promoted yet');
      }
    }
    for (const id of plan.remove) {
      if (stopped) return;
      try {
        await opts.etcd.memberRemove(id);
        opts.log.info({ member: id, name: members.find((m) => m.id === id)?.name }, 'etcd member removed (its node is no longer a manager)');
      } catch (err) {
        opts.log.warn({ member: id, err: (err as Error).message }, 'etcd member could not be removed; will retry');
      }
    }
  };
  const timer = setInterval(() => {
    if (busy || stopped) return;
    busy = true;
    round().catch((err: unknown) => opts.log.debug({ err: (err as Error).message }, 'member upkeep round failed')).finally(() => { busy = false; });
  }, opts.roundMs ?? ROUND_MS);
  return { stop: () => { stopped = true; clearInterval(timer); } };
}
