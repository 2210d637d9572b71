import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { inject } from 'light-my-request';
import { Router } from '../../../src/api/router';
import { createApiHandler, createApiServer } from '../../../src/api/server';
import { EngineProxy } from '../../../src/api/proxy';
import {
  EventFilter, SwarmEventLog, formatEvent, formatTimestamp, isoToNs, nowNs, parseTimestamp, registerEventRoutes, swarmEventOf, type SwarmEvent,
} from '../../../src/api/routes/events';
import { registerInfoRoute } from '../../../src/api/routes/engine-info';
import { EngineClient } from '../../../src/engine/client';
import { MemoryBackend } from '../../../src/store/memory-backend';
import { Store } from '../../../src/store/store';
import type { StoreEvent } from '../../../src/store/objects';
import type { Node, Service, SwarmInfo } from '../../../src/model/types';
import { silentLogger } from '../../../src/common/log';
import { startFakeEngine, tempSocketPath, waitUntil, type FakeEngine } from '../../helpers/fake-engine';

// ---------- store changes → swarm events ----------

function service(id: string, name: string, extra: Partial<Service> = {}, image = 'img:1', replicas = 2): Service {
  return {
    ID: id, Version: { Index: 1 }, CreatedAt: '2026-11-23T10:00:00.123456789Z', UpdatedAt: '2026-11-23T10:00:00.123456789Z',
    Spec: { Name: name, TaskTemplate: { ContainerSpec: { Image: image } }, Mode: { Replicated: { Replicas: replicas } } },
    Endpoint: { Spec: {} },
    ...extra,
  };
}

function node(id: string, extra: Partial<Node> = {}): Node {
  return {
    ID: id, Version: { Index: 1 }, CreatedAt: '2026-11-23T10:00:00Z', UpdatedAt: '2026-11-23T10:00:00Z',
    Spec: { Role: 'manager', Availability: 'active', Labels: {} },
    Description: { Hostname: 'host-a', Platform: { Architecture: 'x86_64', OS: 'linux' }, Resources: {}, Engine: { EngineVersion: '20.10.24', Plugins: [] }, TLSInfo: {} },
    Status: { State: 'ready', Addr: '10.0.0.1' },
    ManagerStatus: { Leader: true, Reachability: 'reachable', Addr: '10.0.0.1:2377' },
    ...extra,
  };
}

const NOW = 1_800_000_000_000_000_000n;

test('a service create is dated by CreatedAt, with its name', () => {
  const ev = swarmEventOf({ kind: 'services', action: 'create', id: 's1', object: service('s1', 'web'), revision: 2 }, () => NOW)!;
  assert.deepEqual(ev, { Type: 'service', Action: 'create', Actor: { ID: 's1', Attributes: { name: 'web' } }, scope: 'swarm', timeNano: isoToNs('2026-11-23T10:00:00.123456789Z') });
  assert.equal(ev.timeNano % 1_000_000_000n, 123456789n);
});

test('a service update carries image, replicas and updatestate .old/.new as moby does', () => {
  const before = service('s1', 'web');
  const after = service('s1', 'web', { UpdatedAt: '2026-11-23T10:05:00Z', UpdateStatus: { State: 'updating' } }, 'img:2', 5);
  const ev = swarmEventOf({ kind: 'services', action: 'update', id: 's1', object: after, previous: before, revision: 3 }, () => NOW)!;
  assert.equal(ev.Action, 'update');
  assert.deepEqual(ev.Actor.Attributes, { name: 'web', 'image.old': 'img:1', 'image.new': 'img:2', 'replicas.old': '2', 'replicas.new': '5', 'updatestate.new': 'updating' });
  assert.equal(ev.timeNano, isoToNs('2026-11-23T10:05:00Z'));
  const later = service('s1', 'web', { UpdatedAt: '2026-11-23T10:06:00Z', UpdateStatus: { State: 'completed' } }, 'img:2', 5);
  const ev2 = swarmEventOf({ kind: 'services', action: 'update', id: 's1', object: later, previous: after, revision: 4 }, () => NOW)!;
  assert.deepEqual(ev2.Actor.Attributes, { name: 'web', 'updatestate.old': 'updating', 'updatestate.new': 'completed' });
  // An update that did not bump UpdatedAt is dated now, not in the past.
  const same = swarmEventOf({ kind: 'services', action: 'update', id: 's1', object: later, previous: later, revision: 5 }, () => NOW)!;
  assert.equal(same.timeNano, NOW);
  assert.deepEqual(same.Actor.Attributes, { name: 'web' });
});

