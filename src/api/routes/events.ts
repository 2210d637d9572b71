import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Router } from '../router';
import type { Node, Service } from '../../model/types';
import type { Store } from '../../store/store';
import type { Kind, StoreEvent } from '../../store/objects';
import { parseFilters, type Filters } from '../../common/filters';
import { EngineClient } from '../../engine/client';
import { LineSplitter } from '../../engine/json-lines';
import { invalid } from '../../common/errors';

// ---------------------------------------------------------------------------
// Swarm events: what dockerd's ProcessClusterNotifications makes of swarmkit's
// store watch (moby daemon/events.go), made here from Shoal's store batches.
// ---------------------------------------------------------------------------

export type SwarmEventType = 'service' | 'node' | 'secret' | 'config' | 'network';

export interface SwarmEvent {
  Type: SwarmEventType;
  Action: 'create' | 'update' | 'remove';
  Actor: { ID: string; Attributes: Record<string, string> };
  scope: 'swarm';
  // Nanoseconds since the epoch; beyond 2^53, so a bigint (time is derived).
  timeNano: bigint;
}

const TYPE_OF: Partial<Record<Kind, SwarmEventType>> = {
  services: 'service', nodes: 'node', secrets: 'secret', configs: 'config', networks: 'network',
};

const ACTION_OF = { create: 'create', update: 'update', delete: 'remove' } as const;

export const nowNs = (): bigint => BigInt(Date.now()) * 1_000_000n;

// RFC 3339 with up to nanoseconds → ns since the epoch; undefined if unparseable.
export function isoToNs(iso: string | undefined): bigint | undefined {
  const m = iso ? /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(iso) : null;
  if (!m) return undefined;
  const ms = Date.parse(m[1]! + m[3]!);
  if (Number.isNaN(ms)) return undefined;
  return BigInt(ms) * 1_000_000n + BigInt((m[2] ?? '').slice(0, 9).padEnd(9, '0'));
}

interface Stamped { CreatedAt?: string; UpdatedAt?: string; Spec?: { Name?: unknown } }

// One store change → the event dockerd would publish, or undefined for kinds
// that have none (tasks, the cluster object).
export function swarmEventOf(e: StoreEvent, now: () => bigint = nowNs): SwarmEvent | undefined {
  const type = TYPE_OF[e.kind];
  if (!type) return undefined;
  const obj = (e.object ?? e.previous) as Stamped & { ID?: string };
  const prev = e.previous as Stamped | undefined;
  let name = typeof obj.Spec?.Name === 'string' ? obj.Spec.Name : '';
  if (type === 'node' && !name) name = (obj as unknown as Node).Description?.Hostname ?? '';
  const attrs: Record<string, string> = { name };
  // moby stamps create/update with the object's CreatedAt/UpdatedAt and
  // remove with the current time. A write that did not bump UpdatedAt gets
  // the current time too, so the event is not dated in the past.
  let time: bigint | undefined;
  if (e.action === 'create') time = isoToNs(obj.CreatedAt);
  else if (e.action === 'update' && obj.UpdatedAt !== prev?.UpdatedAt) time = isoToNs(obj.UpdatedAt);
  if (e.action === 'update' && e.object && e.previous) {
    if (type === 'service') serviceChanges(e.object as Service, e.previous as Service, attrs);
    if (type === 'node') nodeChanges(e.object as Node, e.previous as Node, attrs);
  }
  return { Type: type, Action: ACTION_OF[e.action], Actor: { ID: e.id, Attributes: attrs }, scope: 'swarm', timeNano: time ?? now() };
}

function serviceChanges(cur: Service, old: Service, attrs: Record<string, string>): void {
  const img = cur.Spec.TaskTemplate?.ContainerSpec;
  const oldImg = old.Spec.TaskTemplate?.ContainerSpec;
  if (img && oldImg && img.Image !== oldImg.Image) {
    attrs['image.old'] = oldImg.Image ?? '';
    attrs['image.new'] = img.Image ?? '';
  }
  const rep = cur.Spec.Mode?.Replicated;
  const oldRep = old.Spec.Mode?.Replicated;
  if (rep && oldRep && (rep.Replicas ?? 1) !== (oldRep.Replicas ?? 1)) {
    attrs['replicas.old'] = String(oldRep.Replicas ?? 1);
    attrs['replicas.new'] = String(rep.Replicas ?? 1);
  }
  if (cur.UpdateStatus) {
    const state = cur.UpdateStatus.State ?? 'unknown';
    if (!old.UpdateStatus) attrs['updatestate.new'] = state;
    else if (state !== (old.UpdateStatus.State ?? 'unknown')) {
      attrs['updatestate.old'] = old.UpdateStatus.State ?? 'unknown';
      attrs['updatestate.new'] = state;
    }
  }
}

