// Certificates for an etcd started outside a daemon (store tests, the memory
// floor bench): written where EtcdProcess expects them.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRootCA, issueEtcdCert, type NodeCert } from '../../src/manager/ca/ca';
import type { EtcdTls } from '../../src/store/etcd-process';

// The swarm CA's certificate and one etcd certificate with its key, in `dir`.
export function writeEtcdTls(dir: string, caPem: string, cert: NodeCert): EtcdTls {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tls: EtcdTls = { caFile: join(dir, 'ca.crt'), certFile: join(dir, 'etcd.crt'), keyFile: join(dir, 'etcd.key') };
  writeFileSync(tls.caFile, caPem);
  writeFileSync(tls.certFile, cert.certPem);
  writeFileSync(tls.keyFile, cert.keyPem, { mode: 0o600 });
  return tls;
}

// A fresh swarm CA and one etcd certificate from it.
export async function makeEtcdTls(dir: string): Promise<EtcdTls> {
  const ca = await createRootCA();
  return writeEtcdTls(dir, ca.certPem, await issueEtcdCert(ca, 'n1', 'test-cluster'));
}