test('a node update carries availability, role, state, leader, reachability .old/.new; name falls back to the hostname', () => {
  const before = node('n1');
  const after = node('n1', {
    UpdatedAt: '2026-11-23T10:07:00Z',
    Spec: { Role: 'manager', Availability: 'drain', Labels: {} },
    Status: { State: 'down', Addr: '10.0.0.1' },
    ManagerStatus: { Leader: false, Reachability: 'unreachable', Addr: '10.0.0.1:2377' },
  });
  const ev = swarmEventOf({ kind: 'nodes', action: 'update', id: 'n1', object: after, previous: before, revision: 3 }, () => NOW)!;
  assert.equal(ev.Type, 'node');
  assert.deepEqual(ev.Actor.Attributes, {
    name: 'host-a', 'availability.old': 'active', 'availability.new': 'drain', 'state.old': 'ready', 'state.new': 'down',
    'leader.old': 'true', 'leader.new': 'false', 'reachability.old': 'reachable', 'reachability.new': 'unreachable',
  });
  const demoted = node('n1', { Spec: { Role: 'worker', Availability: 'active', Labels: {} }, ManagerStatus: undefined });
  const ev2 = swarmEventOf({ kind: 'nodes', action: 'update', id: 'n1', object: demoted, previous: before, revision: 4 }, () => NOW)!;
  assert.deepEqual(ev2.Actor.Attributes, { name: 'host-a', 'role.old': 'manager', 'role.new': 'worker' });
});

test('removals are dated now; secrets, configs and networks carry their name; tasks and the cluster make no event', () => {
  const rm = swarmEventOf({ kind: 'services', action: 'delete', id: 's1', previous: service('s1', 'web'), revision: 9 }, () => NOW)!;
  assert.equal(rm.Action, 'remove');
  assert.equal(rm.timeNano, NOW);
  assert.equal(rm.Actor.Attributes.name, 'web');
  const sec = swarmEventOf({ kind: 'secrets', action: 'create', id: 'x1', object: { ID: 'x1', Version: { Index: 1 }, CreatedAt: '2026-11-23T10:00:00Z', UpdatedAt: '', Spec: { Name: 'pw' } }, revision: 2 } as StoreEvent, () => NOW)!;
  assert.deepEqual([sec.Type, sec.Actor.Attributes], ['secret', { name: 'pw' }]);
  const net = swarmEventOf({ kind: 'networks', action: 'create', id: 'w1', object: { ID: 'w1', Version: { Index: 1 }, CreatedAt: '2026-11-23T10:00:00Z', UpdatedAt: '', Spec: { Name: 'overlay1' } }, revision: 2 } as StoreEvent, () => NOW)!;
  assert.deepEqual([net.Type, net.scope, net.Actor.Attributes], ['network', 'swarm', { name: 'overlay1' }]);
  assert.equal(swarmEventOf({ kind: 'tasks', action: 'create', id: 't', object: {} as never, revision: 2 }), undefined);
  assert.equal(swarmEventOf({ kind: 'cluster', action: 'update', id: 'c', object: {} as never, revision: 2 }), undefined);
});

