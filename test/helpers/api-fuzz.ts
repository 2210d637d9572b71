// Request generators and answer checks shared by the in-process and the
// over-the-socket fuzz tests of the API (test/unit/api/fuzz.test.ts,
// test/integration/api/fuzz.test.ts). Bodies start from valid specs and get
// mutated (wrong types, huge numbers, unicode, nulls, deep nesting), or are
// random JSON or not JSON at all.
import fc from 'fast-check';

// Default case counts keep CI short; FUZZ_RUNS raises them for a long run.
export function fuzzRuns(ciDefault: number): number {
  const n = Number(process.env.FUZZ_RUNS);
  return Number.isSafeInteger(n) && n > 0 ? n : ciDefault;
}

export interface FuzzRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: string;
}

export const IMAGE = 'shoal-test/busybox:1';

// Valid bodies for each owned POST route (by route pattern).
export function validBodies(): Record<string, unknown[]> {
  const service = {
    Name: 'fz', Labels: { a: 'b' },
    TaskTemplate: {
      ContainerSpec: { Image: IMAGE, Args: ['sleep', '1000'], Env: ['A=1'], Mounts: [{ Type: 'tmpfs', Target: '/t' }] },
      Resources: { Limits: { NanoCPUs: 1e8, MemoryBytes: 1e7 }, Reservations: { NanoCPUs: 1e7 } },
      RestartPolicy: { Condition: 'on-failure', Delay: 1e9, MaxAttempts: 3 },
      Placement: { Constraints: ['node.role==manager'], Preferences: [{ Spread: { SpreadDescriptor: 'node.id' } }], MaxReplicas: 2 },
    },
    Mode: { Replicated: { Replicas: 1 } },
    UpdateConfig: { Parallelism: 1, Delay: 0, FailureAction: 'pause', Order: 'stop-first' },
    EndpointSpec: { Mode: 'vip', Ports: [{ Protocol: 'tcp', TargetPort: 80, PublishedPort: 8080, PublishMode: 'ingress' }] },
  };
  const secret = { Name: 'fz', Labels: { l: 'v' }, Data: Buffer.from('s3cret').toString('base64') };
  const node = { Role: 'manager', Availability: 'active', Labels: { zone: 'a' } };
  const swarmSpec = { Name: 'default', Orchestration: { TaskHistoryRetentionLimit: 5 }, Raft: { SnapshotInterval: 10000, KeepOldSnapshots: 0, LogEntriesForSlowFollowers: 500, ElectionTick: 10, HeartbeatTick: 1 }, Dispatcher: { HeartbeatPeriod: 5e9 }, CAConfig: { NodeCertExpiry: 7776000e9 }, TaskDefaults: {}, EncryptionConfig: { AutoLockManagers: false } };
  return {
    '/swarm/init': [{ ListenAddr: '0.0.0.0:2377', AdvertiseAddr: '127.0.0.1', ForceNewCluster: false, Spec: swarmSpec }],
    '/swarm/join': [{ ListenAddr: '0.0.0.0:2377', RemoteAddrs: ['127.0.0.1:2377'], JoinToken: 'SWMTKN-1-x' }],
    '/swarm/update': [swarmSpec],
    '/services/create': [service, { Name: 'g', TaskTemplate: { ContainerSpec: { Image: IMAGE } }, Mode: { Global: {} } }],
    '/services/:id/update': [service],
    '/secrets/create': [secret],
    '/secrets/:id/update': [secret],
    '/configs/create': [secret],
    '/configs/:id/update': [secret],
    '/nodes/:id/update': [node],
  };
}

// Values that break assumptions: wrong types, extremes, unicode, nulls.
const nasty: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(null), fc.boolean(), fc.constant(''), fc.constant([]), fc.constant({}),
  fc.constantFrom(0, -1, 1.5, 2 ** 53 + 2, -(2 ** 63), 1e308, -1e308, 1e-320),
  fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.string({ unit: 'binary', maxLength: 30 }), fc.string({ unit: 'grapheme', maxLength: 30 }),
  fc.constantFrom('\u0000', '\ud800', '../../etc', 'a'.repeat(5000), '$(reboot)', '%00', 'node.role==', '=='),
  fc.jsonValue({ maxDepth: 3 }),
);

