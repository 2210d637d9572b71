// A node's identity on disk: the swarm's root CA, this node's certificate and
// its key, under <data-root>/certificates (the same files SwarmNode has used
// since init: swarm-root-ca.crt, swarm-node.crt, swarm-node.key). The node
// certificate is written last and is what says "this node is in a swarm".
//
// Every file is replaced atomically (temporary file, fsync, rename). A renewal
// replaces key and certificate: the key is renamed first, so a crash between
// the two renames leaves a new key with the old certificate; reading notices
// the mismatch and completes the certificate's rename from its temporary file.
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import type { NodeTls } from '../rpc/grpc';
import { keyFileIsWrapped, readKeyFile, stageKeyFile, writeTmpFile } from './key-lock';

export type Role = 'manager' | 'worker';

export interface NodeIdentity {
  nodeId: string;
  clusterId: string;
  role: Role;
  tls: NodeTls;
}

export interface IdentityPaths { dir: string; caCert: string; nodeCert: string; nodeKey: string }

export function identityPaths(dataRoot: string): IdentityPaths {
  const dir = join(dataRoot, 'certificates');
  return { dir, caCert: join(dir, 'swarm-root-ca.crt'), nodeCert: join(dir, 'swarm-node.crt'), nodeKey: join(dir, 'swarm-node.key') };
}

// Who a certificate says the node is (CN, OU, O), and its validity.
export function describeCert(certPem: string): { nodeId: string; clusterId: string; role: Role | undefined; validFrom: number; validTo: number } {
  const cert = new X509Certificate(certPem);
  const fields = new Map<string, string>();
  for (const line of cert.subject.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) fields.set(line.slice(0, eq), line.slice(eq + 1));
  }
  const ou = fields.get('OU');
  return {
    nodeId: fields.get('CN') ?? '',
    clusterId: fields.get('O') ?? '',
    role: ou === 'swarm-manager' ? 'manager' : ou === 'swarm-worker' ? 'worker' : undefined,
    validFrom: Date.parse(cert.validFrom),
    validTo: Date.parse(cert.validTo),
  };
}

// Does this key belong to this certificate?
export function keyMatchesCert(keyPem: string, certPem: string): boolean {
  try {
    const fromKey = createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' });
    const fromCert = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
    return fromKey.equals(fromCert);
  } catch {
    return false;
  }
}

// Is the certificate issued by one of these roots (signature and issuer),
// directly or through an intermediate that follows it in `certPem` (during a
// root rotation: the new root cross-signed by the old)?
export function signedBy(certPem: string, caPem: string): boolean {
  try {
    const [leaf, ...rest] = pemCertificates(certPem).map((p) => new X509Certificate(p));
    const roots = pemCertificates(caPem).map((p) => new X509Certificate(p));
    if (!leaf) return false;
    const issued = (c: X509Certificate, by: X509Certificate): boolean => c.checkIssued(by) && c.verify(by.publicKey);
    return roots.some((root) => issued(leaf, root) || rest.some((mid) => issued(leaf, mid) && issued(mid, root)));
  } catch {
    return false;
  }
}

// Is the first certificate of `certPem` signed by this key (SPKI DER, base64)?
export function issuedByKey(certPem: string, spkiB64: string): boolean {
  try {
    return new X509Certificate(certPem).verify(createPublicKey({ key: Buffer.from(spkiB64, 'base64'), format: 'der', type: 'spki' }));
  } catch {
    return false;
  }
}

export function pemCertificates(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
}

export function identityOf(tls: NodeTls): NodeIdentity {
  const d = describeCert(tls.certPem);
  if (!d.role) throw new Error(`node certificate has no swarm role (OU): ${d.nodeId}`);
  return { nodeId: d.nodeId, clusterId: d.clusterId, role: d.role, tls };
}