test('events are encoded as Go does: sorted attributes, exact int64 timeNano, escaped <>&', () => {
  const ev: SwarmEvent = { Type: 'service', Action: 'update', Actor: { ID: 's1', Attributes: { 'replicas.old': '1', name: 'a<b>&c', 'image.new': 'x' } }, scope: 'swarm', timeNano: 1795424274123456789n };
  assert.equal(formatEvent(ev),
    '{"Type":"service","Action":"update","Actor":{"ID":"s1","Attributes":{"image.new":"x","name":"a\\u003cb\\u003e\\u0026c","replicas.old":"1"}},"scope":"swarm","time":1795424274,"timeNano":1795424274123456789}');
});

test('timestamps: seconds[.fraction] as dockerd parses them', () => {
  assert.equal(parseTimestamp('1795424274'), 1795424274_000000000n);
  assert.equal(parseTimestamp('1795424274.5'), 1795424274_500000000n);
  assert.equal(parseTimestamp('1795424274.000000001'), 1795424274_000000001n);
  assert.throws(() => parseTimestamp('abc'), /strconv.ParseInt: parsing "abc": invalid syntax/);
  assert.equal(formatTimestamp(1795424274_000000001n), '1795424274.000000001');
});

test('filters follow dockerd: type, scope, names by prefix on every event, labels, event', () => {
  const svc = { Type: 'service', Action: 'create', Actor: { ID: 'abc123', Attributes: { name: 'web' } }, scope: 'swarm' };
  const ctr = { Type: 'container', Action: 'start', Actor: { ID: 'ffff', Attributes: { name: 'web.1.x', image: 'busybox:1', 'com.x': 'y' } }, scope: 'local' };
  const f = (raw: unknown) => EventFilter.parse(JSON.stringify(raw));
  assert.ok(f({ type: { service: true } }).include(svc));
  assert.ok(!f({ type: { service: true } }).include(ctr));
  assert.ok(f({ type: ['service', 'container'] }).include(ctr), 'legacy list form');
  assert.ok(f({ scope: { swarm: true } }).include(svc) && !f({ scope: { swarm: true } }).include(ctr));
  assert.ok(f({ service: { we: true } }).include(svc), 'name prefix');
  assert.ok(f({ service: { abc: true } }).include(svc), 'ID prefix');
  assert.ok(!f({ service: { db: true } }).include(svc));
  assert.ok(f({ service: { web: true } }).include(ctr), 'a name filter applies to every event, as dockerd');
  assert.ok(!f({ container: { zzz: true } }).include(svc));
  assert.ok(f({ event: { create: true } }).include(svc) && !f({ event: { update: true } }).include(svc));
  assert.ok(f({ label: { 'com.x=y': true } }).include(ctr) && !f({ label: { 'com.x': true } }).include(svc));
  assert.ok(f({ image: { busybox: true } }).include(ctr), 'image without tag');
  assert.ok(f({ type: { service: true } }).wantsSwarm() && !f({ type: { service: true } }).wantsEngine());
  assert.ok(f({ type: { network: true } }).wantsSwarm() && f({ type: { network: true } }).wantsEngine());
  assert.ok(!f({ scope: { local: true } }).wantsSwarm() && f({ scope: { local: true } }).wantsEngine());
  assert.ok(f({}).wantsSwarm() && f({}).wantsEngine());
});

// ---------- GET /events over a real server ----------

// dockerd's /events, faked: a buffer of past events (replayed for since/until),
// live events pushed by the test, the stream ended at `until`.
interface FakeEvents { past: string[]; live: Set<ServerResponse>; push(line: string): void }
function fakeEventsEndpoint(fake: FakeEngine): FakeEvents {
  const state: FakeEvents = {
    past: [],
    live: new Set(),
    push(line) { state.past.push(line); for (const r of state.live) r.write(line + '\n'); },
  };
  const fallback = fake.handle;
  fake.handle = (req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    if (!u.pathname.endsWith('/events')) { fallback(req, res); return; }
    const since = u.searchParams.get('since');
    const until = u.searchParams.get('until');
    if (since === 'bad') { res.writeHead(500, { 'Content-Type': 'application/json' }); res.end('{"message":"engine says no"}\n'); return; }
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.flushHeaders();
    if (since || until) {
      const s = since ? parseTimestamp(since) : 0n;
      const t = until ? parseTimestamp(until) : 1n << 62n;
      for (const l of state.past) {
        const n = BigInt(/"timeNano":(\d+)/.exec(l)![1]!);
        if (n >= s && n <= t) res.write(l + '\n');
      }
    }
    if (until && parseTimestamp(until) <= nowNs()) { res.end(); return; }
    state.live.add(res);
    res.on('close', () => state.live.delete(res));
  };
  return state;
}