function nodeChanges(cur: Node, old: Node, attrs: Record<string, string>): void {
  const pair = (key: string, was: string | undefined, now: string | undefined): void => {
    if (was === now) return;
    attrs[`${key}.old`] = was ?? 'unknown';
    attrs[`${key}.new`] = now ?? 'unknown';
  };
  pair('availability', old.Spec.Availability, cur.Spec.Availability);
  pair('role', old.Spec.Role, cur.Spec.Role);
  pair('state', old.Status?.State, cur.Status?.State);
  // Only a change within the manager role, as moby: both sides are managers.
  if (cur.ManagerStatus && old.ManagerStatus) {
    pair('leader', String(!!old.ManagerStatus.Leader), String(!!cur.ManagerStatus.Leader));
    pair('reachability', old.ManagerStatus.Reachability, cur.ManagerStatus.Reachability);
  }
}

// Go's encoding/json: map keys sorted, <, >, & and U+2028/9 escaped.
export function formatEvent(ev: SwarmEvent): string {
  const attrs: Record<string, string> = {};
  for (const k of Object.keys(ev.Actor.Attributes).sort()) attrs[k] = ev.Actor.Attributes[k]!;
  const head = JSON.stringify({ Type: ev.Type, Action: ev.Action, Actor: { ID: ev.Actor.ID, Attributes: attrs }, scope: ev.scope })
    .replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return `${head.slice(0, -1)},"time":${ev.timeNano / 1_000_000_000n},"timeNano":${ev.timeNano}}`;
}

type SwarmListener = (ev: SwarmEvent) => void;

// The swarm events of this node: a bounded ring of the recent ones (replayed
// for `since`, like dockerd's own 256-event buffer) and live fan-out. It is
// fed by whichever Store is current: the store exists only while the node is
// in a swarm, and is replaced on leave/init.
export class SwarmEventLog {
  private readonly ring: SwarmEvent[] = [];
  private readonly listeners = new Set<SwarmListener>();
  private attached?: { store: Store; detach: () => void };
  private current?: () => Store | undefined;
  private follower?: NodeJS.Timeout;

  constructor(private readonly capacity = 1000, private readonly now: () => bigint = nowNs) {}

  // Feeds the log from `store` until the returned function is called (or
  // another store is attached).
  attach(store: Store): () => void {
    if (this.attached?.store === store) return this.attached.detach;
    this.attached?.detach();
    const unsubscribe = store.subscribe((batch) => this.onBatch(batch));
    const detach = (): void => {
      unsubscribe();
      if (this.attached?.store === store) this.attached = undefined;
    };
    this.attached = { store, detach };
    return detach;
  }

  // Keeps attached to whatever `current()` returns. Checked on every use and
  // every `intervalMs`, for wiring that only has a getter (SwarmNode.store).
  follow(current: () => Store | undefined, intervalMs = 250): void {
    this.current = current;
    this.sync();
    clearInterval(this.follower);
    this.follower = setInterval(() => this.sync(), intervalMs);
    this.follower.unref();
  }

  // Re-reads the followed getter (no-op unless follow() was called).
  sync(): void {
    if (!this.current) return;
    const store = this.current();
    if (store) this.attach(store);
    else this.attached?.detach();
  }

  publish(events: SwarmEvent[]): void {
    for (const ev of events) {
      this.ring.push(ev);
      if (this.ring.length > this.capacity) this.ring.shift();
      for (const l of this.listeners) l(ev);
    }
  }

  // The recent events and a live subscription, taken together so that no
  // event falls between the two.
  subscribe(listener: SwarmListener): { recent: SwarmEvent[]; unsubscribe: () => void } {
    this.sync();
    this.listeners.add(listener);
    return { recent: [...this.ring], unsubscribe: () => { this.listeners.delete(listener); } };
  }

  get subscribers(): number { return this.listeners.size; }

