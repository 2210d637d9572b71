import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { checkGivenRootCA, createRootCA, crossSignRoot, issueNodeCert, type RootCA } from '../../../src/manager/ca/ca';

// Does a client trusting `trust` accept a server presenting `chain`, and the server the client's?
async function handshake(server: { chain: string; key: string; trust: string }, client: { chain: string; key: string; trust: string }): Promise<boolean> {
  let serverSide!: (ok: boolean) => void;
  const serverOk = new Promise<boolean>((r) => { serverSide = r; });
  const srv = createServer({ cert: server.chain, key: server.key, ca: server.trust, requestCert: true, rejectUnauthorized: true }, (s) => { serverSide(s.authorized); s.end(); });
  srv.on('tlsClientError', () => serverSide(false));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  try {
    const clientOk = await new Promise<boolean>((resolve) => {
      const s: TLSSocket = connect({ host: '127.0.0.1', port, cert: client.chain, key: client.key, ca: client.trust, checkServerIdentity: () => undefined }, () => resolve(s.authorized));
      s.on('error', () => resolve(false));
      s.on('data', () => undefined);
      s.setTimeout(5000, () => { s.destroy(); resolve(false); });
    });
    // A client the server refuses may have finished its own side (TLS 1.3): both sides count.
    const ok = clientOk && await Promise.race([serverOk, new Promise<boolean>((r) => setTimeout(() => r(false), 5000))]);
    return ok;
  } finally {
    srv.close();
  }
}

test('during a root rotation, old-root and new-root nodes verify each other through the cross-signed root', async () => {
  const oldCA = await createRootCA();
  const newCA = await createRootCA();
  const cross = await crossSignRoot(oldCA, newCA.certPem);
  const id = (n: number): string => `node${n}`.padEnd(25, '0');
  const oldNode = await issueNodeCert(oldCA, id(1), 'manager', 'c'.repeat(25), 3600e9 * 24);
  const newNode = await issueNodeCert(newCA, id(2), 'manager', 'c'.repeat(25), 3600e9 * 24);
  const both = oldCA.certPem + newCA.certPem;
  const renewed = { chain: newNode.certPem + cross, key: newNode.keyPem };
  // A renewed node (new CA + cross) and a node that still trusts only the old root.
  assert.equal(await handshake({ ...renewed, trust: both }, { chain: oldNode.certPem, key: oldNode.keyPem, trust: oldCA.certPem }), true);
  assert.equal(await handshake({ chain: oldNode.certPem, key: oldNode.keyPem, trust: oldCA.certPem }, { ...renewed, trust: both }), true);
  // After the rotation: only the new root is trusted; certificates of the new CA (with or without the cross) verify.
  assert.equal(await handshake({ ...renewed, trust: newCA.certPem }, { chain: newNode.certPem, key: newNode.keyPem, trust: newCA.certPem }), true);
  // The old CA no longer verifies anything: an old certificate is refused by a new-root-only node.
  assert.equal(await handshake({ ...renewed, trust: newCA.certPem }, { chain: oldNode.certPem, key: oldNode.keyPem, trust: newCA.certPem }), false);
  // And a certificate of the new CA without the cross does not verify against the old root alone.
  assert.equal(await handshake({ chain: newNode.certPem, key: newNode.keyPem, trust: oldCA.certPem }, { chain: oldNode.certPem, key: oldNode.keyPem, trust: oldCA.certPem }), false);
});

test('a given root CA is checked: a key that does not match, a non-CA certificate, garbage', async () => {
  const a: RootCA = await createRootCA();
  const b: RootCA = await createRootCA();
  assert.equal(checkGivenRootCA(a.certPem, a.keyPem).certPem.trim(), a.certPem.trim());
  assert.throws(() => checkGivenRootCA(a.certPem, b.keyPem), /certificate key mismatch/);
  assert.throws(() => checkGivenRootCA('nonsense', a.keyPem), /not a PEM certificate/);
  assert.throws(() => checkGivenRootCA(a.certPem, 'nonsense'), /not a PEM private key/);
  const leaf = await issueNodeCert(a, 'n'.repeat(25), 'worker', 'c'.repeat(25), 3600e9 * 24);
  assert.throws(() => checkGivenRootCA(leaf.certPem, leaf.keyPem), /not a CA certificate/);
});