const ctrEvent = (id: string, action: string, ns: bigint): string =>
  `{"status":"${action}","id":"${id}","from":"busybox","Type":"container","Action":"${action}","Actor":{"ID":"${id}","Attributes":{"image":"busybox","name":"c-${id}"}},"scope":"local","time":${ns / 1_000_000_000n},"timeNano":${ns}}`;

interface Fixture {
  fake: FakeEngine;
  events: FakeEvents;
  store: Store;
  log: SwarmEventLog;
  path: string;
  close(): Promise<void>;
}

async function fixture(): Promise<Fixture> {
  const fake = await startFakeEngine();
  const events = fakeEventsEndpoint(fake);
  const store = await Store.open(new MemoryBackend(), silentLogger);
  const router = new Router();
  const log = registerEventRoutes(router, { engineAddress: fake.address, store });
  const engine = new EngineProxy(fake.address);
  const server: Server = createApiServer({ router, engine, engineVersion: () => '20.10.24', log: silentLogger });
  const conns = new Set<Socket>();
  server.on('connection', (c: Socket) => { conns.add(c); c.on('close', () => conns.delete(c)); });
  const sock = tempSocketPath();
  await new Promise<void>((resolve) => server.listen(sock.path, resolve));
  return {
    fake, events, store, log, path: sock.path,
    close: async () => {
      for (const c of conns) c.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      engine.close();
      log.close();
      await store.close();
      await fake.close();
      sock.cleanup();
    },
  };
}

interface Stream { res: IncomingMessage; lines: string[]; ended: boolean; body: string; close(): void }
function openEvents(path: string, query: Record<string, string>): Promise<Stream> {
  const qs = new URLSearchParams(query).toString();
  return new Promise((resolve, reject) => {
    const req = httpRequest({ socketPath: path, path: `/v1.41/events?${qs}` }, (res) => {
      const s: Stream = { res, lines: [], ended: false, body: '', close: () => req.destroy() };
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        s.body += c;
        const parts = s.body.split('\n');
        s.lines = parts.slice(0, -1).filter(Boolean);
      });
      res.on('end', () => { s.ended = true; });
      res.on('error', () => { s.ended = true; });
      resolve(s);
    });
    req.on('error', reject);
    req.end();
  });
}

async function createService(store: Store, id: string, name: string, createdAt = new Date().toISOString()): Promise<void> {
  await store.txn().create('services', service(id, name, { CreatedAt: createdAt, UpdatedAt: createdAt })).commit();
}

const engineEventQueries = (fake: FakeEngine): URLSearchParams[] =>
  fake.requests.filter((r) => r.url.includes('/events')).map((r) => new URL(r.url, 'http://x').searchParams);

test('/events type=service: swarm events only, the engine is not asked; the subscription ends with the client', async () => {
  const fx = await fixture();
  try {
    const s = await openEvents(fx.path, { filters: JSON.stringify({ type: { service: true } }) });
    assert.equal(s.res.statusCode, 200);
    assert.equal(s.res.headers['content-type'], 'application/json');
    assert.equal(s.res.headers['api-version'], '1.41');
    await createService(fx.store, 'svc000000000000000000000a', 'web');
    await fx.store.mutate('services', 'svc000000000000000000000a', (svc) => {
      svc.Spec.Mode = { Replicated: { Replicas: 3 } };
      svc.UpdatedAt = new Date(Date.now() + 1).toISOString();
      return svc;
    });
    await waitUntil(() => s.lines.length >= 2, 5000, 'two service events');
    const [created, updated] = s.lines.map((l) => JSON.parse(l));
    assert.equal(created.Type, 'service');
    assert.equal(created.Action, 'create');
    assert.equal(created.scope, 'swarm');
    assert.deepEqual(created.Actor, { ID: 'svc000000000000000000000a', Attributes: { name: 'web' } });
    assert.deepEqual(updated.Actor.Attributes, { name: 'web', 'replicas.new': '3', 'replicas.old': '2' });
    assert.equal(engineEventQueries(fx.fake).length, 0, 'no engine stream for swarm-only filters');
    assert.equal(fx.log.subscribers, 1);
    s.close();
    await waitUntil(() => fx.log.subscribers === 0, 5000, 'the subscription to go');
  } finally {
    await fx.close();
  }
});

