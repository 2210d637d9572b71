import type { ContainerSpec, Service, ServiceSpec } from '../../model/types';
import { invalid, notFound, ShoalError } from '../../common/errors';
import { checkBase64 } from '../../common/go/go-json';
import type { Store, StoreTxn } from '../../store/store';
import type { Objects } from '../../store/objects';
import { referenceKey } from '../../store/keys';

// What secrets and configs share: SwarmKit's rules for their names, payloads
// and the services that reference them (controlapi/common.go, secret.go,
// config.go, service.go checkSecretExistence).

const bad = (msg: string) => invalid(`rpc error: code = InvalidArgument desc = ${msg}`);

// Docker 20.10 (swarmkit before 2022) limits both payloads to 500 KiB; later
// SwarmKit raised configs to 1000 KiB.
export const MAX_PAYLOAD_BYTES = 500 * 1024;

// Not the DNS label of services: dots are allowed, 64 characters.
const NAME_RE = /^[a-zA-Z0-9]+(?:[a-zA-Z0-9-_.]*[a-zA-Z0-9])?$/;

export function validatePayloadName(name: string | undefined): void {
  if (!name) throw bad('name must be provided');
  if (name.length > 64 || !NAME_RE.test(name)) {
    throw bad('invalid name, only 64 [a-zA-Z0-9-_.] characters allowed, and the start and end character must be [a-zA-Z0-9]');
  }
}

// Go's encoding/json decodes []byte with base64.StdEncoding, strictly.
export function decodeData(data: unknown): Buffer {
  if (data === undefined || data === null) return Buffer.alloc(0);
  if (typeof data !== 'string') throw invalid('json: cannot unmarshal non-string into Go struct field of type []uint8');
  checkBase64(data);
  return Buffer.from(data.replace(/[\r\n]/g, ''), 'base64');
}

export function validatePayloadSize(what: 'secret' | 'config', data: Buffer): void {
  if (data.length >= MAX_PAYLOAD_BYTES || data.length < 1) {
    throw bad(`${what} data must be larger than 0 and less than ${MAX_PAYLOAD_BYTES} bytes`);
  }
}

export function parsePayloadVersion(v: string | null, what: 'secret' | 'config'): number {
  if (v === null || !/^\d+$/.test(v)) throw invalid(`invalid ${what} version`);
  return Number(v);
}

// ---------- references from services ----------

export function secretRefsOf(spec: ServiceSpec | undefined): NonNullable<ContainerSpec['Secrets']> {
  return spec?.TaskTemplate?.ContainerSpec?.Secrets ?? [];
}
export function configRefsOf(spec: ServiceSpec | undefined): NonNullable<ContainerSpec['Configs']> {
  return spec?.TaskTemplate?.ContainerSpec?.Configs ?? [];
}

// Every referenced secret and config exists under the name the reference
// gives (SwarmKit's checkSecretExistence / checkConfigExistence).
export function checkReferencesExist(store: Store, spec: ServiceSpec): void {
  const missingSecrets = secretRefsOf(spec)
    .filter((r) => store.get('secrets', r.SecretID)?.Spec.Name !== r.SecretName)
    .map((r) => r.SecretName);
  if (missingSecrets.length) throw bad(`${missingSecrets.length === 1 ? 'secret' : 'secrets'} not found: ${missingSecrets.join(', ')}`);
  const missingConfigs = configRefsOf(spec)
    .filter((r) => store.get('configs', r.ConfigID)?.Spec.Name !== r.ConfigName)
    .map((r) => r.ConfigName);
  if (missingConfigs.length) throw bad(`${missingConfigs.length === 1 ? 'config' : 'configs'} not found: ${missingConfigs.join(', ')}`);
}

