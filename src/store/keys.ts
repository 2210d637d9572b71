import type { Kind } from './objects';

// Key layout. One key per object keeps every write a small transaction and
// lets a watch on one prefix feed every component:
//   /shoal/v1/b/<hash>              a task spec shared by the tasks that reference it (JSON)
//   /shoal/v1/n/<kind>/<name>       name -> id, for unique names
//   /shoal/v1/o/<kind>/<id>         the object, JSON (a task holds SpecRef instead of Spec)
//   /shoal/v1/m/leader              the leading manager's node ID, under its lease
//   /shoal/v1/m/presence/<nodeId>   a manager that is up, under its lease (reachability)
//   /shoal/v1/m/refs/<kind>/<id>    touched by service writes that reference a secret/config/network
//   /shoal/v1/m/noop                never written: deleting it is a raft entry that changes nothing
// Blobs sort before objects, so a paged load meets a spec before its tasks.
export const ROOT = '/shoal/v1/';
const BLOB = ROOT + 'b/';
export const OBJECTS = ROOT + 'o/';
const NAME = ROOT + 'n/';
// Liveness keys, held under leases: the mirror keeps them as raw values.
export const META = ROOT + 'm/';
export const LEADER_KEY = META + 'leader';
export const PRESENCE = META + 'presence/';
export const presenceKey = (nodeId: string): string => PRESENCE + nodeId;
// Keys that live only as long as a process's lease (never backed up or restored).
export const isLeaseKey = (key: string): boolean => key === LEADER_KEY || key.startsWith(PRESENCE);
// Never written: maintenance deletes it for a raft entry that changes nothing.
export const NOOP_KEY = META + 'noop';
// Touched by every service write that references the secret/config/network: a removal
// compares it, so a reference made on another manager meanwhile stops it.
export const referenceKey = (kind: 'secrets' | 'configs' | 'networks', id: string): string => `${META}refs/${kind}/${id}`;

export const objectKey = (kind: Kind, id: string): string => `${OBJECTS}${kind}/${id}`;
export const objectPrefix = (kind: Kind): string => `${OBJECTS}${kind}/`;
export const nameKey = (kind: Kind, name: string): string => `${NAME}${kind}/${name}`;
export const blobKey = (hash: string): string => `${BLOB}${hash}`;

export function parseObjectKey(key: string): { kind: Kind; id: string } | undefined {
  if (!key.startsWith(OBJECTS)) return undefined;
  const rest = key.slice(OBJECTS.length);
  const slash = rest.indexOf('/');
  if (slash < 0) return undefined;
  return { kind: rest.slice(0, slash) as Kind, id: rest.slice(slash + 1) };
}

export const parseBlobKey = (key: string): string | undefined => (key.startsWith(BLOB) ? key.slice(BLOB.length) : undefined);
