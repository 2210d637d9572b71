import { timingSafeEqual } from 'node:crypto';
import type { CreateResponse, Secret, SecretSpec } from '../../model/types';
import { invalid, ShoalError } from '../../common/errors';
import { matchLabels, type Filters } from '../../common/filters';
import { newId } from '../../common/ids';
import { nowIso } from '../../common/time';
import type { SecretObject } from '../../store/objects';
import type { ControlContext } from './context';
import {
  decodeData, parsePayloadVersion, removeUnreferenced, validatePayloadName, validatePayloadSize,
} from './references';
import { resolveObject } from './resolve';
import type { SecretBox } from './secret-box';

export const SECRET_FILTERS = ['id', 'label', 'name', 'names'] as const;

const bad = (msg: string) => invalid(`rpc error: code = InvalidArgument desc = ${msg}`);

// What the API shows of a stored secret: never the value (SwarmKit clears
// Spec.Data on every answer), never the sealed value.
export function publicSecret(s: SecretObject): Secret {
  const spec: SecretSpec = { Name: s.Spec.Name, Labels: { ...(s.Spec.Labels ?? {}) } };
  if (s.Spec.Driver) spec.Driver = structuredClone(s.Spec.Driver);
  if (s.Spec.Templating) spec.Templating = structuredClone(s.Spec.Templating);
  // dockerd's field order.
  return { ID: s.ID, Version: { ...s.Version }, CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt, Spec: spec };
}

// Docker's secrets (SwarmKit controlapi/secret.go). The value is sealed with
// the swarm's data key before it is written; only `reveal` opens it, for the
// agent of a node that runs a task referencing it.
export class SecretsApi {
  constructor(private readonly ctx: ControlContext, private readonly box: SecretBox) {}

  private resolve(ref: string): SecretObject {
    const { store } = this.ctx;
    return resolveObject('secret', ref, store.list('secrets'), (s) => s.Spec.Name, (id) => store.get('secrets', id));
  }

  inspect(ref: string): Secret { return publicSecret(this.resolve(ref)); }

  // Filters as SwarmKit's ListSecrets: a secret matches any of the exact
  // names, name prefixes and ID prefixes given (one OR across the three), and
  // every label.
  list(filters: Filters): Secret[] {
    const names = filters.get('names') ?? [];
    const prefixes = filters.get('name') ?? [];
    const ids = filters.get('id') ?? [];
    const any = names.length + prefixes.length + ids.length > 0;
    return this.ctx.store.list('secrets').filter((s) => {
      const name = s.Spec.Name ?? '';
      if (any && !(names.includes(name) || prefixes.some((p) => name.startsWith(p)) || ids.some((p) => s.ID.startsWith(p)))) return false;
      return matchLabels(s.Spec.Labels, filters.get('label'));
    }).map(publicSecret).sort((a, b) => a.CreatedAt.localeCompare(b.CreatedAt) || a.ID.localeCompare(b.ID));
  }

  async create(spec: SecretSpec | undefined): Promise<CreateResponse> {
    if (!spec || typeof spec !== 'object') throw bad('invalid argument');
    validatePayloadName(spec.Name);
    if (spec.Driver) {
      // Secret drivers are plugins (e.g. a vault); there are none here.
      if (!spec.Driver.Name) throw bad('secret driver must have a name');
      throw bad(`secret driver ${spec.Driver.Name} is not supported`);
    }
    const data = decodeData(spec.Data);
    validatePayloadSize('secret', data);
    const now = nowIso(this.ctx.now());
    const id = newId();
    const stored: SecretObject = {
      ID: id,
      Version: { Index: 0 },
      CreatedAt: now,
      UpdatedAt: now,
      Spec: { Name: spec.Name, Labels: { ...(spec.Labels ?? {}) } },
      SealedData: this.box.seal(data, id),
    };
    if (spec.Templating?.Name) stored.Spec.Templating = structuredClone(spec.Templating);
    data.fill(0);
    await this.ctx.store.txn().create('secrets', stored).commit();
    return { ID: id };
  }

  // Only labels may change; the name must be the same and a value, if sent,
  // must be the stored one (stack deploy sends it again on every deploy).
  async update(ref: string, versionParam: string | null, spec: SecretSpec | undefined): Promise<void> {
    const version = parsePayloadVersion(versionParam, 'secret');
    const current = this.resolve(ref);
    const s = spec ?? {};
    let sameData = true;
    if (s.Data !== undefined && s.Data !== null) {
      const sent = decodeData(s.Data);
      const stored = this.box.open(current.SealedData, current.ID);
      sameData = sent.length === stored.length && timingSafeEqual(sent, stored);
      sent.fill(0);
      stored.fill(0);
    }
    if ((s.Name ?? '') !== (current.Spec.Name ?? '') || !sameData) throw bad('only updates to Labels are allowed');
    const next = structuredClone(current);
    next.Version = { Index: version };
    next.Spec.Labels = { ...(s.Labels ?? {}) };
    next.UpdatedAt = nowIso(this.ctx.now());
    await this.ctx.store.txn().update('secrets', next, current).commit();
  }

  async remove(ref: string): Promise<void> {
    const { store } = this.ctx;
    for (let attempt = 0; ; attempt++) {
      try {
        await removeUnreferenced(store, 'secret', this.resolve(ref));
        return;
      } catch (e) {
        // Its labels changed in between: look again.
        if (!(e instanceof ShoalError && e.kind === 'sequence') || attempt >= 5) throw e;
      }
    }
  }

  // The value, for the dispatcher side of the agent's control plane only.
  reveal(id: string): Buffer | undefined {
    const s = this.ctx.store.get('secrets', id);
    return s ? this.box.open(s.SealedData, s.ID) : undefined;
  }
}
