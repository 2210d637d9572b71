import type { Logger } from '../common/log';
import { rangePages, type Backend, type Compare } from './backend';
import { OBJECTS, objectPrefix } from './keys';
import { KINDS, type Kind } from './objects';

// Finds a mirror that no longer matches etcd. The mirror follows one watch
// and checks that revisions arrive one by one, but a mirror wrong with no
// gap in the revisions would stay wrong for good: every write through this
// manager refused "out of sequence", a deleted service listed. The fault test
// found such mirrors after etcd kills (the store's own fault, since fixed: a
// backlog batch not applied revision by revision); these checks are for
// whatever else could do it. Three checks,
// each comparing the mirror and etcd at the same revision (the mirror's,
// read pinned), so none can be fooled by writes in flight:
//   - every `intervalMs`, the number of objects of each kind (count only,
//     cheap for etcd even at 150,000 tasks);
//   - after a write etcd refused although every one of its conditions held
//     in the mirror, the keys it compared;
//   - on demand (the store asks 10 s after each new watch), every object
//     key's mod revision, read without values in pages.
// (The store itself adds a fourth: a task naming a spec blob it lacks.)
// A disagreement calls `onDiverged`; the store then reloads.

export interface MirrorView {
  revision(): number;
  // What the mirror holds for `key` at its revision: the mod revision (0 when
  // absent), or undefined for keys it does not keep (name keys, spec blobs).
  modRevisionOf(key: string): number | undefined;
  // Keys of a kind the mirror accounts for: objects held, and values it could not decode.
  objectCount(kind: Kind): number;
  // Every object key the mirror accounts for, with its mod revision.
  objectKeys(): Iterable<[string, number]>;
}

export interface AuditOptions { intervalMs: number }

export const DEFAULT_AUDIT: AuditOptions = { intervalMs: 60_000 };

const DEEP_PAGE_KEYS = 10_000;

export class MirrorAudit {
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private running = false;
  private checking = false;

  constructor(
    private readonly view: MirrorView,
    private readonly backend: Pick<Backend, 'range' | 'count'>,
    private readonly log: Logger,
    private readonly onDiverged: (why: string) => void,
    private readonly opts: AuditOptions = DEFAULT_AUDIT,
  ) {}

  start(): void { this.arm(); }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private arm(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => { this.timer = undefined; void this.countCheck().finally(() => this.arm()); }, this.opts.intervalMs);
    this.timer.unref();
  }

  // Objects per kind, mirror against etcd at the mirror's revision. Resolves
  // to whether they agreed (see judge). One at a time.
  async countCheck(): Promise<boolean | undefined> {
    if (this.running || this.stopped) return undefined;
    this.running = true;
    try {
      const at = this.view.revision();
      return await this.judge(at, KINDS.map((k) => `${k} objects`), KINDS.map((k) => this.view.objectCount(k)),
        () => Promise.all(KINDS.map((k) => this.backend.count(objectPrefix(k), at))), 'mirror count check');
    } finally {
      this.running = false;
    }
  }

  // After etcd refused a write whose conditions all hold in the mirror (at
  // or past the refusal's revision): reads the compared keys at the mirror's
  // revision (a batch compares at most 128). Resolves to whether the mirror
  // agreed (undefined: not checked). One at a time: while a mirror is wrong,
  // every write retried against it is refused again.
  async checkRefusal(compares: Compare[]): Promise<boolean | undefined> {
    if (this.stopped || this.checking || !compares.length) return undefined;
    const held = compares.map((c) => holdsIn(this.view, c));
    if (held.some((h) => h !== true)) return undefined; // a condition the mirror cannot judge, or that fails there: a plain conflict
    const at = this.view.revision();
    const keys = [...new Set(compares.map((c) => c.key))];
    this.checking = true;
    try {
      return await this.judge(at, keys.map((k) => `${k} mod revision`), keys.map((k) => this.view.modRevisionOf(k)!),
        () => Promise.all(keys.map(async (key) => {
          const { kvs } = await this.backend.range(key, { revision: at, limit: 1 });
          return kvs.find((kv) => kv.key === key)?.modRevision ?? 0;
        })), 'refused write check');
    } finally {
      this.checking = false;
    }
  }

  // Every object key, etcd's at revision `at` (the mirror's when it starts)
  // against the mirror's as they are when the pages are in: the mirror moves
  // on meanwhile, so a key it changed or removed after `at` proves nothing.
  // Wrong: a key the mirror holds at an older mod revision than etcd had at
  // `at` (a lost update), or holds at a revision up to `at` while etcd had
  // none (a lost delete). A lost create is the count's to find.
  async deepCheck(): Promise<boolean | undefined> {
    if (this.stopped) return undefined;
    const at = this.view.revision();
    const etcd = new Map<string, number>();
    try {
      for await (const page of rangePages(this.backend, OBJECTS, DEEP_PAGE_KEYS, { revision: at, keysOnly: true })) {
        for (const kv of page.kvs) etcd.set(kv.key, kv.modRevision);
      }
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'mirror deep check skipped');
      return undefined;
    }
    const wrong: string[] = [];
    for (const [key, rev] of etcd) {
      const m = this.view.modRevisionOf(key);
      if (m !== undefined && m !== 0 && m < rev) wrong.push(`${key}: mod revision ${m} in the mirror, ${rev} in etcd`);
    }
    for (const [key, m] of this.view.objectKeys()) {
      if (m <= at && !etcd.has(key)) wrong.push(`${key}: mod revision ${m} in the mirror, none in etcd`);
    }
    if (!wrong.length) { this.log.debug({ keys: etcd.size, revision: at }, 'mirror deep check: the mirror agrees with etcd'); return true; }
    if (!this.stopped) this.onDiverged(`at revision ${at}, ${wrong.length} key(s) differ: ${wrong.slice(0, 5).join('; ')}`);
    return false;
  }

  // The mirror's figures against etcd's, read at revision `at`: true when all
  // agree; false (and onDiverged) when not; undefined when etcd did not answer
  // (or that revision is compacted away: nothing learnt).
  private async judge(at: number, names: string[], mirror: number[], readEtcd: () => Promise<number[]>, what: string): Promise<boolean | undefined> {
    let etcd: number[];
    try {
      etcd = await readEtcd();
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, `${what} skipped`);
      return undefined;
    }
    const wrong = names.flatMap((n, i) => (mirror[i] === etcd[i] ? [] : [`${n}: ${mirror[i]} in the mirror, ${etcd[i]} in etcd`]));
    if (!wrong.length) return true;
    if (!this.stopped) this.onDiverged(`at revision ${at}, ${wrong.join('; ')}`);
    return false;
  }
}

// Whether the mirror says `c` holds (undefined: it cannot tell).
function holdsIn(view: MirrorView, c: Compare): boolean | undefined {
  if ('createRevision' in c) return undefined;
  const m = view.modRevisionOf(c.key);
  if (m === undefined) return undefined;
  return 'absent' in c ? m === 0 : m === c.modRevision;
}
