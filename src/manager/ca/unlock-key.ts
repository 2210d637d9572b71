import { randomBytes } from 'node:crypto';
import { invalid } from '../../common/errors';
import type { ClusterObject } from '../../store/objects';
import type { Sealer } from './ca-key';

// The swarm's unlock key (autolock): 32 random bytes the operator holds,
// shown as Docker shows it ("SWMKEY-1-" + unpadded base64). Managers keep it
// in the cluster object sealed with the data key (`SealedUnlockKey`), so each
// manager, once unlocked, learns the current key and re-wraps its own files
// (node/key-lock.ts) when it changes or autolock is toggled.
const PREFIX = 'SWMKEY-1-';
const KEY_BYTES = 32;

export function newUnlockKey(): Buffer { return randomBytes(KEY_BYTES); }

export function formatUnlockKey(key: Buffer): string {
  return PREFIX + key.toString('base64').replace(/=+$/, '');
}

// Docker's parse: the prefix and base64, else "invalid key string" (400). A
// well-formed key of the wrong length is simply a wrong key (it opens nothing).
export function parseUnlockKey(text: string): Buffer {
  const body = typeof text === 'string' && text.startsWith(PREFIX) ? text.slice(PREFIX.length) : undefined;
  if (body === undefined || !/^[A-Za-z0-9+/]*$/.test(body) || body.length % 4 === 1) throw invalid('invalid key string');
  return Buffer.from(body, 'base64');
}

const aadOf = (clusterId: string): string => `unlock-key:${clusterId}`;

export function sealUnlockKey(sealer: Sealer, clusterId: string, key: Buffer): string {
  return sealer.seal(key, aadOf(clusterId));
}

// The unlock key managers must wrap their keys under: the sealed key while
// autolock is on, undefined (keys in clear) otherwise. Throws when the sealed
// key does not open (a damaged cluster object: the caller keeps what it has).
export function wantedUnlockKey(sealer: Sealer, cluster: Pick<ClusterObject, 'ID' | 'Spec' | 'SealedUnlockKey'>): Buffer | undefined {
  if (!cluster.Spec.EncryptionConfig?.AutoLockManagers || !cluster.SealedUnlockKey) return undefined;
  return sealer.open(cluster.SealedUnlockKey, aadOf(cluster.ID));
}

// What a swarm update does to the unlock key (SwarmKit's rules): autolock
// turned on, or a rotation under autolock, makes a new key; autolock off
// removes it; anything else keeps it.
export function unlockKeyChange(wasOn: boolean, on: boolean, rotate: boolean, hasKey: boolean): 'new' | 'remove' | 'keep' {
  if (!on) return hasKey ? 'remove' : 'keep';
  if (!wasOn || rotate || !hasKey) return 'new';
  return 'keep';
}
