import type { ClusterObject } from '../../store/objects';

// The CA's private key at rest: sealed with the swarm's data key (the same
// AES-256-GCM box as secret values, manager/controlapi/secret-box.ts) before it
// is written to the cluster object, so etcd's values and files never hold it in
// clear. Managers that hold the data key open it to sign certificates.
export interface Sealer {
  seal(plaintext: Buffer, aad: string): string;
  open(sealed: string, aad: string): Buffer;
}

// Bound to the cluster: a sealed key copied into another cluster does not open.
const aadOf = (clusterId: string): string => `ca-key:${clusterId}`;

export function sealCAKey(sealer: Sealer, clusterId: string, keyPem: string): string {
  return sealer.seal(Buffer.from(keyPem, 'utf8'), aadOf(clusterId));
}

// The CA key in clear, from a cluster object of this release (SealedCAKey) or
// of an earlier one (CAKey in clear). Throws when the data key does not open it.
export function openCAKey(sealer: Sealer, cluster: ClusterObject): string {
  if (cluster.SealedCAKey) return openSealedCAKey(sealer, cluster.ID, cluster.SealedCAKey);
  if (cluster.CAKey) return cluster.CAKey;
  throw new Error('the cluster object holds no CA key');
}

// An earlier release kept the CA key in clear: the cluster object to write
// instead (key sealed, clear copy removed), or undefined when nothing to do.
export function withSealedCAKey(sealer: Sealer, cluster: ClusterObject): ClusterObject | undefined {
  if (cluster.CAKey === undefined) return undefined;
  const next = structuredClone(cluster);
  if (!next.SealedCAKey) next.SealedCAKey = sealCAKey(sealer, cluster.ID, cluster.CAKey);
  delete next.CAKey;
  return next;
}

// A sealed CA key in clear (the cluster's, or a rotation's new root's).
export function openSealedCAKey(sealer: Sealer, clusterId: string, sealed: string): string {
  try {
    return sealer.open(sealed, aadOf(clusterId)).toString('utf8');
  } catch (e) {
    throw new Error(`the cluster's CA key does not open with this node's data key (certificates/swarm-secrets.key): ${(e as Error).message}`);
  }
}
