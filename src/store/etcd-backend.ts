import type { Etcd3, IOptions } from 'etcd3';
import { ExponentialBackoff, noop, type IBackoff } from 'cockatiel';
import type { MaintenanceBackend } from './maintenance';
import type { Backend, Compare, KeyValue, LeaseBackend, Op, RenewsClient, RangeOptions, RangeResult, TxnResult, WatchCallbacks, WatchEvent, WatchHandle } from './backend';
import type { ILeaseKeepAliveRequest, ILeaseKeepAliveResponse, IDuplexStream } from 'etcd3';
import type { EtcdMember, EtcdMembers } from './etcd-members';
import type { Logger } from '../common/log';
import { WorkerLeaseKeeper, type KeeperTiming, type LeaseKeeper } from './lease-keeper';
import { packValue, unpackValue } from './value-packing';
import { NOOP_KEY } from './keys';

// etcd3's RPC layer directly: the store needs revisions on every answer, and
// multi-key compare-and-swap transactions, which the fluent builders hide.

// Every unary call has a deadline; the store decides what to do on failure.
export const CALL_TIMEOUT_MS = 5000;
// That deadline is our own (soft): the caller stops waiting, the call goes on
// until grpc-js's own deadline, HARD_CALL_TIMEOUT_MS. etcd3 takes a call's
// DEADLINE_EXCEEDED for a broken connection and closes every client of the
// host, so the next calls dial and handshake again: on a loaded leader at
// 5,000 nodes each slow write did that (5.4 s of a 300 s profile in making
// channels, more in TLS), and failed the other calls in flight with it. The
// daemon's etcd is its own host's (a dead one closes the socket), so no
// keep-alive pings: a leader held up longer than their timeout had its
// connection dropped with every read of a reload in flight. The hard
// deadline only frees a call etcd never answers on a live connection (a
// stopped member): at 60 s, one write left unanswered by a swamped member
// closed the client under the reload that was to cure the mirror, which
// then stayed stale for minutes (bench/scale.ts at 5,000 nodes).
export const HARD_CALL_TIMEOUT_MS = 10 * 60_000;

// The daemon's receive window on its etcd connections (grpcOptions below).
export const ETCD_FLOW_CONTROL_WINDOW = 16 * 1024 * 1024;

export class SoftDeadlineError extends Error {
  constructor(what: string, ms: number) { super(`4 DEADLINE_EXCEEDED: etcd did not answer ${what} within ${ms} ms`); }
}

// After an event-loop hold-up, timers run before the I/O that arrived
// meanwhile: a deadline that fires more than STALL_MS late waits GRACE_MS
// more, so an answer already in the socket is read before the call is given
// up (a leader held 13 s had every call in flight time out at once).
const STALL_MS = 100;
const GRACE_MS = 250;

// The call's answer, or a SoftDeadlineError after `ms`; the call itself is
// left to finish (its late answer or error is dropped).
// `calls` hears whether the call settled (a value or any error: the client
// is not silent) or the deadline came first.
export interface CallWatch { answered(): void; unanswered(): void }

export function soft<T>(call: Promise<T>, ms: number, what: string, calls?: CallWatch): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const due = Date.now() + ms;
    let graced = false;
    const expire = (): void => {
      if (!graced && Date.now() - due > STALL_MS) { graced = true; timer = setTimeout(expire, GRACE_MS); return; }
      calls?.unanswered();
      reject(new SoftDeadlineError(what, ms));
    };
    let timer = setTimeout(expire, ms);
    call.then((v) => { clearTimeout(timer); calls?.answered(); resolve(v); }, (e: unknown) => { clearTimeout(timer); calls?.answered(); reject(e); });
  });
}

// The unary client is replaced when it seems wedged: a call went unanswered
// and none has been answered for this long. Seen in CI and then on demand
// (store recovery test, etcd killed while the daemon was starting): after
// etcd's restart no read or write of this client got an answer for minutes,
// while the watch client, the lease keeper and other clients were served.
export const UNARY_WEDGED_MS = 15_000;
// A replaced client is closed this much later, not at once: closing fails the
// calls still in flight on it, and their callers stopped waiting long before.
const RETIRED_CLOSE_DELAY_MS = 60_000;

function prefixEnd(prefix: string): Buffer {
  const b = Buffer.from(prefix);
  for (let i = b.length - 1; i >= 0; i--) {
    if (b[i]! < 0xff) { const end = Buffer.from(b.subarray(0, i + 1)); end[i]! += 1; return end; }
  }
  return Buffer.from([0]);
}

