import type { Config, ConfigSpec, CreateResponse } from '../../model/types';
import { invalid, ShoalError } from '../../common/errors';
import { matchLabels, type Filters } from '../../common/filters';
import { newId } from '../../common/ids';
import { nowIso } from '../../common/time';
import type { ControlContext } from './context';
import {
  decodeData, parsePayloadVersion, removeUnreferenced, validatePayloadName, validatePayloadSize,
} from './references';
import { resolveObject } from './resolve';

// Docker 20.10 accepts these three for configs (`names` came later).
export const CONFIG_FILTERS = ['id', 'label', 'name'] as const;

const bad = (msg: string) => invalid(`rpc error: code = InvalidArgument desc = ${msg}`);

// dockerd's field order: ID, Version, CreatedAt, UpdatedAt, Spec{Name, Labels, Data, Templating}.
function publicConfig(c: Config): Config {
  const spec: ConfigSpec = { Name: c.Spec.Name, Labels: { ...(c.Spec.Labels ?? {}) }, Data: c.Spec.Data };
  if (c.Spec.Templating) spec.Templating = structuredClone(c.Spec.Templating);
  return { ID: c.ID, Version: { ...c.Version }, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt, Spec: spec };
}

// Docker's configs (SwarmKit controlapi/config.go): like secrets, but not
// secret: the value is stored as sent and inspect shows it.
export class ConfigsApi {
  constructor(private readonly ctx: ControlContext) {}

  private resolve(ref: string): Config {
    const { store } = this.ctx;
    return resolveObject('config', ref, store.list('configs'), (c) => c.Spec.Name, (id) => store.get('configs', id));
  }

  inspect(ref: string): Config { return publicConfig(this.resolve(ref)); }

  // A config matches any of the name prefixes and ID prefixes given, and every label.
  list(filters: Filters): Config[] {
    const prefixes = filters.get('name') ?? [];
    const ids = filters.get('id') ?? [];
    const any = prefixes.length + ids.length > 0;
    return this.ctx.store.list('configs').filter((c) => {
      const name = c.Spec.Name ?? '';
      if (any && !(prefixes.some((p) => name.startsWith(p)) || ids.some((p) => c.ID.startsWith(p)))) return false;
      return matchLabels(c.Spec.Labels, filters.get('label'));
    }).map(publicConfig).sort((a, b) => a.CreatedAt.localeCompare(b.CreatedAt) || a.ID.localeCompare(b.ID));
  }

  async create(spec: ConfigSpec | undefined): Promise<CreateResponse> {
    if (!spec || typeof spec !== 'object') throw bad('invalid argument');
    validatePayloadName(spec.Name);
    const data = decodeData(spec.Data);
    validatePayloadSize('config', data);
    const now = nowIso(this.ctx.now());
    const config: Config = {
      ID: newId(),
      Version: { Index: 0 },
      CreatedAt: now,
      UpdatedAt: now,
      Spec: { Name: spec.Name, Labels: { ...(spec.Labels ?? {}) }, Data: data.toString('base64') },
    };
    if (spec.Templating?.Name) config.Spec.Templating = structuredClone(spec.Templating);
    await this.ctx.store.txn().create('configs', config).commit();
    return { ID: config.ID };
  }

  async update(ref: string, versionParam: string | null, spec: ConfigSpec | undefined): Promise<void> {
    const version = parsePayloadVersion(versionParam, 'config');
    const current = this.resolve(ref);
    const s = spec ?? {};
    const sameData = s.Data === undefined || s.Data === null || decodeData(s.Data).equals(Buffer.from(current.Spec.Data ?? '', 'base64'));
    if ((s.Name ?? '') !== (current.Spec.Name ?? '') || !sameData) throw bad('only updates to Labels are allowed');
    const next = structuredClone(current);
    next.Version = { Index: version };
    next.Spec.Labels = { ...(s.Labels ?? {}) };
    next.UpdatedAt = nowIso(this.ctx.now());
    await this.ctx.store.txn().update('configs', next, current).commit();
  }

  async remove(ref: string): Promise<void> {
    const { store } = this.ctx;
    for (let attempt = 0; ; attempt++) {
      try {
        await removeUnreferenced(store, 'config', this.resolve(ref));
        return;
      } catch (e) {
        if (!(e instanceof ShoalError && e.kind === 'sequence') || attempt >= 5) throw e;
      }
    }
  }

  // The value as bytes, for the agent's control plane.
  reveal(id: string): Buffer | undefined {
    const c = this.ctx.store.get('configs', id);
    return c ? Buffer.from(c.Spec.Data ?? '', 'base64') : undefined;
  }
}
