import type { ClusterInfo, Config, JoinTokens, Network, Node, Secret, Service, Task } from '../model/types';

// What the store keeps, by kind. Version.Index is never stored: it is the
// key's etcd mod revision, filled in when the object is read.

export interface ClusterObject extends ClusterInfo {
  JoinTokens: JoinTokens;
  // The CA's private key lives with the cluster object so every manager can sign,
  // sealed with the swarm's data key (manager/ca/ca-key.ts). CAKey is the clear
  // PEM an earlier release stored; it is sealed and removed on start.
  SealedCAKey?: string;
  CAKey?: string;
  // Autolock's unlock key, sealed with the data key (manager/ca/unlock-key.ts);
  // absent while autolock is off. Never in an API answer.
  SealedUnlockKey?: string;
  // The data-path keys of encrypted overlays (manager/netkeys/), each sealed
  // with the data key; absent until an encrypted network exists.
  NetworkKeys?: StoredNetworkKeys;
  // A root CA rotation under way (manager/ca/rotation.ts): the new root, its
  // key sealed as SealedCAKey is, and the new root cross-signed by the current
  // root's key. Never in an API answer.
  RootRotation?: RootRotation;
}

export interface RootRotation {
  CACert: string;
  CrossSignedCACert: string;
  SealedCAKey: string;
}

export interface StoredNetworkKey {
  Tag: number;
  SealedKey: string;     // SecretBox.seal(key, `network-key:<cluster ID>:<tag>`)
  CreatedAt: number;     // ms, the leader's clock
}

export interface StoredNetworkKeys {
  Keys: StoredNetworkKey[];
  PrimaryTag: number;
  ChangedAt: number;     // ms, the leader's clock: when the set last changed (a rotation's steps are timed from it)
}

// A secret as stored: Spec.Data is never kept; the value is sealed with the
// swarm's data key (AES-256-GCM, manager/controlapi/secret-box.ts), so etcd's
// files and the mirror hold only ciphertext.
export interface SecretObject extends Secret {
  SealedData: string;
}

export interface Objects {
  cluster: ClusterObject;
  nodes: Node;
  services: Service;
  tasks: Task;
  secrets: SecretObject;
  configs: Config;
  networks: Network;
}

export type Kind = keyof Objects;
export const KINDS: Kind[] = ['cluster', 'nodes', 'services', 'tasks', 'secrets', 'configs', 'networks'];

// Kinds whose names must be unique across the cluster; uniqueness is enforced
// by a name key created in the same transaction as the object.
export const NAMED_KINDS = new Set<Kind>(['services', 'secrets', 'configs', 'networks']);

export interface StoreEvent<K extends Kind = Kind> {
  kind: K;
  action: 'create' | 'update' | 'delete';
  id: string;
  object?: Objects[K];    // the new object (absent on delete)
  previous?: Objects[K];  // the object before (absent on create)
  revision: number;
}
