import { createHash, randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import { base36Padded } from '../../common/ids';

// @peculiar/x509 (and the reflect-metadata it needs) is only for making
// certificates, which happens at swarm init and join; it is loaded then, so an
// idle daemon does not carry it. Reading certificates uses node:crypto.
type X509Lib = typeof import('@peculiar/x509');
let lib: X509Lib | undefined;
async function x509lib(): Promise<X509Lib> {
  if (!lib) {
    await import('reflect-metadata');
    lib = await import('@peculiar/x509');
    lib.cryptoProvider.set(webcrypto as never);
  }
  return lib;
}

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const YEAR_MS = 365 * 24 * 3600 * 1000;

export interface RootCA {
  certPem: string;
  keyPem: string; // PKCS#8
}

export interface NodeCert {
  certPem: string;
  keyPem: string;
}

function pem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
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
export function issueNodeCert(ca: RootCA, nodeId: string, role: 'manager' | 'worker', clusterId: string, expiryNs: number, now = Date.now()): Promise<NodeCert> {
  return issue(ca, `CN=${nodeId}, OU=swarm-${role}, O=${clusterId}`, [`swarm-${role}`, nodeId], new Date(now + Math.floor(expiryNs / 1e6)), now);
}

// The certificate of this manager's etcd member: its server, peer and client
// side (etcd runs with client-certificate auth against the swarm CA, and the
// daemon is its only client). ETCD_CERT_NAME is what etcd requires of every
// client and peer (--*-cert-allowed-hostname): node certificates never carry
// it, so a worker's (or a manager's node) certificate gets nothing from etcd.
// `ips`: the advertise address its peers dial. (Edited by the managers helper.)
export const ETCD_CERT_NAME = 'swarm-etcd';
export function issueEtcdCert(ca: RootCA, nodeId: string, clusterId: string, now = Date.now(), ips: string[] = []): Promise<NodeCert> {
  return issue(ca, `CN=${nodeId}, OU=swarm-etcd, O=${clusterId}`, [ETCD_CERT_NAME, 'localhost', nodeId], new Date(now + 20 * YEAR_MS), now, ips);
}

async function issue(ca: RootCA, subject: string, dnsNames: string[], notAfter: Date, now: number, ips: string[] = []): Promise<NodeCert> {
  const x509 = await x509lib();
  const caCert = new x509.X509Certificate(ca.certPem);
  const caKey = await webcrypto.subtle.importKey('pkcs8', Buffer.from(ca.keyPem.replace(/-----[^-]+-----|\s/g, ''), 'base64'), ALG, false, ['sign']);
  const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject,
    issuer: caCert.subject,
    notBefore: new Date(now - 3600_000),
    notAfter,
    publicKey: keys.publicKey,
    signingKey: caKey,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension([...dnsNames.map((value) => ({ type: 'dns' as const, value })), ...['127.0.0.1', ...ips.filter((ip) => ip !== '127.0.0.1')].map((value) => ({ type: 'ip' as const, value }))]),
    ],
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { certPem: cert.toString('pem') + '\n', keyPem: pem('PRIVATE KEY', pkcs8) };
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

// Join token v1: SWMTKN-1-<sha256(root CA DER) in base 36, 50 wide>-<16 random bytes in base 36, 25 wide>.
export function newJoinToken(ca: RootCA): string {
  const der = new X509Certificate(ca.certPem).raw;
  const digest = base36Padded(createHash('sha256').update(der).digest(), 50);
  return `SWMTKN-1-${digest}-${base36Padded(randomBytes(16), 25)}`;
}