test('/events without filters merges the engine stream and swarm events, line by line', async () => {
  const fx = await fixture();
  try {
    const s = await openEvents(fx.path, {});
    await waitUntil(() => fx.events.live.size === 1, 5000, 'the engine stream');
    const q = engineEventQueries(fx.fake)[0]!;
    assert.equal(q.get('since'), null);
    assert.equal(q.get('until'), null);
    fx.events.push(ctrEvent('c1', 'start', nowNs()));
    await waitUntil(() => s.lines.length === 1, 5000, 'the container event');
    await createService(fx.store, 'svc000000000000000000000b', 'api');
    await waitUntil(() => s.lines.length === 2, 5000, 'the service event');
    // A container event split across two chunks is never interleaved.
    const half = ctrEvent('c2', 'die', nowNs());
    for (const r of fx.events.live) r.write(half.slice(0, 20));
    await createService(fx.store, 'svc000000000000000000000c', 'db');
    for (const r of fx.events.live) r.write(half.slice(20) + '\n');
    await waitUntil(() => s.lines.length === 4, 5000, 'four events');
    const parsed = s.lines.map((l) => JSON.parse(l));
    assert.deepEqual(parsed.map((e) => `${e.Type}:${e.Action}:${e.Actor.Attributes.name}`).sort(), ['container:die:c-c2', 'container:start:c-c1', 'service:create:api', 'service:create:db']);
    s.close();
    await waitUntil(() => fx.events.live.size === 0 && fx.log.subscribers === 0, 5000, 'the engine stream to be aborted');
  } finally {
    await fx.close();
  }
});

test('/events since+until in the past: engine and swarm history merged in time order, then the stream ends', async () => {
  const fx = await fixture();
  try {
    const t0 = nowNs() - 10_000_000_000n;
    fx.events.past.push(ctrEvent('old', 'start', t0 - 5_000_000_000n)); // before `since`
    fx.events.past.push(ctrEvent('a', 'start', t0 + 1_000_000_000n));
    fx.events.past.push(ctrEvent('b', 'die', t0 + 3_000_000_000n));
    const iso = (ns: bigint) => new Date(Number(ns / 1_000_000n)).toISOString();
    await createService(fx.store, 'svc000000000000000000000d', 'mid', iso(t0 + 2_000_000_000n));
    await createService(fx.store, 'svc000000000000000000000e', 'late', iso(t0 + 9_000_000_000n)); // after `until`
    const s = await openEvents(fx.path, { since: formatTimestamp(t0), until: formatTimestamp(t0 + 4_000_000_000n) });
    await waitUntil(() => s.ended, 5000, 'the stream to end');
    assert.deepEqual(s.lines.map((l) => JSON.parse(l).Actor.Attributes.name), ['c-a', 'mid', 'c-b']);
    const qs = engineEventQueries(fx.fake);
    assert.equal(qs.length, 1, 'only past events were asked for');
    assert.equal(qs[0]!.get('until'), formatTimestamp(t0 + 4_000_000_000n));
  } finally {
    await fx.close();
  }
});

