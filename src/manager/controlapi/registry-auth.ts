import type { ContainerSpec, PullOptions, Service, ServiceSpec, Task } from '../../model/types';
import { invalid, precondition } from '../../common/errors';
import type { SecretBox } from './secret-box';

// `--with-registry-auth`: the CLI's X-Registry-Auth header (base64url JSON
// credentials) is kept with the service as moby does (ContainerSpec.PullOptions),
// but sealed with the swarm's data key like secret values, bound to the service
// (a sealed value copied onto another service does not open). No answer of the
// API carries PullOptions (moby's conversion drops them too); only a task handed
// to its node has the credentials in clear, for the pull.

const aad = (serviceId: string): string => `registry-auth:${serviceId}`;

function containerOf(spec: ServiceSpec | undefined): ContainerSpec | undefined {
  return spec?.TaskTemplate?.ContainerSpec;
}

// What the update's `registryAuthFrom` names (moby's types.RegistryAuthFrom).
export type RegistryAuthFrom = 'spec' | 'previous-spec';

export function parseRegistryAuthFrom(raw: string | null): RegistryAuthFrom {
  if (!raw || raw === 'spec') return 'spec';
  if (raw === 'previous-spec') return 'previous-spec';
  throw invalid('unsupported registryAuthFrom value');
}

// The X-Registry-Auth a request carried ('' and absent are the same: none).
export interface RegistryAuthRequest {
  encoded?: string;
  from?: RegistryAuthFrom;
}

// The PullOptions a new service spec stores: sealed credentials or none.
// `stored` is the spec being written (PullOptions a client might have put in
// it are not Docker's API and are dropped).
export function sealForCreate(stored: ServiceSpec, serviceId: string, encoded: string | undefined, box: SecretBox): void {
  const c = containerOf(stored);
  if (!c) return;
  delete c.PullOptions;
  if (encoded) c.PullOptions = { SealedRegistryAuth: box.seal(Buffer.from(encoded, 'utf8'), aad(serviceId)) };
}

// An update (not a rollback, which takes the previous spec whole): new
// credentials when the request has them, else those of the current spec or of
// the previous one (moby's UpdateService). The same credentials keep their
// sealed form, so tasks are not redeployed for a re-seal.
export function sealForUpdate(stored: ServiceSpec, current: Service, req: RegistryAuthRequest, box: SecretBox): void {
  const c = containerOf(stored);
  if (!c) return;
  delete c.PullOptions;
  let kept: PullOptions | undefined;
  if (req.encoded) {
    const now = containerOf(current.Spec)?.PullOptions?.SealedRegistryAuth;
    const same = now !== undefined && openOrUndefined(box, now, current.ID) === req.encoded;
    kept = { SealedRegistryAuth: same ? now : box.seal(Buffer.from(req.encoded, 'utf8'), aad(current.ID)) };
  } else {
    let from: ServiceSpec | undefined = current.Spec;
    if (req.from === 'previous-spec') {
      if (!current.PreviousSpec) throw precondition('service does not have a previous spec');
      from = current.PreviousSpec;
    }
    const sealed = containerOf(from)?.PullOptions?.SealedRegistryAuth;
    if (sealed) kept = { SealedRegistryAuth: sealed };
  }
  if (kept) c.PullOptions = kept;
}

function openOrUndefined(box: SecretBox, sealed: string, serviceId: string): string | undefined {
  try { return box.open(sealed, aad(serviceId)).toString('utf8'); } catch { return undefined; }
}

// Removes PullOptions from a spec that is about to be answered (a copy).
export function hideInSpec(spec: ServiceSpec | undefined): void {
  const c = containerOf(spec);
  if (c) delete c.PullOptions;
}

export function hideInService<S extends Pick<Service, 'Spec' | 'PreviousSpec'>>(s: S): S {
  hideInSpec(s.Spec);
  hideInSpec(s.PreviousSpec);
  return s;
}

export function hideInTask<T extends Pick<Task, 'Spec'>>(t: T): T {
  if (t.Spec?.ContainerSpec) delete t.Spec.ContainerSpec.PullOptions;
  return t;
}

// The task as its node receives it: the credentials in clear as
// PullOptions.RegistryAuth, the sealed form gone. The task's spec is shared
// by the store's mirror, so a task with credentials is copied, never changed.
// Credentials that do not open (another swarm's key, a damaged value) are left
// out: the pull then goes without them and fails as Docker's would.
export function revealTaskForNode(task: Task, box: SecretBox): Task {
  const sealed = task.Spec?.ContainerSpec?.PullOptions?.SealedRegistryAuth;
  if (sealed === undefined) return task;
  const clear = openOrUndefined(box, sealed, task.ServiceID);
  const containerSpec: ContainerSpec = { ...task.Spec.ContainerSpec };
  if (clear === undefined) delete containerSpec.PullOptions;
  else containerSpec.PullOptions = { RegistryAuth: clear };
  return { ...task, Spec: { ...task.Spec, ContainerSpec: containerSpec } };
}