// The empty prefix means every key: etcd spells that key "\0", range_end "\0".
const rangeOf = (prefix: string): { key: Buffer; range_end: Buffer } =>
  (prefix === '' ? { key: Buffer.from([0]), range_end: Buffer.from([0]) } : { key: Buffer.from(prefix), range_end: prefixEnd(prefix) });

// Values are packed on the way in and unpacked on the way out (value-packing.ts).
function toKv(kv: { key: Buffer; value: Buffer; create_revision: string; mod_revision: string }): KeyValue {
  const v = unpackValue(kv.value);
  return {
    key: kv.key.toString(),
    value: v.ok ? v.value : '',
    createRevision: Number(kv.create_revision),
    modRevision: Number(kv.mod_revision),
    ...(v.ok ? {} : { problem: v.problem }),
  };
}

function toMember(m: { ID: string; name: string; peerURLs: string[]; isLearner: boolean }): EtcdMember {
  return { id: String(m.ID), name: m.name, peerUrls: [...m.peerURLs], learner: !!m.isLearner };
}

// Maintenance calls may take long on a big database (defragmentation
// rewrites the file); they get their own bound.
const MAINTENANCE_TIMEOUT_MS = 120_000;

// A watcher's cancel waits for etcd's answer; a dead endpoint never gives one.
const WATCH_CANCEL_MS = 1000;

function bounded(p: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    void p.finally(() => { clearTimeout(t); resolve(); });
  });
}

type KeepAliveStream = IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse>;
// The lease keep-alive stream, and per lease the renewals waiting for etcd's answer.
interface KeepAlive { stream: KeepAliveStream; waiting: Map<string, Array<(ok: boolean) => void>> }

export class EtcdBackend implements Backend, MaintenanceBackend, LeaseBackend, EtcdMembers, RenewsClient {
  // Reads, writes and the other unary calls; replaced when wedged (UNARY_WEDGED_MS).
  client: Etcd3;
  private lastAnswerAt: number; // set when a unary client is made
  private readonly retired = new Set<Etcd3>();
  private readonly calls: CallWatch = {
    answered: () => { this.lastAnswerAt = Date.now(); },
    unanswered: () => { if (Date.now() - this.lastAnswerAt >= this.wedgedMs) this.renewClient(); },
  };
  // Streams (watches, lease keep-alives) run on a client of their own. etcd3
  // closes every service of a client when one of its streams ends with an
  // error, a cancel included, so each watch restart failed the reads and
  // writes starting at that moment ("Channel closed before call started").
  // A new one replaces it when a watch is not created in time: etcd3's watch
  // manager can wedge (seen twice in CI, in the test that kills etcd: every
  // new watch waited for ever while reads and writes worked).
  private watchClient: Etcd3;
  private readonly makeClient: () => Etcd3;
  private closed = false;
  // Every live watcher's stop, so that close() can cancel them all.
  private readonly watchers = new Set<() => Promise<void>>();
  private keepAlive?: KeepAlive;