test('/events until before the epoch: an empty answer at once, the engine is not asked (dockerd never answers until=-1)', async () => {
  const fx = await fixture();
  try {
    const s = await openEvents(fx.path, { until: '-1' });
    await waitUntil(() => s.ended, 5000, 'the stream to end');
    assert.equal(s.res.statusCode, 200);
    assert.deepEqual(s.lines, []);
    assert.equal(engineEventQueries(fx.fake).length, 0);
  } finally {
    await fx.close();
  }
});

test('/events since, then live: the engine is asked for the past up to now and for the live stream from now+1ns', async () => {
  const fx = await fixture();
  try {
    const t0 = nowNs() - 10_000_000_000n;
    fx.events.past.push(ctrEvent('a', 'start', t0 + 1_000_000_000n));
    const s = await openEvents(fx.path, { since: formatTimestamp(t0) });
    await waitUntil(() => s.lines.length === 1 && fx.events.live.size === 1, 5000, 'the replay and the live stream');
    const [past, live] = engineEventQueries(fx.fake);
    const cut = parseTimestamp(past!.get('until')!);
    assert.equal(past!.get('since'), formatTimestamp(t0));
    assert.equal(parseTimestamp(live!.get('since')!), cut + 1n);
    await createService(fx.store, 'svc000000000000000000000f', 'now');
    fx.events.push(ctrEvent('b', 'die', nowNs()));
    await waitUntil(() => s.lines.length === 3, 5000, 'live events');
    assert.equal(s.ended, false);
    s.close();
  } finally {
    await fx.close();
  }
});

test('/events until in the future ends the stream then; scope=local has no swarm events', async () => {
  const fx = await fixture();
  try {
    const until = nowNs() + 400_000_000n;
    const s = await openEvents(fx.path, { until: formatTimestamp(until), filters: JSON.stringify({ scope: { local: true } }) });
    await waitUntil(() => fx.events.live.size === 1, 5000, 'the engine stream');
    await createService(fx.store, 'svc000000000000000000000g', 'hidden');
    fx.events.push(ctrEvent('x', 'start', nowNs()));
    await waitUntil(() => s.ended, 5000, 'the stream to end at until');
    assert.ok(nowNs() >= until);
    assert.deepEqual(s.lines.map((l) => JSON.parse(l).Type), ['container']);
  } finally {
    await fx.close();
  }
});

test('/events errors: bad since, since after until, engine refusal relayed, engine down', async () => {
  const fx = await fixture();
  try {
    const router = new Router();
    registerEventRoutes(router, { engineAddress: fx.fake.address, store: fx.store });
    const handler = createApiHandler({ router, engine: new EngineProxy(fx.fake.address), engineVersion: () => '20.10.24', log: silentLogger });
    const bad = await inject(handler, { url: '/v1.41/events?since=abc&until=1' });
    assert.equal(bad.statusCode, 400, 'the client\'s mistake (dockerd says 500)');
    assert.equal(bad.headers['content-type'], 'application/json');
    assert.equal(bad.json().message, 'strconv.ParseInt: parsing "abc": invalid syntax');
    const order = await inject(handler, { url: '/v1.41/events?since=20&until=10' });
    assert.equal(order.statusCode, 400);
    assert.equal(order.json().message, '`since` time (20) cannot be after `until` time (10)');
    // Filters that are no JSON are the client's fault: 400, as on every route
    // of Shoal (dockerd 20.10 answers 500 with Go's decoder error).
    for (const raw of ['xx', '3.e4?1I', '{"type":']) {
      const badFilter = await inject(handler, { url: `/v1.41/events?filters=${encodeURIComponent(raw)}` });
      assert.equal(badFilter.statusCode, 400, raw);
      assert.equal(badFilter.json().message, `invalid filter: ${raw}`);
    }

    const downRouter = new Router();
    const downLog = registerEventRoutes(downRouter, { engineAddress: 'unix:///nonexistent/shoal/docker.sock' });
    const down = createApiHandler({ router: downRouter, engine: new EngineProxy('unix:///nonexistent/shoal/docker.sock'), engineVersion: () => 'x', log: silentLogger });
    const res = await inject(down, { url: '/v1.41/events?until=1' });
    assert.equal(res.statusCode, 503);
    assert.equal(res.headers['content-type'], 'application/json');
    assert.match(res.json().message, /Cannot connect to the Docker engine/);
    downLog.close();
  } finally {
    await fx.close();
  }
});

