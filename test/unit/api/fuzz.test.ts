import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { inject } from 'light-my-request';
import { controlFixture } from '../../helpers/control-fixture';
import { answerProblems, bodyArb, fuzzRuns, headersArb, idArb, pathFormArb, queryArb, shapePath, validBodies, type Answer } from '../../helpers/api-fuzz';
import { registerPingRoutes } from '../../../src/api/routes/ping';
import { createRootCA } from '../../../src/manager/ca/ca';
import { KINDS } from '../../../src/store/objects';
import { isOwnedTarget, parseTarget } from '../../../src/api/target';

// Every route the swarm API serves, fuzzed in process (light-my-request
// against the real handler, ControlApi and an in-memory store). A long run:
//   npm run build && FUZZ_RUNS=20000 node --test dist/test/unit/api/fuzz.test.js
// (FUZZ_RUNS is the number of cases per route; FUZZ_SEED replays a failure).

const RUNS = fuzzRuns(200); // per route: 6,000 requests, 10-30 s here
const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined;
const ANSWER_DEADLINE_MS = 5000;
// FUZZ_SURVEY=1 lists every distinct 500 (with one request that got it) instead of failing on the first.
const SURVEY = process.env.FUZZ_SURVEY === '1';
const survey = new Map<string, string>();


async function setUp() {
  const fx = await controlFixture({ ca: await createRootCA() });
  registerPingRoutes(fx.router);
  const create = async (path: string, body: unknown): Promise<string> => {
    const r = await fx.call('POST', path, body);
    assert.equal(r.status, 201, `${path}: ${r.text}`);
    return r.json.ID as string;
  };
  const bodies = validBodies();
  const ids = {
    services: await create('/v1.41/services/create', bodies['/services/create']![0]),
    secrets: await create('/v1.41/secrets/create', bodies['/secrets/create']![0]),
    configs: await create('/v1.41/configs/create', bodies['/configs/create']![0]),
  };
  const snapshot = (): string => JSON.stringify(KINDS.map((k) => fx.store.list(k)));
  return { ...fx, ids, snapshot, bodies };
}

function existingIds(route: string, fx: Awaited<ReturnType<typeof setUp>>): string[] {
  const family = route.split('/')[1]!;
  const live = family === 'nodes' ? fx.store.list('nodes').map((n) => n.ID)
    : family === 'tasks' ? fx.store.list('tasks').map((t) => t.ID)
      : family === 'services' || family === 'secrets' || family === 'configs' ? fx.store.list(family).flatMap((o) => [o.ID, o.ID.slice(0, 5), o.Spec.Name ?? ''])
        : [];
  return live.filter(Boolean);
}

test('the fuzz covers every route the router serves', async () => {
  const fx = await setUp();
  const routes = fx.router.routes().map((r) => `${r.method} ${r.path}`);
  assert.ok(routes.length >= 30, routes.join(', '));
  for (const must of ['POST /services/create', 'POST /swarm/update', 'DELETE /nodes/:id', 'GET /_ping']) assert.ok(routes.includes(must), must);
});

test('fuzzed requests at every route: no crash, no 500 for a client mistake, no half-done change, nothing forwarded', { timeout: 600_000 }, async () => {
  const fx = await setUp();
  const started = Date.now();
  let cases = 0;
  for (const route of fx.router.routes()) {
    const mutating = route.method !== 'GET' && route.method !== 'HEAD';
    const outcome = await fc.check(fc.asyncProperty(
      fc.constant(route), pathFormArb, idArb(existingIds(route.path, fx)), queryArb, headersArb, bodyArb(fx.bodies[route.path]), fc.boolean(), fc.boolean(),
      async (r, form, id, query, headers, body, withVersion, absolute) => {
        cases++;
        let q = query;
        // Updates need the current version to get past the version check and reach validation.
        if (withVersion && route.path.endsWith('/update')) {
          const family = route.path.split('/')[1]!;
          const target = family === 'swarm' ? fx.store.list('cluster')[0] : fx.store.list(family as 'services').find((o) => o.ID === id || o.Spec.Name === id || o.ID.startsWith(id));
          if (target) q = `?version=${target.Version.Index}${q ? '&' + q.slice(1) : ''}`;
        }
        const url = (absolute ? 'http://docker' : '') + shapePath(r.path.replace(':id', id), form) + q;
        const before = fx.snapshot();
        const forwardedBefore = fx.forwarded.length;
        const res = await Promise.race([
          inject(fx.handler, { method: r.method, url, headers, payload: body }),
          new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no answer within ${ANSWER_DEADLINE_MS} ms`)), ANSWER_DEADLINE_MS).unref()),
        ]);
        const answer: Answer = { method: r.method, status: res.statusCode, contentType: res.headers['content-type'] as string | undefined, text: res.payload };
        const known = (a: Answer): boolean => {
          if (a.status !== 500) return false;
          if (SURVEY) { survey.set(`${r.method} ${r.path}: ${a.text.trim().slice(0, 160)}`, `${url.slice(0, 200)} ${body?.slice(0, 400)}`); return true; }
          return false;
        };
        const problem = answerProblems(answer, `${r.method} ${r.path}`, known);
        assert.equal(problem, undefined, `${r.method} ${url} body=${body?.slice(0, 300)}: ${problem}`);
        // (light-my-request resolves dot segments itself, so what arrived may differ from `url`.)
        for (const f of fx.forwarded.slice(forwardedBefore)) assert.ok(!isOwnedTarget(parseTarget(f.url)), `${r.method} ${url} was forwarded to the engine as ${f.url}`);
        if (mutating && res.statusCode >= 300) assert.equal(fx.snapshot(), before, `${r.method} ${url} failed (${res.statusCode}) but changed the store`);
      },
    ), { numRuns: RUNS, seed: SEED, endOnFailure: true });
    // Counterexamples can be megabytes (deep nesting): report the failure, not the value.
    if (outcome.failed) assert.fail(`${route.method} ${route.path} (seed ${outcome.seed}): ${String((outcome.errorInstance as Error)?.message ?? outcome.errorInstance).slice(0, 1500)}`);
  }
  if (SURVEY) for (const [k, v] of survey) process.stderr.write(`# 500: ${k}\n#      ${v}\n`);
  process.stderr.write(`# fuzz: ${cases} requests over ${fx.router.routes().length} routes in ${Date.now() - started} ms\n`);
});
