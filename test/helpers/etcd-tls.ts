// Certificates for an etcd started outside a daemon (store tests): a fresh
// swarm CA and one etcd certificate, written where EtcdProcess expects them.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRootCA, issueEtcdCert } from '../../src/manager/ca/ca';
import type { EtcdTls } from '../../src/store/etcd-process';

export async function makeEtcdTls(dir: string): Promise<EtcdTls> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ca = await createRootCA();
  const cert = await issueEtcdCert(ca, 'n1', 'test-cluster');
  const tls: EtcdTls = { caFile: join(dir, 'ca.crt'), certFile: join(dir, 'etcd.crt'), keyFile: join(dir, 'etcd.key') };
  writeFileSync(tls.caFile, ca.certPem);
  writeFileSync(tls.certFile, cert.certPem);
  writeFileSync(tls.keyFile, cert.keyPem, { mode: 0o600 });
  return tls;
}