test('/events relays the engine\'s own refusal', async () => {
  const fx = await fixture();
  try {
    fx.fake.handle = (_req, res) => { res.writeHead(400, { 'Content-Type': 'application/json' }); res.end('{"message":"engine says no"}\n'); };
    const s = await openEvents(fx.path, {});
    assert.equal(s.res.statusCode, 400);
    await waitUntil(() => s.ended, 5000, 'the answer');
    assert.equal(JSON.parse(s.body).message, 'engine says no');
    assert.equal(fx.log.subscribers, 0);
  } finally {
    await fx.close();
  }
});

test('the swarm event log follows a store that comes and goes, and keeps a bounded ring', async () => {
  let current: Store | undefined;
  const log = new SwarmEventLog(3);
  log.follow(() => current, 10);
  try {
    const a = await Store.open(new MemoryBackend(), silentLogger);
    current = a;
    log.sync();
    for (const n of ['s1', 's2', 's3', 's4']) await createService(a, `svc00000000000000000000${n}`, n);
    const { recent, unsubscribe } = log.subscribe(() => undefined);
    unsubscribe();
    assert.deepEqual(recent.map((e) => e.Actor.Attributes.name), ['s2', 's3', 's4']);
    current = undefined;
    log.sync();
    await createService(a, 'svc0000000000000000000s5', 's5');
    assert.equal(log.subscribe(() => undefined).recent.at(-1)!.Actor.Attributes.name, 's4', 'detached from the old store');
    await a.close();
  } finally {
    log.close();
  }
});

// ---------- GET /info ----------

test('/info is the engine\'s answer with Swarm replaced, key order kept', async () => {
  const fake = await startFakeEngine();
  const engine = new EngineClient(fake.address);
  try {
    fake.handle = (req, res) => {
      assert.equal(req.url, '/v1.41/info');
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ ID: 'ABCD', Containers: 3, Swarm: { LocalNodeState: 'inactive' }, ServerVersion: '20.10.24' }));
    };
    const swarm: SwarmInfo = { NodeID: 'n1', NodeAddr: '10.0.0.1', LocalNodeState: 'active', ControlAvailable: true, Error: '', RemoteManagers: [{ NodeID: 'n1', Addr: '10.0.0.1:2377' }], Nodes: 1, Managers: 1 };
    const router = new Router();
    registerInfoRoute(router, { engine, swarmInfo: () => swarm });
    const handler = createApiHandler({ router, engine: new EngineProxy(fake.address), engineVersion: () => '20.10.24', log: silentLogger });
    const res = await inject(handler, { url: '/v1.41/info' });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-type'], 'application/json');
    assert.deepEqual(Object.keys(res.json()), ['ID', 'Containers', 'Swarm', 'ServerVersion']);
    assert.deepEqual(res.json().Swarm, swarm);

    const downRouter = new Router();
    registerInfoRoute(downRouter, { engineAddress: 'unix:///nonexistent/shoal/docker.sock', swarmInfo: () => swarm });
    const down = await inject(createApiHandler({ router: downRouter, engine: new EngineProxy(fake.address), engineVersion: () => 'x', log: silentLogger }), { url: '/info' });
    assert.equal(down.statusCode, 503);
    assert.match(down.json().message, /^Cannot connect to the Docker engine at unix:\/\/\/nonexistent/);

    fake.handle = (_req, res) => { res.writeHead(500, { 'Content-Type': 'application/json' }); res.end('{"message":"boom"}\n'); };
    const failed = await inject(handler, { url: '/info' });
    assert.equal(failed.statusCode, 500);
    assert.equal(failed.json().message, 'boom');
  } finally {
    engine.close();
    await fake.close();
  }
});