  close(): void {
    clearInterval(this.follower);
    this.current = undefined;
    this.attached?.detach();
    this.listeners.clear();
  }

  private onBatch(batch: StoreEvent[]): void {
    const out: SwarmEvent[] = [];
    for (const e of batch) {
      const ev = swarmEventOf(e, this.now);
      if (ev) out.push(ev);
    }
    if (out.length) this.publish(out);
  }
}

// ---------------------------------------------------------------------------
// Filters, as dockerd's daemon/events/filter.go applies them to every event
// (engine and swarm alike); the engine applies the same to its own stream.
// ---------------------------------------------------------------------------

export interface EventLike { Type: string; Action: string; Actor: { ID: string; Attributes: Record<string, string> }; scope?: string }

const NAME_KEYS = ['daemon', 'container', 'plugin', 'volume', 'network', 'node', 'service', 'secret', 'config'];
const FUZZY_EVENTS = new Set(['health_status', 'exec_create', 'exec_start']);

export class EventFilter {
  constructor(private readonly f: Filters) {}

  // dockerd takes any key on /events; unknown ones just never match.
  static parse(raw: string | null): EventFilter {
    return new EventFilter(parseFilters(raw, 'any'));
  }

  values(key: string): string[] { return this.f.get(key) ?? []; }

  private exact(key: string, v: string | undefined): boolean {
    const vals = this.values(key);
    return vals.length === 0 || (v !== undefined && vals.includes(v));
  }

  private fuzzy(key: string, v: string | undefined): boolean {
    const vals = this.values(key);
    return vals.length === 0 || (v !== undefined && vals.some((p) => v.startsWith(p)));
  }

  include(ev: EventLike): boolean {
    const events = this.values('event');
    const matchEvent = events.some((x) => FUZZY_EVENTS.has(x)) ? this.fuzzy('event', ev.Action) : this.exact('event', ev.Action);
    return matchEvent
      && this.exact('type', ev.Type)
      && this.exact('scope', ev.scope)
      && NAME_KEYS.every((k) => this.fuzzy(k, ev.Actor.ID) || this.fuzzy(k, ev.Actor.Attributes.name))
      && this.matchImage(ev)
      && this.matchLabels(ev.Actor.Attributes);
  }

  private matchImage(ev: EventLike): boolean {
    const name = ev.Actor.Attributes[ev.Type === 'image' ? 'name' : 'image'];
    return this.exact('image', ev.Actor.ID) || this.exact('image', name)
      || this.exact('image', stripTag(ev.Actor.ID)) || (name !== undefined && this.exact('image', stripTag(name)));
  }

  private matchLabels(attrs: Record<string, string>): boolean {
    const wanted = this.values('label');
    if (wanted.length === 0) return true;
    return wanted.every((w) => {
      const eq = w.indexOf('=');
      const k = eq < 0 ? w : w.slice(0, eq);
      if (!Object.prototype.hasOwnProperty.call(attrs, k)) return false;
      return eq < 0 || attrs[k] === w.slice(eq + 1);
    });
  }

  // Whether any event of the engine (scope local) or of the swarm could pass;
  // a source that cannot is not opened at all.
  wantsEngine(): boolean {
    const types = this.values('type');
    const scopes = this.values('scope');
    return (types.length === 0 || types.some((t) => !SWARM_ONLY_TYPES.has(t))) && (scopes.length === 0 || scopes.includes('local'));
  }

  wantsSwarm(): boolean {
    const types = this.values('type');
    const scopes = this.values('scope');
    return (types.length === 0 || types.some((t) => SWARM_TYPES.has(t))) && (scopes.length === 0 || scopes.includes('swarm'));
  }
}

const SWARM_ONLY_TYPES = new Set(['service', 'node', 'secret', 'config']);
const SWARM_TYPES = new Set(['service', 'node', 'secret', 'config', 'network']);

// "repo:tag" / "repo@digest" → "repo" (moby's stripTag, without normalising).
function stripTag(image: string): string {
  const at = image.indexOf('@');
  if (at >= 0) image = image.slice(0, at);
  const colon = image.lastIndexOf(':');
  return colon > image.lastIndexOf('/') ? image.slice(0, colon) : image;
}

// ---------------------------------------------------------------------------
// Timestamps: "seconds[.nanoseconds]" as timetypes.ParseTimestamps reads them.
// ---------------------------------------------------------------------------

