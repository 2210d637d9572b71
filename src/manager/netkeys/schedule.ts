import type { Network } from '../../model/types';
import { MAX_NETWORK_KEYS } from '../../protocol/network-view';
import type { StoredNetworkKeys } from '../../store/objects';

// When the leader makes and rotates the data-path keys of encrypted overlays
// (pure: the stored set and the clock in, one step out).
//
// A rotation is three steps, each written to the cluster object and sent to
// the nodes in their network views, `stepMs` apart so that every node has
// acted on one before the next: (1) `add` the next key, which nodes install
// for receiving only; (2) `promote` it, nodes send with it (a node still
// sending with the old key is still understood); (3) `retire` the old key.
// No packet is dropped by a rotation as long as every node sees each step
// within `stepMs`.

export interface KeyTiming {
  periodMs: number;   // from one rotation's start (or the first key) to the next (Docker's default: 12 h)
  stepMs: number;     // between the steps of a rotation
}

export const DEFAULT_KEY_TIMING: KeyTiming = { periodMs: 12 * 3600_000, stepMs: 30_000 };

export type KeyStep =
  | { kind: 'create'; tag: number }   // the first key, primary at once
  | { kind: 'add'; tag: number }      // the next key, for receiving only
  | { kind: 'promote'; tag: number }  // send with it
  | { kind: 'retire'; tag: number };  // the old key goes

export interface KeyDecision {
  step?: KeyStep;
  wakeAt?: number;    // ask again then (ms, the same clock as `now`)
}

export const ENCRYPTED_OPTION = 'encrypted';

export function isEncryptedNetwork(n: Pick<Network, 'Spec'>): boolean {
  return n.Spec?.DriverConfiguration?.Options?.[ENCRYPTED_OPTION] !== undefined;
}

type Times = Pick<StoredNetworkKeys, 'PrimaryTag' | 'ChangedAt'> & { Keys: Array<{ Tag: number }> };

// `needed`: an encrypted network exists (without one nothing is made or rotated).
// `force`: start a rotation now (only from a steady set of one key).
export function decideKeyStep(cur: Times | undefined, needed: boolean, now: number, timing: KeyTiming, force = false): KeyDecision {
  if (!needed) return {};
  const keys = [...(cur?.Keys ?? [])].sort((a, b) => a.Tag - b.Tag);
  if (!cur || !keys.length) return { step: { kind: 'create', tag: 1 } };
  const newest = keys[keys.length - 1]!;
  const oldest = keys[0]!;
  // A set this schedule would never write (a lost primary, too many keys) is repaired first.
  if (!keys.some((k) => k.Tag === cur.PrimaryTag)) return { step: { kind: 'promote', tag: newest.Tag } };
  if (keys.length > MAX_NETWORK_KEYS) {
    const drop = keys.find((k) => k.Tag !== cur.PrimaryTag)!;
    return { step: { kind: 'retire', tag: drop.Tag } };
  }
  // A ChangedAt ahead of this clock (another leader's clock ran ahead) counts
  // as due: waiting for this clock to catch up could stall rotation for long.
  const due = (after: number): boolean => cur.ChangedAt > now || now - cur.ChangedAt >= after;
  if (keys.length === 1) {
    if (force || due(timing.periodMs)) return { step: { kind: 'add', tag: newest.Tag + 1 } };
    return { wakeAt: cur.ChangedAt + timing.periodMs };
  }
  if (!due(timing.stepMs)) return { wakeAt: cur.ChangedAt + timing.stepMs };
  if (cur.PrimaryTag !== newest.Tag) return { step: { kind: 'promote', tag: newest.Tag } };
  return { step: { kind: 'retire', tag: oldest.Tag } };
}

// The set after a step. `sealedKey` is the new key, sealed (create and add only).
export function applyKeyStep(cur: StoredNetworkKeys | undefined, step: KeyStep, now: number, sealedKey?: string): StoredNetworkKeys {
  const keys = (cur?.Keys ?? []).map((k) => ({ ...k }));
  switch (step.kind) {
    case 'create':
    case 'add': {
      if (sealedKey === undefined) throw new Error(`key step ${step.kind} needs a new key`);
      const added = { Tag: step.tag, SealedKey: sealedKey, CreatedAt: now };
      if (step.kind === 'create') return { Keys: [added], PrimaryTag: step.tag, ChangedAt: now };
      return { Keys: [...keys, added], PrimaryTag: cur!.PrimaryTag, ChangedAt: now };
    }
    case 'promote':
      return { Keys: keys, PrimaryTag: step.tag, ChangedAt: now };
    case 'retire':
      return { Keys: keys.filter((k) => k.Tag !== step.tag), PrimaryTag: cur!.PrimaryTag, ChangedAt: now };
  }
}

// What the sealed key of `tag` is bound to: a sealed key moved to another cluster or tag does not open.
export const networkKeyAad = (clusterId: string, tag: number): string => `network-key:${clusterId}:${tag}`;

// SHOAL_NETWORK_KEY_PERIOD_MS and SHOAL_NETWORK_KEY_STEP_MS (tests shorten
// them); a value that is not a positive integer keeps the default.
export function keyTimingFromEnv(env: Record<string, string | undefined>): KeyTiming {
  const pick = (v: string | undefined, dflt: number): number => (v && /^\d+$/.test(v) && Number(v) > 0 ? Number(v) : dflt);
  return {
    periodMs: pick(env.SHOAL_NETWORK_KEY_PERIOD_MS, DEFAULT_KEY_TIMING.periodMs),
    stepMs: pick(env.SHOAL_NETWORK_KEY_STEP_MS, DEFAULT_KEY_TIMING.stepMs),
  };
}