// Replaces (or adds) one value somewhere inside `base`, walking by picks.
function mutateAt(base: unknown, picks: number[], value: unknown, addKey: string | undefined): unknown {
  const root = structuredClone(base) as Record<string, unknown>;
  let cur: unknown = root;
  for (let i = 0; i < picks.length; i++) {
    if (cur === null || typeof cur !== 'object') break;
    const obj = cur as Record<string, unknown>;
    const keys = Object.keys(obj);
    if (!keys.length || (addKey !== undefined && i === picks.length - 1)) {
      // An added key on an array is an added element (a key such as "length" would break the generator itself).
      if (Array.isArray(obj)) obj.push(value); else obj[addKey ?? 'X'] = value;
      return root;
    }
    const key = keys[picks[i]! % keys.length]!;
    const child = obj[key];
    if (i === picks.length - 1 || child === null || typeof child !== 'object') { obj[key] = value; return root; }
    cur = child;
  }
  return root;
}

const deepNesting = fc.tuple(fc.integer({ min: 100, max: 20_000 }), fc.constantFrom('[', '{"a":')).map(([n, open]) =>
  open === '[' ? '['.repeat(n) + ']'.repeat(n) : '{"a":'.repeat(n) + '1' + '}'.repeat(n));

// A body for a route: mutated valid specs most of the time.
export function bodyArb(bases: unknown[] | undefined): fc.Arbitrary<string | undefined> {
  const mutated = bases?.length
    ? fc.tuple(fc.constantFrom(...bases), fc.array(fc.nat(), { minLength: 1, maxLength: 6 }), nasty, fc.option(fc.string({ maxLength: 12 }), { nil: undefined }), fc.integer({ min: 1, max: 3 }))
      .map(([b, picks, v, add, times]) => {
        let out = b;
        for (let i = 0; i < times; i++) out = mutateAt(out, picks.map((p) => p + i), v, add);
        return JSON.stringify(out);
      })
    : fc.constant(undefined);
  return fc.oneof(
    { weight: 6, arbitrary: mutated },
    { weight: 1, arbitrary: bases?.length ? fc.constantFrom(...bases.map((b) => JSON.stringify(b))) : fc.constant(undefined) },
    { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)) },
    { weight: 1, arbitrary: deepNesting },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 60 }) },
    { weight: 1, arbitrary: fc.constant(undefined) },
  );
}

const QUERY_KEYS = ['filters', 'version', 'force', 'insertDefaults', 'status', 'rollback', 'rotateWorkerToken', 'rotateManagerToken', 'registryAuthFrom', 'since', 'until', 'follow', 'tail', 'timestamps', 'details', 'stdout', 'stderr'];
const filterJson = fc.oneof(
  fc.dictionary(fc.constantFrom('name', 'id', 'label', 'mode', 'role', 'membership', 'service', 'node', 'desired-state', 'names', 'bogus', 'type', 'event'),
    fc.oneof(fc.dictionary(fc.string({ maxLength: 8 }), fc.oneof(fc.boolean(), fc.constant(true), nasty), { maxKeys: 3 }), fc.array(fc.string({ maxLength: 8 }), { maxLength: 3 }), nasty), { maxKeys: 3 })
    .map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 20 }),
);

export const queryArb: fc.Arbitrary<string> = fc.array(fc.tuple(
  fc.oneof({ weight: 5, arbitrary: fc.constantFrom(...QUERY_KEYS) }, { weight: 1, arbitrary: fc.string({ maxLength: 8 }) }),
  fc.oneof(fc.constantFrom('1', '0', 'true', 'false', '', '-1', '99999999999999999999', 'previous', '1e3'), filterJson, fc.string({ unit: 'grapheme', maxLength: 12 })),
), { maxLength: 4 }).map((pairs) => (pairs.length ? '?' + new URLSearchParams(pairs).toString() : ''));

