import type { Backend, Compare, KeyValue, Op, WatchEvent, WatchHandle } from './backend';
import { MAX_TXN_OPS } from './backend';
import { nameKey, objectKey, parseObjectKey, ROOT } from './keys';
import { KINDS, NAMED_KINDS, type Kind, type Objects, type StoreEvent } from './objects';
import { conflict, notFound, outOfSequence, unavailable, ShoalError } from '../common/errors';
import type { Logger } from '../common/log';

type Listener = (events: StoreEvent[]) => void;

interface Named { Spec?: { Name?: string } }

// The cluster state: etcd is the truth; this class keeps a mirror of it in
// memory, fed by one watch that resumes from its last revision, and fans each
// committed change out to the components (orchestrators, scheduler, agent,
// event stream). Reads come from the mirror; writes go to etcd as
// compare-and-swap transactions on the objects' mod revisions.
export class Store {
  private readonly objects = new Map<Kind, Map<string, unknown>>(KINDS.map((k) => [k, new Map()]));
  private readonly tasksByService = new Map<string, Set<string>>();
  private readonly tasksByNode = new Map<string, Set<string>>();
  private readonly listeners = new Set<Listener>();
  private waiters: Array<{ revision: number; resolve: () => void }> = [];
  private watch?: WatchHandle;
  private closed = false;
  revision = 0;

  private constructor(private readonly backend: Backend, private readonly log: Logger) {}

  static async open(backend: Backend, log: Logger): Promise<Store> {
    const store = new Store(backend, log);
    await store.load();
    return store;
  }

  // ---------- reads ----------
  get<K extends Kind>(kind: K, id: string): Objects[K] | undefined {
    return this.objects.get(kind)!.get(id) as Objects[K] | undefined;
  }

  list<K extends Kind>(kind: K): Objects[K][] {
    return [...this.objects.get(kind)!.values()] as Objects[K][];
  }

  count(kind: Kind): number { return this.objects.get(kind)!.size; }

  tasksOfService(serviceId: string): Objects['tasks'][] {
    return [...(this.tasksByService.get(serviceId) ?? [])].map((id) => this.get('tasks', id)!);
  }

  tasksOfNode(nodeId: string): Objects['tasks'][] {
    return [...(this.tasksByNode.get(nodeId) ?? [])].map((id) => this.get('tasks', id)!);
  }

