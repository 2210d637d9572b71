import type { ContainerSpec, Service, ServiceSpec } from '../../model/types';
import { invalid } from '../../common/errors';
import { checkBase64 } from '../../common/go/go-json';
import type { Store } from '../../store/store';

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

// SwarmKit checks references and writes in one store transaction. Here the
// check reads the mirror and the write is an etcd transaction, so a service
// create/update and a secret/config removal are serialised by this lock: the
// one that commits second sees the other's write. Control API verbs run on the
// leader only (SwarmKit forwards them there), so a lock in the leader's process
// is enough.
const locks = new WeakMap<Store, { tail: Promise<unknown> }>();

export function withReferenceLock<T>(store: Store, fn: () => Promise<T>): Promise<T> {
  let lock = locks.get(store);
  if (!lock) locks.set(store, (lock = { tail: Promise.resolve() }));
  const run = lock.tail.then(fn, fn);
  lock.tail = run.catch(() => undefined);
  return run;
}