// Header names and values a client could send (light-my-request and Node
// refuse invalid ones outright, which would test nothing).
export const headersArb: fc.Arbitrary<Record<string, string>> = fc.record({
  'content-type': fc.constantFrom('application/json', 'text/plain', 'application/x-tar', '', 'application/json; charset=utf-16'),
  extra: fc.dictionary(
    fc.oneof(fc.constantFrom('X-Registry-Auth', 'Upgrade', 'Connection', 'Expect', 'Accept-Encoding', 'Content-Encoding'), fc.stringMatching(/^X-[A-Za-z0-9-]{1,12}$/)),
    fc.stringMatching(/^[\x20-\x7e]{0,40}$/), { maxKeys: 3 }),
}, { requiredKeys: [] }).map((h) => {
  const out: Record<string, string> = {};
  if (h['content-type']) out['content-type'] = h['content-type'];
  for (const [k, v] of Object.entries(h.extra ?? {})) {
    const low = k.toLowerCase();
    // Framing headers would make the request itself malformed rather than fuzz the API.
    if (low === 'content-length' || low === 'transfer-encoding' || low === 'host') continue;
    // Node's client answers Expect itself and never sends the body without a 100.
    if (low === 'expect' || low === 'connection' || low === 'upgrade') continue;
    out[k] = v.trim();
  }
  return out;
});

// Percent-encodes some characters of a path, and varies its version prefix.
export const pathFormArb = fc.record({
  prefix: fc.constantFrom('/v1.41', '/v1.41', '/v1.24', '/v1.12', '', '/v1.41.0', '/v1.40'),
  encode: fc.array(fc.nat(), { maxLength: 3 }),
  trailingSlash: fc.boolean(),
});

export function shapePath(path: string, form: { prefix: string; encode: number[]; trailingSlash: boolean }): string {
  let p = path;
  for (const at of form.encode) {
    const i = 1 + (at % Math.max(1, p.length - 1));
    const ch = p[i];
    if (!ch || ch === '%' || ch === '/') continue;
    p = p.slice(0, i) + '%' + ch.charCodeAt(0).toString(16).padStart(2, '0').toUpperCase() + p.slice(i + 1);
  }
  return form.prefix + p + (form.trailingSlash ? '/' : '');
}

// Parameter values for :id: existing objects (by ID, prefix or name) or anything.
export function idArb(existing: string[]): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 4, arbitrary: existing.length ? fc.constantFrom(...existing) : fc.constant('x') },
    { weight: 1, arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 30 }).map((s) => encodeURIComponent(s)) },
    { weight: 1, arbitrary: fc.constantFrom('..', '.', '%2e%2e', 'a%2Fb', '0', 'a'.repeat(300)) },
  );
}

// The statuses an answer to a client may have (500 only as DOCKER_OWN_500S).
export const CLIENT_STATUSES = new Set([200, 201, 204, 304, 400, 401, 403, 404, 406, 409, 412, 503]);

export interface Answer { method: string; status: number; contentType?: string; text: string }

// 500s that dockerd itself answers for the same request, kept for fidelity:
// a stale Version.Index ("update out of sequence", moby maps that gRPC error
// to 500); on /events a since/until that is no timestamp (dockerd's strconv
// error). Filters that are no JSON are a 400 on every route.
const DOCKER_OWN_500S: Array<{ route?: string; message: RegExp }> = [
  { message: /update out of sequence/ },
  { route: 'GET /events', message: /^strconv\.Parse(Int|Float): parsing / },
];

// The checks every answer must pass; returns what is wrong, if anything.
export function answerProblems(a: Answer, route: string, knownFinding?: (a: Answer) => boolean): string | undefined {
  if (a.status >= 400 && a.method !== 'HEAD') { // HEAD answers carry no body
    if (a.contentType !== 'application/json') return `error with Content-Type ${a.contentType}`;
    let msg: unknown;
    try { msg = (JSON.parse(a.text) as { message?: unknown }).message; } catch { return `error body is not JSON: ${a.text.slice(0, 200)}`; }
    if (typeof msg !== 'string') return `error body without a message: ${a.text.slice(0, 200)}`;
    if (a.status === 500 && DOCKER_OWN_500S.some((d) => (!d.route || d.route === route) && d.message.test(msg as string))) return undefined;
  }
  if (CLIENT_STATUSES.has(a.status)) return undefined;
  if (knownFinding?.(a)) return undefined;
  return `status ${a.status}: ${a.text.slice(0, 300)}`;
}
