import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import fc from 'fast-check';
import { answerProblems, bodyArb, fuzzRuns, headersArb, idArb, pathFormArb, queryArb, shapePath, validBodies, type Answer } from '../../helpers/api-fuzz';
import { engineApi, startShoal, type ShoalHandle } from '../../helpers/daemon';
import { Router } from '../../../src/api/router';
import { registerPingRoutes } from '../../../src/api/routes/ping';
import { registerInfoRoute } from '../../../src/api/routes/engine-info';
import { registerSwarmApiRoutes } from '../../../src/api/routes/swarm-api';
import { registerLogRoutes } from '../../../src/api/routes/logs';
import { registerEventRoutes } from '../../../src/api/routes/events';
import type { SwarmMembership } from '../../../src/api/routes/membership';

// A smaller fuzz pass over the socket of a started daemon (the in-process
// pass is test/unit/api/fuzz.test.ts): raw targets exactly as generated, every
// route the daemon serves. Long run: FUZZ_RUNS=500 node --test dist/test/integration/api/fuzz.test.js

const RUNS = fuzzRuns(6); // per route
const STREAM_MS = 1500;   // events and logs -f stream: their first answer is enough

// The daemon's routes, registered as daemon.ts does (the dependencies are
// never called: only the route table is read).
function daemonRoutes(): Array<{ method: string; path: string }> {
  const router = new Router();
  const swarm = {} as SwarmMembership;
  registerPingRoutes(router);
  registerInfoRoute(router, { engine: { getJson: async () => ({}) } as never, swarmInfo: () => ({}) as never });
  registerSwarmApiRoutes(router, swarm);
  registerLogRoutes(router, { swarm, broker: () => undefined });
  registerEventRoutes(router, {}).close();
  return [...router.routes()];
}

// Routes left out here (fuzzed in process only): leaving the swarm ends the
// pass, and making the drained node active again would start fuzzed services.
const SKIP = new Set(['POST /swarm/leave', 'POST /nodes/:id/update', 'DELETE /nodes/:id']);


let shoal: ShoalHandle;

before(async () => {
  shoal = await startShoal({ hostname: 'fuzz-node' });
  const init = await shoal.docker(['swarm', 'init', '--advertise-addr', '127.0.0.1']);
  assert.equal(init.code, 0, init.stderr);
  // No task may start from a fuzzed service: the only node is drained.
  const drain = await shoal.docker(['node', 'update', '--availability', 'drain', 'fuzz-node']);
  assert.equal(drain.code, 0, drain.stderr);
  for (const [path, body] of [['/v1.41/services/create', validBodies()['/services/create']![0]], ['/v1.41/secrets/create', validBodies()['/secrets/create']![0]], ['/v1.41/configs/create', validBodies()['/configs/create']![0]]] as const) {
    const r = await shoal.api('POST', path, body);
    assert.equal(r.status, 201, r.text);
  }
});

after(async () => { await shoal?.cleanup(); });

function send(socketPath: string, method: string, path: string, headers: Record<string, string>, body: string | undefined): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const h: Record<string, string> = { Host: 'docker', ...headers };
    if (body !== undefined) h['Content-Length'] = String(Buffer.byteLength(body));
    const req = request({ socketPath, method, path, headers: h }, (res) => {
      let text = '';
      const done = (): void => resolve({ method, status: res.statusCode ?? 0, contentType: res.headers['content-type'], text });
      // A stream that stays open has answered once its status is in.
      const t = setTimeout(() => { res.destroy(); done(); }, STREAM_MS);
      res.on('data', (d: Buffer) => { if (text.length < 4000) text += d.toString(); });
      res.on('end', () => { clearTimeout(t); done(); });
      res.on('error', () => { clearTimeout(t); done(); });
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`${method} ${path}: no answer within 10 s`)));
    req.on('error', reject);
    req.end(body);
  });
}

test('fuzzed requests over the socket at every daemon route: answers only, the daemon stays up, the engine never enters swarm mode', { timeout: 300_000 }, async () => {
  const routes = daemonRoutes().filter((r) => !SKIP.has(`${r.method} ${r.path}`));
  assert.ok(routes.length >= 30);
  const ids = (await Promise.all(['services', 'secrets', 'configs', 'nodes', 'tasks'].map((k) => shoal.api('GET', `/v1.41/${k}`))))
    .flatMap((r) => (r.json as Array<{ ID: string }>).map((o) => o.ID));
  const bodies = validBodies();
  let cases = 0;
  for (const route of routes) {
    const outcome = await fc.check(fc.asyncProperty(pathFormArb, idArb(ids), queryArb, headersArb, bodyArb(bodies[route.path]), async (form, id, query, headers, body) => {
      cases++;
      const path = shapePath(route.path.replace(':id', id), form) + query;
      const a = await send(shoal.socket, route.method, path, headers, body);
      const problem = answerProblems(a, `${route.method} ${route.path}`);
      assert.equal(problem, undefined, `${route.method} ${path} body=${body?.slice(0, 300)}: ${problem}`);
    }), { numRuns: RUNS, endOnFailure: true });
    if (outcome.failed) assert.fail(`${route.method} ${route.path} (seed ${outcome.seed}): ${String((outcome.errorInstance as Error)?.message ?? outcome.errorInstance).slice(0, 1500)}`);
    assert.ok(shoal.running(), `the daemon died during ${route.method} ${route.path}`);
  }
  const info = await engineApi('GET', '/v1.41/info');
  assert.equal(info.json.Swarm.LocalNodeState, 'inactive', 'the host engine must never be in swarm mode');
  process.stderr.write(`# socket fuzz: ${cases} requests over ${routes.length} routes\n`);
});
