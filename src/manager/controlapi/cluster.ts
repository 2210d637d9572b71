import type { Swarm, SwarmSpec } from '../../model/types';
import { invalid } from '../../common/errors';
import { nowIso } from '../../common/time';
import type { ClusterObject } from '../../store/objects';
import { checkGivenRootCA, createRootCA, crossSignRoot, issuerInfo, newJoinToken, type RootCA } from '../ca/ca';
import { sealCAKey } from '../ca/ca-key';
import { rotationRequest, startedRotation, storedSpec, type RotationRequest } from '../ca/rotation';
import type { ControlContext } from './context';
import { parseVersion } from './services';
import { EXTERNAL_CA_ROTATION_NOT_BUILT, validateSwarmUpdate } from './validate-swarm';
import type { SecretBox } from './secret-box';
import { formatUnlockKey, newUnlockKey, sealUnlockKey, unlockKeyChange, wantedUnlockKey } from '../ca/unlock-key';

import type { Store } from '../../store/store';

// There is one cluster object per swarm, stored under the cluster's ID.
export function clusterOf(store: Store): ClusterObject | undefined {
  return store.first('cluster');
}

export function defaultSwarmSpec(): SwarmSpec {
  return {
    Name: 'default',
    Labels: {},
    Orchestration: { TaskHistoryRetentionLimit: 5 },
    Raft: { SnapshotInterval: 10000, KeepOldSnapshots: 0, LogEntriesForSlowFollowers: 500, ElectionTick: 10, HeartbeatTick: 1 },
    Dispatcher: { HeartbeatPeriod: 5_000_000_000 },
    CAConfig: { NodeCertExpiry: 7_776_000_000_000_000 },
    TaskDefaults: {},
    EncryptionConfig: { AutoLockManagers: false },
  };
}

// Merges a user's spec over the defaults the way swarm init does: absent
// sections keep their defaults.
export function mergeSwarmSpec(base: SwarmSpec, spec: SwarmSpec | undefined): SwarmSpec {
  if (!spec) return structuredClone(base);
  const out = structuredClone(base);
  if (spec.Name) out.Name = spec.Name;
  if (spec.Labels) out.Labels = { ...spec.Labels };
  for (const k of ['Orchestration', 'Raft', 'Dispatcher', 'CAConfig', 'TaskDefaults', 'EncryptionConfig'] as const) {
    const v = spec[k];
    if (v && typeof v === 'object') (out as Record<string, unknown>)[k] = { ...(out[k] as object), ...(v as object) };
  }
  return out;
}

export function publicSwarm(c: ClusterObject): Swarm {
  const { CAKey: _k, SealedCAKey: _s, NetworkKeys: _n, SealedUnlockKey: _u, RootRotation: _r, ...rest } = structuredClone(c);
  return rest;
}

export class ClusterApi {
  constructor(private readonly ctx: ControlContext, private readonly ca: () => RootCA, private readonly box: SecretBox) {}

  get(): ClusterObject {
    const c = clusterOf(this.ctx.store);
    if (!c) throw invalid('swarm is not initialised'); // cannot happen on an active manager
    return c;
  }

  inspect(): Swarm { return publicSwarm(this.get()); }

  // Autolock on (or a rotation under it) makes a new unlock key, sealed with
  // the data key; off removes it. Every manager re-wraps its key files when it
  // sees the change (daemon/swarm-node.ts syncKeyLock). A rotation with
  // autolock off changes nothing, as SwarmKit's.
  async update(versionParam: string | null, spec: SwarmSpec | undefined, rotate: { worker: boolean; manager: boolean; managerUnlockKey?: boolean }): Promise<void> {
    const version = parseVersion(versionParam, 'swarm');
    const current = this.get();
    validateSwarmUpdate(spec);
    const rotation = rotationRequest(spec, current);
    let next = structuredClone(current);
    if (rotation.kind !== 'none') {
      if (spec.CAConfig?.ExternalCAs?.length) throw invalid(EXTERNAL_CA_ROTATION_NOT_BUILT);
      next = await this.startRotation(next, rotation);
    }
    next.Version = { Index: version };
    // The CLI sends the whole spec it read, changed; keep defaults for anything it dropped.
    next.Spec = storedSpec(mergeSwarmSpec(defaultSwarmSpec(), spec));
    if (rotate.worker) next.JoinTokens.Worker = newJoinToken(this.ca());
    if (rotate.manager) next.JoinTokens.Manager = newJoinToken(this.ca());
    const change = unlockKeyChange(!!current.Spec.EncryptionConfig?.AutoLockManagers, !!next.Spec.EncryptionConfig?.AutoLockManagers, !!rotate.managerUnlockKey, !!current.SealedUnlockKey);
    if (change === 'new') next.SealedUnlockKey = sealUnlockKey(this.box, next.ID, newUnlockKey());
    if (change === 'remove') delete next.SealedUnlockKey;
    next.UpdatedAt = nowIso(this.ctx.now());
    await this.ctx.store.txn().update('cluster', next, current).commit();
  }

  // `docker swarm ca --rotate`: a new root (made here, or the user's,
  // checked), cross-signed with the current root's key, its key sealed; the
  // leader's loop ends the rotation once every node holds a certificate of it.
  private async startRotation(c: ClusterObject, req: Exclude<RotationRequest, { kind: 'none' }>): Promise<ClusterObject> {
    let root: RootCA;
    if (req.kind === 'generate') root = await createRootCA(this.ctx.now());
    else {
      try { root = checkGivenRootCA(req.certPem, req.keyPem, this.ctx.now()); } catch (e) {
        throw invalid(`rpc error: code = InvalidArgument desc = ${(e as Error).message}`);
      }
    }
    const crossSignedPem = await crossSignRoot(this.ca(), root.certPem);
    return startedRotation(c, { certPem: root.certPem, crossSignedPem, sealedKey: sealCAKey(this.box, c.ID, root.keyPem), issuer: await issuerInfo(root.certPem) }, nowIso(this.ctx.now()));
  }

  // The current unlock key as Docker shows it; empty while autolock is off
  // (the CLI then prints "no unlock key is set").
  unlockKey(): { UnlockKey: string } {
    const key = wantedUnlockKey(this.box, this.get());
    return { UnlockKey: key ? formatUnlockKey(key) : '' };
  }
}