// Refuses removal while a service's current spec references the object
// (SwarmKit indexes services by the secrets of Spec, not PreviousSpec).
export function refuseIfInUse(store: Store, what: 'secret' | 'config', id: string, name: string): void {
  const users = store.list('services')
    .filter((s: Service) => (what === 'secret'
      ? secretRefsOf(s.Spec).some((r) => r.SecretID === id)
      : configRefsOf(s.Spec).some((r) => r.ConfigID === id)))
    .sort((a, b) => (a.ID < b.ID ? -1 : a.ID > b.ID ? 1 : 0))
    .map((s) => s.Spec.Name ?? s.ID);
  if (users.length) {
    throw bad(`${what} '${name}' is in use by the following ${users.length === 1 ? 'service' : 'services'}: ${users.join(', ')}`);
  }
}

// SwarmKit checks references and writes in one store transaction under its
// store lock. Here the checks read the mirror and the write is an etcd
// transaction that re-asserts what was checked, so it holds with several
// managers writing at once:
//  - a service write requires every referenced secret/config at the version
//    it saw, and touches each one's reference key (keys.ts referenceKey);
//  - a removal requires the reference key unchanged since the mirror it
//    checked (no service referenced the object then, and none did since).
// A refused transaction is checked again against the caught-up mirror, so
// the error is the right one ("secret not found", "in use").

// Commits a service write (`build` adds it to the transaction) with its references guarded.
export async function commitWithReferences(store: Store, spec: ServiceSpec, build: (t: StoreTxn) => StoreTxn, networkIds: Iterable<string> = []): Promise<void> {
  const networks = [...new Set(networkIds)];
  for (let attempt = 1; ; attempt++) {
    checkReferencesExist(store, spec);
    const txn = build(store.txn());
    // Once per object: etcd refuses a transaction that puts one key twice (a secret mounted at two targets).
    for (const id of new Set(secretRefsOf(spec).map((r) => r.SecretID))) {
      txn.requireVersion('secrets', store.get('secrets', id)!).putMeta(referenceKey('secrets', id), id);
    }
    for (const id of new Set(configRefsOf(spec).map((r) => r.ConfigID))) {
      txn.requireVersion('configs', store.get('configs', id)!).putMeta(referenceKey('configs', id), id);
    }
    // Networks (their IDs were resolved and checked by the caller, ingress
    // included for published ports): same guard against a removal meanwhile.
    const seen = new Map<string, number>();
    for (const id of networks) {
      const n = store.get('networks', id);
      if (!n) throw notFound(`network ${id} not found`);
      txn.requireVersion('networks', n).putMeta(referenceKey('networks', id), id);
      seen.set(id, n.Version.Index);
    }
    try {
      await txn.commit();
      return;
    } catch (e) {
      if (!(e instanceof ShoalError && (e.kind === 'sequence' || e.kind === 'conflict'))) throw e;
      checkReferencesExist(store, spec);
      // The allocator writes networks (subnet, VNI) right after they are made:
      // a newer network is no conflict of this write (the refusal would read as
      // a name conflict). The mirror has caught up with what beat us; go again.
      const networkMoved = [...seen].some(([id, v]) => store.get('networks', id)?.Version.Index !== v);
      if (!networkMoved || attempt >= MAX_NETWORK_RETRIES) throw e;
    }
  }
}

const MAX_NETWORK_RETRIES = 5;

// Removes a secret or config unless a service references it, as one guarded transaction.
export async function removeUnreferenced(store: Store, what: 'secret' | 'config', obj: Objects['secrets'] | Objects['configs']): Promise<void> {
  const kind = what === 'secret' ? 'secrets' : 'configs';
  const key = referenceKey(kind, obj.ID);
  const seen = store.meta(key)?.modRevision ?? 0;
  refuseIfInUse(store, what, obj.ID, obj.Spec.Name ?? '');
  const txn = store.txn().requireMeta(key, seen);
  if (kind === 'secrets') txn.delete('secrets', obj as Objects['secrets']); else txn.delete('configs', obj as Objects['configs']);
  if (seen) txn.deleteMeta(key);
  try {
    await txn.commit();
  } catch (e) {
    if (e instanceof ShoalError && e.kind === 'sequence') refuseIfInUse(store, what, obj.ID, obj.Spec.Name ?? '');
    throw e;
  }
}