// dockerd answers a timestamp it cannot parse with 500 and Go's message; the
// message is kept, but it is the client's mistake, so here it is a 400.
export function parseTimestamp(value: string): bigint {
  const [s, n] = value.split(/\.(.*)/s, 2) as [string, string | undefined];
  if (!/^[+-]?\d+$/.test(s)) throw invalid(`strconv.ParseInt: parsing ${JSON.stringify(s)}: invalid syntax`);
  let nanos = 0n;
  if (n !== undefined) {
    if (!/^[+-]?\d+$/.test(n)) throw invalid(`strconv.ParseInt: parsing ${JSON.stringify(n)}: invalid syntax`);
    nanos = BigInt(n.length > 9 ? n.slice(0, 9) : n.padEnd(9, '0'));
  }
  return BigInt(s) * 1_000_000_000n + nanos;
}

export function formatTimestamp(ns: bigint): string {
  const s = ns / 1_000_000_000n;
  return `${s}.${String(ns - s * 1_000_000_000n).padStart(9, '0')}`;
}

// ---------------------------------------------------------------------------
// GET /events: the engine's stream merged with the swarm's.
// ---------------------------------------------------------------------------

export interface EventRouteDeps {
  engineAddress?: string;
  engine?: EngineClient;
  // The store to take swarm events from: fixed, a getter, or a SwarmNode-like
  // object whose `store` is the current one. None: engine events only until
  // someone calls attach() on the returned log.
  store?: Store | (() => Store | undefined);
  swarm?: { readonly store?: Store | undefined };
  log?: SwarmEventLog;
}

// Splits a byte stream into complete lines (a swarm event must never land in
// the middle of an engine event, nor a character be cut in two).
function lineSplitter(onLine: (line: string) => void): (chunk: Buffer) => void {
  const splitter = new LineSplitter();
  return (chunk) => { for (const l of splitter.push(chunk)) onLine(l); };
}

// Go writes timeNano last; anchoring there keeps attribute text out of it.
const TIME_NANO = /"timeNano":(\d+)\}\s*$/;

