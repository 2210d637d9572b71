import { randomBytes, X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { base36Padded } from '../../common/ids';
import { ShoalError, type ErrorKind } from '../../common/errors';
import { run } from '../../common/run';
import { JOIN_TOKEN_SECRET_LEN, joinTokenDigestPart } from '../../protocol/ca';

const YEAR_MS = 365 * 24 * 3600 * 1000;

export interface RootCA {
  certPem: string;
  keyPem: string; // PKCS#8
}

export interface NodeCert {
  certPem: string;
  keyPem: string;
}

// Certificates are made with @peculiar/x509 in a short-lived node process
// (ca-child.ts): once loaded, the library (with reflect-metadata and tsyringe)
// would stay in every manager's heap for good, about 2.7 MB, for work done
// only at swarm init, joins, promotions and renewals.
export type CARequest =
  | { op: 'root'; now: number }
  | { op: 'issue'; ca: RootCA; subject: string; dnsNames: string[]; notAfterMs: number; now: number; ips: string[] }
  | { op: 'csr'; ca: RootCA; csrPem: string; subject: string; dnsNames: string[]; notAfterMs: number; now: number }
  | { op: 'tlsInfo'; ca: RootCA };
const CA_CHILD_TIMEOUT_MS = 30_000; // a node start and a signature on a starved host take well under this

async function inCAChild(req: CARequest): Promise<unknown> {
  const r = await run(process.execPath, [join(__dirname, 'ca-child.js')], { timeoutMs: CA_CHILD_TIMEOUT_MS, input: JSON.stringify(req) });
  return parseCAChildOutput(r.code, r.stdout, r.stderr);
}

// The child's one line of JSON, checked where it enters: its answer, or its error with the error's kind.
export function parseCAChildOutput(code: number, stdout: string, stderr: string): unknown {
  let v: unknown;
  try { v = JSON.parse(stdout); } catch {
    throw new Error(`the CA process failed (exit ${code}): ${stderr.trim().split('\n').pop() ?? ''}`);
  }
  const o = (typeof v === 'object' && v !== null ? v : {}) as Record<string, unknown>;
  if ('ok' in o) return o.ok;
  const e = (typeof o.error === 'object' && o.error !== null ? o.error : {}) as Record<string, unknown>;
  const kind = typeof e.kind === 'string' ? e.kind as ErrorKind : 'internal';
  throw new ShoalError(kind, typeof e.message === 'string' ? e.message : `the CA process failed (exit ${code})`);
}

function isRootCA(v: unknown): v is RootCA {
  const o = v as Record<string, unknown> | null;
  return typeof o === 'object' && o !== null && typeof o.certPem === 'string' && typeof o.keyPem === 'string';
}
function asCert(v: unknown): NodeCert {
  if (!isRootCA(v) || !v.certPem.includes('-----BEGIN CERTIFICATE-----') || !v.keyPem.includes('-----BEGIN PRIVATE KEY-----')) throw new Error('the CA process gave no certificate and key');
  return { certPem: v.certPem, keyPem: v.keyPem };
}

// The cluster's root CA: ECDSA P-256, CN swarm-ca, 20 years, as SwarmKit's.
export async function createRootCA(now = Date.now()): Promise<RootCA> {
  return asCert(await inCAChild({ op: 'root', now }));
}

// A node certificate: CN = node ID, OU = role, O = cluster ID (SwarmKit's layout),
// usable for both ends of mutual TLS between nodes.
export async function issueNodeCert(ca: RootCA, nodeId: string, role: 'manager' | 'worker', clusterId: string, expiryNs: number, now = Date.now()): Promise<NodeCert> {
  return asCert(await inCAChild({ op: 'issue', ca, subject: nodeSubject(nodeId, role, clusterId), dnsNames: [`swarm-${role}`, nodeId], notAfterMs: notAfter(expiryNs, now), now, ips: [] }));
}

// The same certificate for a key the node made itself (join, renewal): only
// the public key is taken from the request, after checking the request's own
// signature and that the key is P-256; subject and extensions are the CA's.
export async function signNodeCSR(ca: RootCA, csrPem: string, nodeId: string, role: 'manager' | 'worker', clusterId: string, expiryNs: number, now = Date.now()): Promise<string> {
  const certPem = await inCAChild({ op: 'csr', ca, csrPem, subject: nodeSubject(nodeId, role, clusterId), dnsNames: [`swarm-${role}`, nodeId], notAfterMs: notAfter(expiryNs, now), now });
  if (typeof certPem !== 'string' || !certPem.includes('-----BEGIN CERTIFICATE-----')) throw new Error('the CA process gave no certificate');
  return certPem;
}

const nodeSubject = (nodeId: string, role: string, clusterId: string): string => `CN=${nodeId}, OU=swarm-${role}, O=${clusterId}`;

// Below an hour a node certificate would be renewed constantly: SwarmKit's
// signer uses the default (90 days) then, and so do we.
export const DEFAULT_NODE_CERT_EXPIRY_NS = 7_776_000_000_000_000;
const MIN_NODE_CERT_EXPIRY_NS = 3600e9;
function notAfter(expiryNs: number, now: number): number {
  const ns = Number.isFinite(expiryNs) && expiryNs >= MIN_NODE_CERT_EXPIRY_NS ? expiryNs : DEFAULT_NODE_CERT_EXPIRY_NS;
  return now + Math.floor(ns / 1e6);
}

// The certificate of this manager's etcd member: its server, peer and client
// side (etcd runs with client-certificate auth against the swarm CA, and the
// daemon is its only client). Loopback names, plus `ips` (the member's
// advertise address, which its peers check) once etcd listens there.
// ETCD_CERT_NAME (a DNS name) is what etcd requires of every peer
// (--peer-cert-allowed-hostname): only etcd member certificates carry it,
// never a node certificate, so a worker's certificate gets nothing from etcd.
// (Added by the managers helper.)
export const ETCD_CERT_NAME = 'swarm-etcd';
export async function issueEtcdCert(ca: RootCA, nodeId: string, clusterId: string, now = Date.now(), ips: string[] = []): Promise<NodeCert> {
  return asCert(await inCAChild({ op: 'issue', ca, subject: nodeSubject(nodeId, 'etcd', clusterId), dnsNames: [ETCD_CERT_NAME, 'localhost', nodeId], notAfterMs: now + 20 * YEAR_MS, now, ips }));
}

export function certSubjectFields(certPem: string): { cn: string; ou: string; o: string } {
  const fields = new Map<string, string>();
  for (const line of new X509Certificate(certPem).subject.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) fields.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return { cn: fields.get('CN') ?? '', ou: fields.get('OU') ?? '', o: fields.get('O') ?? '' };
}

// TLSInfo as Docker shows it: the root PEM, and the issuer's subject and
// public key as base64 DER. The same for every node of a swarm: kept for the last root asked.
export interface TLSInfo { TrustRoot: string; CertIssuerSubject: string; CertIssuerPublicKey: string }
let lastTlsInfo: TLSInfo | undefined;
export async function tlsInfo(ca: RootCA): Promise<TLSInfo> {
  if (lastTlsInfo?.TrustRoot === ca.certPem) return { ...lastTlsInfo };
  const v = await inCAChild({ op: 'tlsInfo', ca: { certPem: ca.certPem, keyPem: '' } }) as Record<string, unknown> | null;
  if (typeof v !== 'object' || v === null || typeof v.CertIssuerSubject !== 'string' || typeof v.CertIssuerPublicKey !== 'string') throw new Error('the CA process gave no TLS info');
  lastTlsInfo = { TrustRoot: ca.certPem, CertIssuerSubject: v.CertIssuerSubject, CertIssuerPublicKey: v.CertIssuerPublicKey };
  return { ...lastTlsInfo };
}

// Join token v1, as Docker's: SWMTKN-1-<sha256 of the root CA PEM in base 36,
// 50 wide>-<16 random bytes in base 36, 25 wide> (protocol/ca.ts reads them).
export function newJoinToken(ca: RootCA): string {
  return `SWMTKN-1-${joinTokenDigestPart(ca.certPem)}-${base36Padded(randomBytes(16), JOIN_TOKEN_SECRET_LEN)}`;
}