  // wedgedMs: UNARY_WEDGED_MS but in tests.
  constructor(private readonly options: IOptions, private readonly wedgedMs = UNARY_WEDGED_MS) {
    // etcd3 (with grpc-js and protobufjs parsing etcd's .proto files, about
    // 20 MB of RSS) is loaded only when a manager opens its store: a worker,
    // or a daemon not in a swarm, never does.
    const { Etcd3: Client } = require('etcd3') as typeof import('etcd3');
    this.makeClient = () => new Client({
      dialTimeout: 5000,
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + HARD_CALL_TIMEOUT_MS }),
      ...options,
      // etcd3's defaults (a circuit breaker open for 5 s after 3 failures, and
      // 3 blind retries) kept the store closed for seconds after etcd was back
      // and replayed writes whose first attempt had been applied. The store
      // handles failures itself: every call goes straight to etcd, once.
      faultHandling: {
        host: () => noop,
        global: noop,
        // etcd3 takes the factory (it calls next() first) though it types a backoff.
        watchBackoff: new ExponentialBackoff({ initialDelay: 50, maxDelay: 500 }) as unknown as IBackoff<unknown>,
        ...options.faultHandling,
      },
      grpcOptions: {
        // Pages of the initial load can be big; the store pages by key count.
        'grpc.max_receive_message_length': 64 * 1024 * 1024,
        // HTTP/2 lets etcd send only this much before the daemon acknowledges,
        // and it acknowledges from its event loop: with the default 64 KiB a
        // loaded leader (turns of 0.1-1 s) took the watch's events a
        // transaction or two per turn, fell seconds behind, found the watch
        // "silent" and reloaded, and each 5 MB page of that reload needed
        // some 80 turns: minutes without a mirror at 5,000 nodes.
        'grpc-node.flow_control_window': ETCD_FLOW_CONTROL_WINDOW,
        'grpc.initial_reconnect_backoff_ms': 50,
        'grpc.max_reconnect_backoff_ms': 500,
        ...options.grpcOptions,
      },
    });
    this.client = this.makeClient();
    this.watchClient = this.makeClient();
    // Silence counts from the client's making, not from before etcd3 loaded
    // (a loaded machine's CI took over 300 ms for that).
    this.lastAnswerAt = Date.now();
  }

  // A new client for unary calls; the wedged one is closed later.
  private renewClient(): void {
    if (this.closed) return;
    const old = this.client;
    const silentMs = Date.now() - this.lastAnswerAt;
    this.client = this.makeClient();
    this.lastAnswerAt = Date.now();
    this.retired.add(old);
    setTimeout(() => { this.retired.delete(old); old.close(); }, RETIRED_CLOSE_DELAY_MS).unref();
    this.onClientRenewed?.(silentMs);
  }

  // Told when the unary client was replaced (the store logs it).
  onClientRenewed: ((silentMs: number) => void) | undefined = undefined;

  // A new client for watches (the old one closed): see watchClient.
  private renewWatchClient(): void {
    if (this.closed) return;
    const old = this.watchClient;
    this.watchClient = this.makeClient();
    old.close();
  }

  async range(prefix: string, opts: RangeOptions = {}): Promise<RangeResult> {
    const r = rangeOf(prefix);
    const res = await soft(this.client.kv.range({
      key: opts.fromKey !== undefined ? Buffer.from(opts.fromKey) : r.key,
      range_end: r.range_end,
      limit: opts.limit ?? 0,
      keys_only: opts.keysOnly ?? false,
      revision: opts.revision ?? 0,
    }), opts.timeoutMs ?? CALL_TIMEOUT_MS, 'a read', this.calls);
    return { kvs: res.kvs.map(toKv), revision: Number(res.header.revision), more: res.more, clusterId: String(res.header.cluster_id) };
  }

  async count(prefix: string, revision = 0): Promise<number> {
    const r = rangeOf(prefix);
    const res = await soft(this.client.kv.range({ key: r.key, range_end: r.range_end, revision, count_only: true }), CALL_TIMEOUT_MS, 'a count', this.calls);
    return Number(res.count);
  }

  async txn(compares: Compare[], ops: Op[], opts: { timeoutMs?: number } = {}): Promise<TxnResult> {
    const res = await soft(this.client.kv.txn({
      compare: compares.map((c) => ('absent' in c
        ? { key: Buffer.from(c.key), target: 'Create' as const, result: 'Equal' as const, create_revision: 0 }
        : 'createRevision' in c
          ? { key: Buffer.from(c.key), target: 'Create' as const, result: 'Equal' as const, create_revision: c.createRevision }
          : { key: Buffer.from(c.key), target: 'Mod' as const, result: 'Equal' as const, mod_revision: c.modRevision })),
      success: ops.map((op) => ('put' in op
        ? { request_put: { key: Buffer.from(op.put), value: packValue(op.value), ...(op.lease ? { lease: op.lease } : {}) } }
        : { request_delete_range: { key: Buffer.from(op.del) } })),
      failure: [],
    }), opts.timeoutMs ?? CALL_TIMEOUT_MS, 'a write', this.calls);
    return { succeeded: res.succeeded, revision: Number(res.header.revision) };
  }

  async watch(prefix: string, fromRevision: number, cb: WatchCallbacks): Promise<WatchHandle> {
    if (this.closed) throw new Error('etcd client closed');
    const r = rangeOf(prefix);
    // No previous values: the mirror has them, and the stream stays half the size.
    const builder = this.watchClient.watch().startRevision(String(fromRevision));
    // watcher(), not create(): create() waits for etcd's answer for ever and
    // hands nothing back meanwhile, so nothing could stop the watch manager
    // retrying a dead endpoint. Here every watcher is known from the start.
    const watcher = (prefix === '' ? builder.inRange({ start: r.key, end: r.range_end }) : builder.prefix(prefix)).watcher();
    // etcd3 throws an 'error' nobody listens to (a cancel from etcd after stop).
    watcher.on('error', () => undefined);
    let done = false;
    let abortCreate: ((err: Error) => void) | undefined;
    const stop = (): Promise<void> => {
      if (done) return Promise.resolve();
      done = true;
      abortCreate?.(new Error('etcd watch closed before it was created'));
      this.watchers.delete(stop);
      watcher.removeAllListeners('data');
      let cancelled: Promise<unknown>;
      try { cancelled = watcher.cancel().catch(() => undefined); } catch { cancelled = Promise.resolve(); } // a wedged manager can throw here
      return bounded(cancelled, WATCH_CANCEL_MS);
    };
    this.watchers.add(stop);
    // The handlers go on before etcd answers: its "created" and the first
    // events can arrive in one read, and a listener added after awaiting the
    // creation would miss them.
    let created = false;
    watcher.on('data', (res) => {
      if (done || res.events.length === 0) return;
      const events: WatchEvent[] = res.events.map((e) => ({
        type: e.type === 'Put' ? 'put' : 'delete',
        kv: toKv(e.kv),
      }));
      cb.onEvents(events, { revision: Number(res.header.revision), clusterId: String(res.header.cluster_id) });
    });
    // etcd3 would resume a dropped stream by itself, from the header revision
    // of the last response, which can be ahead of the events it delivered:
    // events would be skipped. Drop this watcher instead; the store starts a
    // new one from the revision its mirror has applied.
    watcher.on('disconnected', (err: Error) => { if (created && !done) { void stop(); cb.onLost(err, false); } });
    // A cancel from etcd (compacted start revision, or another reason): reload.
    watcher.on('error', (err: Error) => { if (created && !done) { void stop(); cb.onLost(err, true); } });
    // Created (etcd answered), or refused, or the stream lost first: bounded.
    await new Promise<void>((resolve, reject) => {
      const settle = (err?: Error): void => {
        abortCreate = undefined;
        clearTimeout(timer);
        watcher.removeListener('connected', onCreated);
        watcher.removeListener('disconnected', settle);
        watcher.removeListener('error', settle);
        if (!err) { created = true; resolve(); return; }
        void stop();
        reject(err);
      };
      const onCreated = (): void => settle();
      const timer = setTimeout(() => {
        settle(new Error(`etcd did not create the watch within ${CALL_TIMEOUT_MS} ms; the next one gets a new client`));
        this.renewWatchClient();
      }, CALL_TIMEOUT_MS);
      watcher.once('connected', onCreated);
      watcher.once('disconnected', settle);
      watcher.once('error', settle);
      abortCreate = settle;
    });
    return { close: () => stop() };
  }

  async status(): Promise<{ dbSize: number; dbSizeInUse: number; leads: boolean }> {
    const s = await soft(this.client.maintenance.status(), CALL_TIMEOUT_MS, 'a status request', this.calls);
    return { dbSize: Number(s.dbSize), dbSizeInUse: Number(s.dbSizeInUse), leads: s.leader !== '0' && s.leader === s.header.member_id };
  }

  // A delete of a key that never exists: a raft entry on every member, but no
  // revision, no watch event, nothing in the database.
  async noopEntry(): Promise<void> {
    await soft(this.client.kv.txn({ compare: [], success: [{ request_delete_range: { key: Buffer.from(NOOP_KEY) } }], failure: [] }), CALL_TIMEOUT_MS, 'a no-op entry', this.calls);
  }

  async alarms(): Promise<string[]> {
    const res = await soft(this.client.maintenance.alarm({ action: 'Get' }), CALL_TIMEOUT_MS, 'a request for its alarms', this.calls);
    return res.alarms.map((a) => String(a.alarm));
  }

  async compact(revision: number): Promise<void> {
    await soft(this.client.kv.compact({ revision, physical: false }), CALL_TIMEOUT_MS, 'a compaction', this.calls);
  }

  async defragment(): Promise<void> {
    await this.client.maintenance.defragment({ deadline: Date.now() + MAINTENANCE_TIMEOUT_MS });
  }

  async disarm(): Promise<void> {
    const res = await soft(this.client.maintenance.alarm({ action: 'Get' }), CALL_TIMEOUT_MS, 'a request for its alarms', this.calls);
    for (const a of res.alarms) {
      if (String(a.alarm) === 'Nospace') await soft(this.client.maintenance.alarm({ action: 'Deactivate', memberID: a.memberID, alarm: 'Nospace' }), CALL_TIMEOUT_MS, 'a disarm', this.calls);
    }
  }

  // ---------- leases ----------
  async grantLease(ttlSeconds: number): Promise<string> {
    const res = await soft(this.client.leaseClient.leaseGrant({ TTL: ttlSeconds }), CALL_TIMEOUT_MS, 'a lease grant', this.calls);
    return String(res.ID);
  }

  // The keeper's thread reaches the first of the client's hosts with the
  // client's own credentials (none: plain http, as tests' etcd).
  leaseKeeper(log: Logger, timing?: KeeperTiming): LeaseKeeper {
    const c = this.options.credentials;
    const host = ([] as string[]).concat(this.options.hosts)[0]!;
    return new WorkerLeaseKeeper({ url: host, ...(c ? { ca: c.rootCertificate, cert: c.certChain, key: c.privateKey } : {}) }, log, timing);
  }

  async revokeLease(lease: string): Promise<void> {
    await soft(this.client.leaseClient.leaseRevoke({ ID: lease }), CALL_TIMEOUT_MS, 'a lease revocation', this.calls);
  }

  // One keep-alive stream shared by every renewal (etcd answers each request
  // with the lease's new TTL, 0 when it is gone), in order, so renewals may
  // overlap (manager/leader/election.ts). Bounded by the call deadline.
  async keepAliveOnce(lease: string): Promise<void> {
    if (!this.keepAlive) {
      const stream = await this.watchClient.leaseClient.leaseKeepAlive();
      // Another renewal may have opened one meanwhile.
      if (this.keepAlive) stream.cancel();
      else this.keepAlive = this.keepAliveOn(stream);
    }
    const ka = this.keepAlive;
    if (!ka) throw new Error(`lease ${lease} could not be renewed: the keep-alive stream closed`);
    const ok = await new Promise<boolean>((resolve) => {
      let settled = false;
      const done = (v: boolean): void => { if (!settled) { settled = true; clearTimeout(timer); resolve(v); } };
      const timer = setTimeout(() => {
        done(false);
        // A stream that stopped answering is replaced on the next renewal.
        if (this.keepAlive === ka) { this.keepAlive = undefined; try { ka.stream.cancel(); } catch { /* gone */ } }
      }, CALL_TIMEOUT_MS);
      const ws = ka.waiting.get(lease) ?? [];
      ws.push(done);
      ka.waiting.set(lease, ws);
      ka.stream.write({ ID: lease });
    });
    if (!ok) throw new Error(`lease ${lease} could not be renewed`);
  }

  private keepAliveOn(stream: KeepAliveStream): KeepAlive {
    const ka: KeepAlive = { stream, waiting: new Map() };
    const fail = (): void => {
      if (this.keepAlive === ka) this.keepAlive = undefined;
      for (const ws of ka.waiting.values()) for (const w of ws) w(false);
      ka.waiting.clear();
    };
    stream.on('data', (res) => {
      const ws = ka.waiting.get(String(res.ID));
      if (!ws?.length) return;
      ws.shift()!(Number(res.TTL) > 0);
    });
    stream.on('error', fail);
    stream.on('end', fail);
    return ka;
  }

  // ---------- members ----------
  async memberList(): Promise<EtcdMember[]> {
    const res = await soft(this.client.cluster.memberList({ linearizable: true }), CALL_TIMEOUT_MS, 'a member list', this.calls);
    return res.members.map(toMember);
  }

  async memberAdd(peerUrl: string, learner: boolean): Promise<{ added: EtcdMember; members: EtcdMember[] }> {
    const res = await soft(this.client.cluster.memberAdd({ peerURLs: [peerUrl], isLearner: learner }), CALL_TIMEOUT_MS, 'a member add', this.calls);
    return { added: toMember(res.member), members: res.members.map(toMember) };
  }

  async memberPromote(id: string): Promise<void> { await soft(this.client.cluster.memberPromote({ ID: id }), CALL_TIMEOUT_MS, 'a member promotion', this.calls); }

  async memberRemove(id: string): Promise<void> { await soft(this.client.cluster.memberRemove({ ID: id }), CALL_TIMEOUT_MS, 'a member removal', this.calls); }

  // Watchers first (etcd3's watch manager retries for as long as one is
  // attached, even after the client is closed), then the lease stream, then
  // the client: a closed backend leaves no timer and no stream behind.
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.watchers].map((stop) => stop()));
    this.watchers.clear();
    try { this.keepAlive?.stream.cancel(); } catch { /* gone */ }
    this.keepAlive = undefined;
    this.watchClient.close();
    this.client.close();
    for (const c of this.retired) c.close();
    this.retired.clear();
  }
}
