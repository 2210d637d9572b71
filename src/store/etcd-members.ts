// etcd's membership API as Shoal uses it: managers are etcd members; a
// joining manager is added as a learner (it copies the log without voting)
// and promoted once it has caught up; a leaving or demoted one is removed.
export interface EtcdMember {
  id: string;          // etcd's member ID (uint64 as a decimal string)
  name: string;        // the node ID; empty until the member has started
  peerUrls: string[];
  learner: boolean;
}

export interface EtcdMembers {
  memberList(): Promise<EtcdMember[]>;
  memberAdd(peerUrl: string, learner: boolean): Promise<{ added: EtcdMember; members: EtcdMember[] }>;
  memberPromote(id: string): Promise<void>;
  memberRemove(id: string): Promise<void>;
}

// etcd's --initial-cluster for a member joining: every started member by
// name, plus the new one (etcd compares these URLs with its member list).
export function initialCluster(members: EtcdMember[], newName: string, newPeerUrl: string): string {
  const parts: string[] = [];
  for (const m of members) {
    const isNew = m.peerUrls.includes(newPeerUrl);
    const name = isNew ? newName : m.name;
    if (!name) continue; // another member added but not started yet: etcd cannot name it
    for (const u of m.peerUrls) parts.push(`${name}=${u}`);
  }
  return parts.join(',');
}