async function readAll(res: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function relayEngineError(up: IncomingMessage, body: Buffer, res: ServerResponse): void {
  res.writeHead(up.statusCode ?? 500, { 'Content-Type': up.headers['content-type'] ?? 'application/json', 'Content-Length': body.length });
  res.end(body);
}

export function registerEventRoutes(router: Router, deps: EventRouteDeps): SwarmEventLog {
  const engine = deps.engine ?? (deps.engineAddress ? new EngineClient(deps.engineAddress) : undefined);
  const log = deps.log ?? new SwarmEventLog();
  const current = typeof deps.store === 'function' ? deps.store
    : deps.store ? ((s: Store) => () => s)(deps.store)
    : deps.swarm ? ((sw: { readonly store?: Store }) => () => sw.store)(deps.swarm)
    : undefined;
  if (current) log.follow(current);

  router.on('GET', '/events', async (req, res) => {
    const rawSince = req.query.get('since') ?? '';
    const rawUntil = req.query.get('until') ?? '';
    const since = rawSince ? parseTimestamp(rawSince) : undefined;
    const until = rawUntil ? parseTimestamp(rawUntil) : undefined;
    if (until !== undefined && since !== undefined && until < since) {
      throw invalid(`\`since\` time (${rawSince}) cannot be after \`until\` time (${rawUntil})`);
    }
    const rawFilters = req.query.get('filters');
    const filter = EventFilter.parse(rawFilters);
    const useEngine = !!engine && filter.wantsEngine();
    const useSwarm = filter.wantsSwarm();
    const prefix = /^\/v\d+\.\d+(?=\/)/.exec(req.raw.url ?? '')?.[0] ?? '';
    const engineQuery = (s?: string, u?: string): string => {
      const q = new URLSearchParams();
      if (s) q.set('since', s);
      if (u) q.set('until', u);
      if (rawFilters) q.set('filters', rawFilters);
      return `${prefix}/events?${q}`;
    };

    const now = nowNs();
    const replay = since !== undefined || until !== undefined;
    const onlyPast = until !== undefined && until <= now;
    // A `since` in the future has nothing to replay (and the engine would
    // refuse since > until for the past part); it then only opens the live stream.
    // Nothing happened before the epoch: an `until` there needs no engine
    // replay (dockerd itself never answers `until=-1`).
    const engineReplay = replay && (since === undefined || since <= now) && !(until !== undefined && until <= 0n);

    // Live swarm events queue up until the replay is written.
    const pending: string[] = [];
    let live = false;
    let closed = false;
    let upstream: IncomingMessage | undefined; // the engine's live stream
    // A slow reader pauses the engine stream rather than growing our buffer.
    const write = (line: string): void => {
      if (!closed && !res.write(line + '\n') && upstream && !upstream.isPaused()) {
        upstream.pause();
        res.once('drain', () => upstream?.resume());
      }
    };
    const sub = useSwarm
      ? log.subscribe((ev) => { if (filter.include(ev)) (live ? write : (l: string) => pending.push(l))(formatEvent(ev)); })
      : undefined;
    const abort = new AbortController();
    let stopTimer: (() => void) | undefined;
    const cleanup = (): void => {
      closed = true;
      sub?.unsubscribe();
      stopTimer?.();
      abort.abort();
      upstream?.destroy();
    };
    res.on('close', cleanup);

    try {
      const merged: Array<{ t: bigint; line: string }> = [];
      if (replay && sub) {
        for (const ev of sub.recent) {
          if ((since === undefined || ev.timeNano >= since) && (until === undefined || ev.timeNano <= until) && filter.include(ev)) {
            merged.push({ t: ev.timeNano, line: formatEvent(ev) });
          }
        }
      }
      // The engine's past events end at `now` (inclusive) and its live stream
      // starts one nanosecond later: none is lost or repeated between the two.
      if (useEngine && engineReplay) {
        const past = await engine.stream('GET', engineQuery(rawSince || undefined, onlyPast ? rawUntil : formatTimestamp(now)), { signal: abort.signal });
        const body = await readAll(past);
        if (past.statusCode !== 200) { relayEngineError(past, body, res); cleanup(); return undefined; }
        for (const line of body.toString('utf8').split('\n')) {
          if (!line.trim()) continue;
          const m = TIME_NANO.exec(line);
          merged.push({ t: m ? BigInt(m[1]!) : 0n, line });
        }
      }
      if (useEngine && !onlyPast) {
        upstream = await engine.stream('GET', engineQuery(engineReplay ? formatTimestamp(now + 1n) : rawSince || undefined, rawUntil || undefined), { signal: abort.signal });
        if (upstream.statusCode !== 200) { relayEngineError(upstream, await readAll(upstream), res); cleanup(); return undefined; }
      }
      if (closed) { cleanup(); return undefined; }

      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.flushHeaders();
      (res.socket as { setNoDelay?: (b: boolean) => void } | null)?.setNoDelay?.(true);
      merged.sort((a, b) => (a.t < b.t ? -1 : a.t > b.t ? 1 : 0)); // stable: ties keep engine order
      for (const m of merged) write(m.line);
      for (const l of pending.splice(0)) write(l);
      live = true;

      if (onlyPast) { closed = true; res.end(); cleanup(); return undefined; }
      if (until !== undefined) stopTimer = endAt(until, () => { if (!closed) { closed = true; res.end(); } cleanup(); });
      if (upstream) {
        upstream.on('data', lineSplitter(write));
        // The engine ended its stream (its own `until`, or it went away): so does ours.
        upstream.on('end', () => { if (!closed) { closed = true; res.end(); } cleanup(); });
        upstream.on('error', () => { if (!closed) { closed = true; res.end(); } cleanup(); });
      }
    } catch (err) {
      cleanup();
      if ((err as Error).name === 'AbortError') return undefined;
      throw err;
    }
    return undefined;
  });
  return log;
}

// setTimeout caps at ~24.8 days; a far `until` re-arms until it is reached.
// Returns the cancel function.
function endAt(untilNs: bigint, fire: () => void): () => void {
  let handle: NodeJS.Timeout | undefined;
  const arm = (): void => {
    const left = Number((untilNs - nowNs()) / 1_000_000n);
    if (left <= 0) { handle = undefined; fire(); return; }
    handle = setTimeout(arm, Math.min(left, 2 ** 31 - 1));
  };
  handle = setTimeout(arm, 0);
  return () => clearTimeout(handle);
}
