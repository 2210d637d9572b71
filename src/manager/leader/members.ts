// The leader keeps etcd's members in line with the managers in the store:
// a learner that has started is promoted (etcd refuses until it has caught
// up, so this is retried every round), a member whose node is no longer a
// manager (demoted, removed) is removed, a member added for a join that never
// started is removed after a while. Decisions in planMembers (pure).
import type { Logger } from '../../common/log';
import type { EtcdMember, EtcdMembers } from '../../store/etcd-members';
import type { Store } from '../../store/store';

export const UNSTARTED_MEMBER_MS = 120_000;
const ROUND_MS = 1_000;

export interface MemberPlan { promote: string[]; remove: string[] }

export function planMembers(members: EtcdMember[], managerIds: Set<string>, selfId: string, firstSeenUnstarted: Map<string, number>, now: number): MemberPlan {
  const promote: string[] = [];
  const remove: string[] = [];
  for (const m of members) {
    if (!m.name) {
      const since = firstSeenUnstarted.get(m.id);
      if (since !== undefined && now - since > UNSTARTED_MEMBER_MS) remove.push(m.id);
      continue;
    }
    if (m.name === selfId) continue; // the leader never removes itself: it hands over first
    if (!managerIds.has(m.name)) remove.push(m.id);
    else if (m.learner) promote.push(m.id);
  }
  return { promote, remove };
}

export function startMemberUpkeep(opts: { store: Store; etcd: EtcdMembers; selfId: string; log: Logger; roundMs?: number }): { stop(): void } {
  const unstarted = new Map<string, number>();
  let stopped = false;
  let busy = false;
  const round = async (): Promise<void> => {
    const members = await opts.etcd.memberList();
    const now = Date.now();
    for (const m of members) if (!m.name && !unstarted.has(m.id)) unstarted.set(m.id, now);
    for (const id of [...unstarted.keys()]) if (!members.some((m) => m.id === id && !m.name)) unstarted.delete(id);
    const managers = new Set(opts.store.list('nodes').filter((n) => n.Spec.Role === 'manager').map((n) => n.ID));
    const plan = planMembers(members, managers, opts.selfId, unstarted, now);
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