  // ---------- watch ----------
  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  // Resolves once the mirror has applied `revision`: a caller that wrote at
  // `revision` then reads its own write.
  waitFor(revision: number): Promise<void> {
    if (this.revision >= revision) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ revision, resolve }));
  }

  // ---------- writes ----------
  txn(): StoreTxn { return new StoreTxn(this); }

  /** @internal used by StoreTxn */
  async commitOps(compares: Compare[], ops: Op[], onConflict: () => ShoalError): Promise<number> {
    let res;
    try {
      res = await this.backend.txn(compares, ops);
    } catch (e) {
      throw unavailable(`cluster store unavailable: ${(e as Error).message}`);
    }
    if (!res.succeeded) {
      // Let the mirror catch up to what beat us, so a retry reads it.
      await this.waitFor(res.revision);
      throw onConflict();
    }
    await this.waitFor(res.revision);
    return res.revision;
  }

  // Read-modify-write of one object, retried when another writer got there
  // first. `change` gets a copy of the current object and returns the new one,
  // or undefined to leave it alone. Resolves to the stored result (undefined if
  // the object is gone or unchanged).
  async mutate<K extends Kind>(kind: K, id: string, change: (current: Objects[K]) => Objects[K] | undefined, attempts = 10): Promise<Objects[K] | undefined> {
    for (let i = 0; ; i++) {
      const current = this.get(kind, id);
      if (!current) return undefined;
      const next = change(structuredClone(current));
      if (!next) return undefined;
      try {
        await this.txn().update(kind, next, current).commit();
        return next;
      } catch (e) {
        if (!(e instanceof ShoalError && e.kind === 'sequence') || i + 1 >= attempts) throw e;
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.watch?.close().catch(() => undefined);
    await this.backend.close();
  }

  // ---------- mirror maintenance ----------
  private async load(): Promise<void> {
    const { kvs, revision } = await this.backend.range(ROOT);
    const fresh = new Map<Kind, Map<string, unknown>>(KINDS.map((k) => [k, new Map()]));
    for (const kv of kvs) {
      const parsed = parseObjectKey(kv.key);
      if (parsed) fresh.get(parsed.kind)?.set(parsed.id, decode(kv));
    }
    // Diff against what we had, so a reload after a lost watch still tells
    // every component what changed in between.
    const events: StoreEvent[] = [];
    for (const kind of KINDS) {
      const before = this.objects.get(kind)!;
      const after = fresh.get(kind)!;
      for (const [id, obj] of after) {
        const prev = before.get(id);
        if (!prev) events.push({ kind, action: 'create', id, object: obj as never, revision });
        else if ((prev as { Version: { Index: number } }).Version.Index !== (obj as { Version: { Index: number } }).Version.Index)
          events.push({ kind, action: 'update', id, object: obj as never, previous: prev as never, revision });
      }
      for (const [id, prev] of before) if (!after.has(id)) events.push({ kind, action: 'delete', id, previous: prev as never, revision });
    }
    for (const e of events) this.applyToMirror(e);
    this.revision = Math.max(this.revision, revision);
    if (events.length) this.emit(events);
    this.releaseWaiters();
    this.watch = await this.backend.watch(ROOT, revision + 1, {
      onEvents: (evs, rev) => this.onWatchEvents(evs, rev),
      onLost: (err) => {
        if (this.closed) return;
        this.log.warn({ err: err.message }, 'store watch lost; reloading');
        void this.watch?.close().catch(() => undefined);
        this.reload();
      },
    });
  }

  private reload(attempt = 0): void {
    this.load().catch((err: Error) => {
      if (this.closed) return;
      const delay = Math.min(5000, 100 * 2 ** attempt);
      this.log.warn({ err: err.message, delay }, 'store reload failed; retrying');
      setTimeout(() => this.reload(attempt + 1), delay).unref();
    });
  }

  private onWatchEvents(evs: WatchEvent[], headerRevision: number): void {
    const out: StoreEvent[] = [];
    let maxRev = this.revision;
    for (const e of evs) {
      maxRev = Math.max(maxRev, e.kv.modRevision);
      const parsed = parseObjectKey(e.kv.key);
      if (!parsed || !this.objects.has(parsed.kind)) continue;
      const { kind, id } = parsed;
      const previous = this.objects.get(kind)!.get(id) as never | undefined;
      if (e.type === 'put') {
        const object = decode(e.kv) as never;
        out.push({ kind, action: previous ? 'update' : 'create', id, object, previous, revision: e.kv.modRevision });
      } else if (previous) {
        out.push({ kind, action: 'delete', id, previous, revision: e.kv.modRevision });
      }
    }
    for (const e of out) this.applyToMirror(e);
    this.revision = Math.max(maxRev, this.revision, evs.length ? 0 : headerRevision);
    if (out.length) this.emit(out);
    this.releaseWaiters();
  }

  private applyToMirror(e: StoreEvent): void {
    const table = this.objects.get(e.kind)!;
    if (e.kind === 'tasks') {
      const prev = e.previous as Objects['tasks'] | undefined;
      const next = e.object as Objects['tasks'] | undefined;
      if (prev) { unindex(this.tasksByService, prev.ServiceID, e.id); if (prev.NodeID) unindex(this.tasksByNode, prev.NodeID, e.id); }
      if (next) { index(this.tasksByService, next.ServiceID, e.id); if (next.NodeID) index(this.tasksByNode, next.NodeID, e.id); }
    }
    if (e.action === 'delete') table.delete(e.id);
    else table.set(e.id, e.object);
  }

  private emit(events: StoreEvent[]): void {
    for (const l of this.listeners) {
      try { l(events); } catch (err) { this.log.error({ err }, 'store listener failed'); }
    }
  }

  private releaseWaiters(): void {
    if (!this.waiters.length) return;
    const still: typeof this.waiters = [];
    for (const w of this.waiters) (w.revision <= this.revision ? w.resolve() : still.push(w));
    this.waiters = still;
  }
}

function decode(kv: KeyValue): unknown {
  const obj = JSON.parse(kv.value) as { Version?: { Index: number } };
  obj.Version = { Index: kv.modRevision };
  return obj;
}

function encode(obj: unknown): string {
  const { Version: _v, ...rest } = obj as { Version?: unknown };
  return JSON.stringify(rest);
}

function index(m: Map<string, Set<string>>, key: string, id: string): void {
  let s = m.get(key);
  if (!s) m.set(key, (s = new Set()));
  s.add(id);
}
function unindex(m: Map<string, Set<string>>, key: string, id: string): void {
  const s = m.get(key);
  if (!s) return;
  s.delete(id);
  if (!s.size) m.delete(key);
}

const KIND_SINGULAR: Record<Kind, string> = {
  cluster: 'cluster', nodes: 'node', services: 'service', tasks: 'task', secrets: 'secret', configs: 'config', networks: 'network',
};

// A batch of writes committed together. Each write carries its own condition:
// create = name and ID free; update/delete = the caller's Version.Index still current.
export class StoreTxn {
  private readonly compares: Compare[] = [];
  private readonly ops: Op[] = [];
  private readonly written: Array<{ Version: { Index: number } }> = [];
  private conflictError: () => ShoalError = outOfSequence;

  constructor(private readonly store: Store) {}

  get size(): number { return this.ops.length; }

  create<K extends Kind>(kind: K, obj: Objects[K]): this {
    const id = (obj as { ID: string }).ID;
    this.compares.push({ key: objectKey(kind, id), absent: true });
    this.ops.push({ put: objectKey(kind, id), value: encode(obj) });
    const name = (obj as Named).Spec?.Name;
    if (NAMED_KINDS.has(kind) && name) {
      this.compares.push({ key: nameKey(kind, name), absent: true });
      this.ops.push({ put: nameKey(kind, name), value: id });
      const what = KIND_SINGULAR[kind];
      this.conflictError = () => conflict(`rpc error: code = AlreadyExists desc = ${kind === 'services' ? `name conflicts with an existing object: service ${name} already exists` : `${what} ${name} already exists`}`);
    }
    this.written.push(obj as never);
    return this;
  }

  // Writes `obj` if the stored object still has obj.Version.Index (the version
  // the caller read). A renamed object moves its name key in the same transaction.
  update<K extends Kind>(kind: K, obj: Objects[K], previous?: Objects[K]): this {
    const o = obj as { ID: string; Version: { Index: number } };
    this.compares.push({ key: objectKey(kind, o.ID), modRevision: o.Version.Index });
    this.ops.push({ put: objectKey(kind, o.ID), value: encode(obj) });
    const oldName = (previous as Named | undefined)?.Spec?.Name;
    const newName = (obj as Named).Spec?.Name;
    if (NAMED_KINDS.has(kind) && previous && oldName !== newName && newName) {
      this.compares.push({ key: nameKey(kind, newName), absent: true });
      this.ops.push({ del: nameKey(kind, oldName ?? '') }, { put: nameKey(kind, newName), value: o.ID });
    }
    this.written.push(o);
    return this;
  }

  delete<K extends Kind>(kind: K, obj: Objects[K]): this {
    const o = obj as { ID: string; Version: { Index: number } };
    this.compares.push({ key: objectKey(kind, o.ID), modRevision: o.Version.Index });
    this.ops.push({ del: objectKey(kind, o.ID) });
    const name = (obj as Named).Spec?.Name;
    if (NAMED_KINDS.has(kind) && name) this.ops.push({ del: nameKey(kind, name) });
    return this;
  }

  // Commits atomically. Throws the kind's conflict error (duplicate name) or
  // "update out of sequence" when a condition fails; nothing is written then.
  async commit(): Promise<number> {
    if (this.ops.length > MAX_TXN_OPS) throw new Error(`transaction of ${this.ops.length} operations exceeds ${MAX_TXN_OPS}; use commitBatch`);
    const revision = await this.store.commitOps(this.compares, this.ops, this.conflictError);
    for (const w of this.written) w.Version = { Index: revision };
    return revision;
  }
}

// For bulk writes by the control loops (thousands of tasks): several
// transactions of at most MAX_TXN_OPS; each keeps its own conditions. Returns
// how many of the batches failed their conditions (the loop re-reconciles).
export async function commitInBatches(store: Store, build: Array<(t: StoreTxn) => void>): Promise<{ failed: number; revision: number }> {
  let failed = 0;
  let revision = 0;
  let txn = store.txn();
  const flush = async (): Promise<void> => {
    if (!txn.size) return;
    try { revision = await txn.commit(); } catch (e) {
      if (e instanceof ShoalError && (e.kind === 'sequence' || e.kind === 'conflict')) failed++;
      else throw e;
    }
    txn = store.txn();
  };
  for (const b of build) {
    if (txn.size + 4 > MAX_TXN_OPS) await flush();
    b(txn);
  }
  await flush();
  return { failed, revision };
}

export function requireObject<K extends Kind>(store: Store, kind: K, id: string): Objects[K] {
  const o = store.get(kind, id);
  if (!o) throw notFound(`${KIND_SINGULAR[kind]} ${id} not found`);
  return o;
}
