import { createPublicKey, randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import { base36Padded } from '../../common/ids';
import { invalid } from '../../common/errors';
import { ALG, pem, x509lib, type X509Lib } from '../../common/x509';
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

function serial(): string { return randomBytes(16).toString('hex').replace(/^[89a-f]/, '1'); }

// The cluster's root CA: ECDSA P-256, CN swarm-ca, 20 years, as SwarmKit's.
export async function createRootCA(now = Date.now()): Promise<RootCA> {
  const x509 = await x509lib();
  const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: 'CN=swarm-ca',
    notBefore: new Date(now - 3600_000),
    notAfter: new Date(now + 20 * YEAR_MS),
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { certPem: cert.toString('pem') + '\n', keyPem: pem('PRIVATE KEY', pkcs8) };
}

// A node certificate: CN = node ID, OU = role, O = cluster ID (SwarmKit's layout),
// usable for both ends of mutual TLS between nodes.
export async function issueNodeCert(ca: RootCA, nodeId: string, role: 'manager' | 'worker', clusterId: string, expiryNs: number, now = Date.now()): Promise<NodeCert> {
  const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']) as webcrypto.CryptoKeyPair;
  const certPem = await sign(ca, keys.publicKey, nodeSubject(nodeId, role, clusterId), [`swarm-${role}`, nodeId], notAfter(expiryNs, now), now);
  return { certPem, keyPem: pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)) };
}

// The same certificate for a key the node made itself (join, renewal): only
// the public key is taken from the request, after checking the request's own
// signature and that the key is P-256; subject and extensions are the CA's.
export async function signNodeCSR(ca: RootCA, csrPem: string, nodeId: string, role: 'manager' | 'worker', clusterId: string, expiryNs: number, now = Date.now()): Promise<string> {
  const x509 = await x509lib();
  let csr: InstanceType<X509Lib['Pkcs10CertificateRequest']>;
  try { csr = new x509.Pkcs10CertificateRequest(csrPem); } catch { throw invalid('rpc error: code = InvalidArgument desc = CSR Decode failed'); }
  const spki = createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: 'der', type: 'spki' });
  if (spki.asymmetricKeyType !== 'ec' || spki.asymmetricKeyDetails?.namedCurve !== 'prime256v1') throw invalid('rpc error: code = InvalidArgument desc = the certificate request must be for an ECDSA P-256 key');
  if (!(await csr.verify().catch(() => false))) throw invalid('rpc error: code = InvalidArgument desc = the certificate request\'s signature is not valid');
  const publicKey = await csr.publicKey.export(ALG, ['verify']);
  return sign(ca, publicKey, nodeSubject(nodeId, role, clusterId), [`swarm-${role}`, nodeId], notAfter(expiryNs, now), now);
}

const nodeSubject = (nodeId: string, role: string, clusterId: string): string => `CN=${nodeId}, OU=swarm-${role}, O=${clusterId}`;

// Below an hour a node certificate would be renewed constantly: SwarmKit's
// signer uses the default (90 days) then, and so do we.
export const DEFAULT_NODE_CERT_EXPIRY_NS = 7_776_000_000_000_000;
const MIN_NODE_CERT_EXPIRY_NS = 3600e9;
function notAfter(expiryNs: number, now: number): Date {
  const ns = Number.isFinite(expiryNs) && expiryNs >= MIN_NODE_CERT_EXPIRY_NS ? expiryNs : DEFAULT_NODE_CERT_EXPIRY_NS;
  return new Date(now + Math.floor(ns / 1e6));
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
  const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']) as webcrypto.CryptoKeyPair;
  const certPem = await sign(ca, keys.publicKey, nodeSubject(nodeId, 'etcd', clusterId), [ETCD_CERT_NAME, 'localhost', nodeId], new Date(now + 20 * YEAR_MS), now, ips);
  return { certPem, keyPem: pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)) };
}

async function sign(ca: RootCA, publicKey: webcrypto.CryptoKey, subject: string, dnsNames: string[], notAfterDate: Date, now: number, ips: string[] = []): Promise<string> {
  const x509 = await x509lib();
  const caCert = new x509.X509Certificate(ca.certPem);
  const caKey = await webcrypto.subtle.importKey('pkcs8', Buffer.from(ca.keyPem.replace(/-----[^-]+-----|\s/g, ''), 'base64'), ALG, false, ['sign']);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject,
    issuer: caCert.subject,
    notBefore: new Date(now - 3600_000),
    notAfter: notAfterDate,
    publicKey,
    signingKey: caKey,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension([
        ...dnsNames.map((value) => ({ type: 'dns' as const, value })),
        ...['127.0.0.1', ...ips.filter((ip) => ip !== '127.0.0.1')].map((value) => ({ type: 'ip' as const, value })),
      ]),
    ],
  });
  return cert.toString('pem') + '\n';
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
// public key as base64 DER.
export async function tlsInfo(ca: RootCA): Promise<{ TrustRoot: string; CertIssuerSubject: string; CertIssuerPublicKey: string }> {
  const x509 = await x509lib();
  const cert = new x509.X509Certificate(ca.certPem);
  return {
    TrustRoot: ca.certPem,
    CertIssuerSubject: Buffer.from(cert.subjectName.toArrayBuffer()).toString('base64'),
    CertIssuerPublicKey: Buffer.from(cert.publicKey.rawData).toString('base64'),
  };
}

// Join token v1, as Docker's: SWMTKN-1-<sha256 of the root CA PEM in base 36,
// 50 wide>-<16 random bytes in base 36, 25 wide> (protocol/ca.ts reads them).
export function newJoinToken(ca: RootCA): string {
  return `SWMTKN-1-${joinTokenDigestPart(ca.certPem)}-${base36Padded(randomBytes(16), JOIN_TOKEN_SECRET_LEN)}`;
}