// Who this node is by its certificate alone, and whether its key is locked
// (autolock: wrapped under the unlock key); undefined when in no swarm.
export function peekIdentity(dataRoot: string): { nodeId: string; clusterId: string; role: Role | undefined; keyLocked: boolean } | undefined {
  const p = identityPaths(dataRoot);
  if (!existsSync(p.nodeCert)) return undefined;
  const d = describeCert(readFileSync(p.nodeCert, 'utf8'));
  return { nodeId: d.nodeId, clusterId: d.clusterId, role: d.role, keyLocked: keyFileIsWrapped(p.nodeKey) };
}

// The identity on disk, or undefined when this node is in no swarm. A key
// wrapped under autolock needs `unlockKey` (node/key-lock.ts errors otherwise).
export function readIdentity(dataRoot: string, unlockKey?: Buffer): NodeIdentity | undefined {
  const p = identityPaths(dataRoot);
  if (!existsSync(p.nodeCert)) return undefined;
  const keyPem = (readKeyFile(p.nodeKey, unlockKey) ?? Buffer.alloc(0)).toString('utf8');
  let certPem = readFileSync(p.nodeCert, 'utf8');
  if (!keyMatchesCert(keyPem, certPem)) {
    const pending = `${p.nodeCert}.tmp`;
    if (existsSync(pending) && keyMatchesCert(keyPem, readFileSync(pending, 'utf8'))) {
      renameSync(pending, p.nodeCert); // finish a renewal a crash interrupted
      certPem = readFileSync(p.nodeCert, 'utf8');
    } else {
      throw new Error(`${p.nodeKey} does not belong to ${p.nodeCert}: the node's identity is damaged; leave the swarm (remove ${p.dir}) and join again`);
    }
  }
  return identityOf({ caPem: readFileSync(p.caCert, 'utf8'), certPem, keyPem });
}

// Writes the identity (join, renewal). The CA first, the certificate last;
// the key wrapped under `unlockKey` when given (a manager under autolock).
export function writeIdentity(dataRoot: string, tls: NodeTls, unlockKey?: Buffer): void {
  const p = identityPaths(dataRoot);
  if (!keyMatchesCert(tls.keyPem, tls.certPem)) throw new Error('refusing to write a node key that does not belong to its certificate');
  mkdirSync(p.dir, { recursive: true, mode: 0o700 });
  writeAtomic(p.caCert, tls.caPem, 0o644);
  // Both temporary files complete before either is renamed (see above).
  const keyTmp = stageKeyFile(p.nodeKey, Buffer.from(tls.keyPem, 'utf8'), unlockKey);
  const certTmp = writeTmpFile(p.nodeCert, tls.certPem, 0o644);
  renameSync(keyTmp, p.nodeKey);
  renameSync(certTmp, p.nodeCert);
  fsyncDir(p.dir);
}

function writeAtomic(path: string, data: string, mode: number): void {
  renameSync(writeTmpFile(path, data, mode), path);
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try { fsyncSync(fd); } finally { closeSync(fd); }
}

// The identity in use: what the RPC server and channels read (`tls`), what a
// renewal replaces (`save`: on disk first, then in memory), and who wants to
// know (channels opened with the old certificate should be reopened, so that a
// promoted node presents its manager certificate).
export class LocalIdentity {
  private id: NodeIdentity;
  private readonly listeners = new Set<(id: NodeIdentity) => void>();

  constructor(private readonly dataRoot: string, initial: NodeIdentity) { this.id = initial; }

  get current(): NodeIdentity { return this.id; }
  readonly tls = (): NodeTls => this.id.tls;

  readonly save = (tls: NodeTls): void => {
    const next = identityOf(tls);
    if (next.nodeId !== this.id.nodeId || next.clusterId !== this.id.clusterId) throw new Error(`refusing to replace the identity of node ${this.id.nodeId} with one for ${next.nodeId} of cluster ${next.clusterId}`);
    writeIdentity(this.dataRoot, tls);
    this.id = next;
    for (const fn of this.listeners) fn(next);
  };

  onChange(fn: (id: NodeIdentity) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
}
