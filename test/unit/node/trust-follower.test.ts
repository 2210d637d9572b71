import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRootCA, issueNodeCert, issuerInfo } from '../../../src/manager/ca/ca';
import { startTrustFollower } from '../../../src/node/trust-follower';
import { issuedByKey } from '../../../src/node/identity';
import { silentLogger } from '../../../src/common/log';
import type { NodeTls } from '../../../src/rpc/grpc';

test('a node renews until it trusts the wanted roots and holds a certificate of the wanted CA, then stops', async () => {
  const oldCA = await createRootCA();
  const newCA = await createRootCA();
  const id = 'n'.repeat(25);
  const first = await issueNodeCert(oldCA, id, 'worker', 'c'.repeat(25), 3600e9 * 24);
  const renewed = await issueNodeCert(newCA, id, 'worker', 'c'.repeat(25), 3600e9 * 24);
  const newKey = (await issuerInfo(newCA.certPem)).CertIssuerPublicKey;
  assert.ok(issuedByKey(renewed.certPem, newKey));
  assert.ok(!issuedByKey(first.certPem, newKey));
  let held: NodeTls = { caPem: oldCA.certPem, certPem: first.certPem, keyPem: first.keyPem };
  let renewals = 0;
  let failNext = true;
  const follower = startTrustFollower({
    held: () => held, log: silentLogger, retryMs: 20,
    renew: async () => {
      renewals++;
      if (failNext) { failNext = false; throw new Error('no manager reachable'); }
      held = { caPem: oldCA.certPem + newCA.certPem, certPem: renewed.certPem, keyPem: renewed.keyPem };
    },
  });
  follower.note({ bundle: oldCA.certPem + newCA.certPem, issuerPublicKey: newKey });
  const deadline = Date.now() + 5000;
  while (held.certPem !== renewed.certPem && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.equal(held.certPem, renewed.certPem);
  assert.equal(renewals, 2); // one failure, retried after the pause
  follower.note({ bundle: oldCA.certPem + newCA.certPem, issuerPublicKey: newKey });
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(renewals, 2, 'nothing to do once it holds what is wanted');
  follower.stop();
});
