import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRootCA } from '../../../src/manager/ca/ca';
import { parseJoinToken, tokenMatchesCA } from '../../../src/protocol/ca';
import { controlFixture } from '../../helpers/control-fixture';

// What `docker swarm join-token --rotate worker` sends: the spec it read, with rotateWorkerToken.
test('join-token --rotate: only the named token changes, and the new one names this CA', async () => {
  const ca = await createRootCA();
  const { call } = await controlFixture({ ca });
  const before = (await call('GET', '/swarm')).json;
  const r = await call('POST', `/swarm/update?version=${before.Version.Index}&rotateWorkerToken=true&rotateManagerToken=false&rotateManagerUnlockKey=false`, before.Spec);
  assert.equal(r.status, 200, r.text);
  const after = (await call('GET', '/swarm')).json;
  assert.notEqual(after.JoinTokens.Worker, before.JoinTokens.Worker);
  assert.equal(after.JoinTokens.Manager, before.JoinTokens.Manager);
  assert.ok(tokenMatchesCA(parseJoinToken(after.JoinTokens.Worker), ca.certPem));
  const r2 = await call('POST', `/swarm/update?version=${after.Version.Index}&rotateManagerToken=true`, after.Spec);
  assert.equal(r2.status, 200, r2.text);
  const last = (await call('GET', '/swarm')).json;
  assert.notEqual(last.JoinTokens.Manager, after.JoinTokens.Manager);
  assert.equal(last.JoinTokens.Worker, after.JoinTokens.Worker);
});

test('swarm update --cert-expiry: under an hour refused with Docker\'s text; an hour or more kept', async () => {
  const { call } = await controlFixture({ ca: await createRootCA() });
  const s = (await call('GET', '/swarm')).json;
  const short = await call('POST', `/swarm/update?version=${s.Version.Index}`, { ...s.Spec, CAConfig: { NodeCertExpiry: 30 * 60e9 } });
  assert.equal(short.status, 400);
  assert.equal(short.json.message, 'rpc error: code = InvalidArgument desc = minimum certificate expiry time is: 1h0m0s');
  const ok = await call('POST', `/swarm/update?version=${s.Version.Index}`, { ...s.Spec, CAConfig: { NodeCertExpiry: 3600e9 } });
  assert.equal(ok.status, 200, ok.text);
  assert.equal((await call('GET', '/swarm')).json.Spec.CAConfig.NodeCertExpiry, 3600e9);
});
