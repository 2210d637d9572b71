import { createPrivateKey, createPublicKey, randomBytes, webcrypto, X509Certificate } from 'node:crypto';
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

// The issuer's key identifier, so that TLS picks the right one of two roots
// with the same name (a root rotation: old and new are both CN=swarm-ca).
async function authorityKeyId(x509: X509Lib, caCert: InstanceType<X509Lib['X509Certificate']>): Promise<InstanceType<X509Lib['AuthorityKeyIdentifierExtension']>[]> {
  const ski = caCert.getExtension(x509.SubjectKeyIdentifierExtension);
  return ski ? [new x509.AuthorityKeyIdentifierExtension(ski.keyId)] : [];
}

// The last CA key imported: every join and renewal signs with the same one,
// and importing it took a busy leader 0.9 s per 600 joins (bench/scale.ts).
let lastCAKey: { pem: string; key: Promise<webcrypto.CryptoKey> } | undefined;
function importCAKey(keyPem: string): Promise<webcrypto.CryptoKey> {
  if (lastCAKey?.pem !== keyPem) {
    const key = webcrypto.subtle.importKey('pkcs8', createPrivateKey(keyPem).export({ type: 'pkcs8', format: 'der' }), ALG, false, ['sign']);
    key.catch(() => { if (lastCAKey?.key === key) lastCAKey = undefined; });
    lastCAKey = { pem: keyPem, key };
  }
  return lastCAKey.key;
}

async function sign(ca: RootCA, publicKey: webcrypto.CryptoKey, subject: string, dnsNames: string[], notAfterDate: Date, now: number, ips: string[] = []): Promise<string> {
  const x509 = await x509lib();
  const caCert = new x509.X509Certificate(ca.certPem);
  const caKey = await importCAKey(ca.keyPem);
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
      ...(await authorityKeyId(x509, caCert)),
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
  return { TrustRoot: ca.certPem, ...(await issuerInfo(ca.certPem)) };
}

// The issuer fields of TLSInfo for certificates this CA certificate signs.
export async function issuerInfo(caCertPem: string): Promise<{ CertIssuerSubject: string; CertIssuerPublicKey: string }> {
  const x509 = await x509lib();
  const cert = new x509.X509Certificate(caCertPem);
  return {
    CertIssuerSubject: Buffer.from(cert.subjectName.toArrayBuffer()).toString('base64'),
    CertIssuerPublicKey: Buffer.from(cert.publicKey.rawData).toString('base64'),
  };
}

// Join token v1, as Docker's: SWMTKN-1-<sha256 of the root CA PEM in base 36,
// 50 wide>-<16 random bytes in base 36, 25 wide> (protocol/ca.ts reads them).
export function newJoinToken(ca: RootCA): string {
  return `SWMTKN-1-${joinTokenDigestPart(ca.certPem)}-${base36Padded(randomBytes(16), JOIN_TOKEN_SECRET_LEN)}`;
}

// Root rotation: the new root certificate signed by the old root's key (same
// subject, key and extensions as the new root). Sent after a node certificate
// of the new CA, it lets a peer that still trusts only the old root verify it.
export async function crossSignRoot(oldCA: RootCA, newRootPem: string): Promise<string> {
  const x509 = await x509lib();
  const oldCert = new x509.X509Certificate(oldCA.certPem);
  const next = new x509.X509Certificate(newRootPem);
  const publicKey = await next.publicKey.export(ALG, ['verify']);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: next.subject,
    issuer: oldCert.subject,
    notBefore: next.notBefore,
    // Never beyond the old root: nothing it signs outlives it.
    notAfter: next.notAfter < oldCert.notAfter ? next.notAfter : oldCert.notAfter,
    publicKey,
    signingKey: await importCAKey(oldCA.keyPem),
    signingAlgorithm: ALG,
    extensions: [
      ...next.extensions.filter((e) => e.type !== x509.AuthorityKeyIdentifierExtension.NAME && e.type !== '2.5.29.35'),
      ...(await authorityKeyId(x509, oldCert)),
    ],
  });
  return cert.toString('pem') + '\n';
}

// A root CA a user gives (`docker swarm ca --rotate --ca-cert --ca-key`):
// one CA certificate, valid now, whose key is the ECDSA P-256 key given (the
// swarm signs with P-256 only). The key comes back as PKCS#8. Throws the
// reason, as text for an InvalidArgument answer.
export function checkGivenRootCA(certPem: string, keyPem: string, now = Date.now()): RootCA {
  let cert: X509Certificate;
  try { cert = new X509Certificate(certPem); } catch { throw new Error('could not parse the signing CA certificate: it is not a PEM certificate'); }
  if ((certPem.match(/-----BEGIN CERTIFICATE-----/g) ?? []).length !== 1) throw new Error('the signing CA certificate must be exactly one PEM certificate');
  if (!cert.ca) throw new Error('the signing CA certificate is not a CA certificate (basic constraints CA:TRUE missing)');
  if (Date.parse(cert.validTo) <= now || Date.parse(cert.validFrom) > now) throw new Error(`the signing CA certificate is not valid now (valid from ${cert.validFrom} to ${cert.validTo})`);
  let key: ReturnType<typeof createPrivateKey>;
  try { key = createPrivateKey(keyPem); } catch { throw new Error('could not parse the signing CA key: it is not a PEM private key (an encrypted key is not supported)'); }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') throw new Error('the signing CA key must be an ECDSA P-256 key');
  if (!cert.checkPrivateKey(key)) throw new Error('certificate key mismatch');
  return { certPem: cert.toString().trim() + '\n', keyPem: key.export({ type: 'pkcs8', format: 'pem' }).toString() };
}
