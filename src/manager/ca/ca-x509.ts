import { createPublicKey, randomBytes, webcrypto } from 'node:crypto';
import { invalid } from '../../common/errors';
import { ALG, pem, x509lib, type X509Lib } from '../../common/x509';
import type { NodeCert, RootCA } from './ca';

// The CA's work that needs @peculiar/x509: run only in the CA's short-lived
// child process (ca-child.ts), through the functions of ca.ts.

const YEAR_MS = 365 * 24 * 3600 * 1000;

function serial(): string { return randomBytes(16).toString('hex').replace(/^[89a-f]/, '1'); }

// The cluster's root CA: ECDSA P-256, CN swarm-ca, 20 years, as SwarmKit's.
export async function createRootCAHere(now: number): Promise<RootCA> {
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

// A new key and a certificate for it, signed by the CA.
export async function issueCertHere(ca: RootCA, subject: string, dnsNames: string[], notAfterMs: number, now: number, ips: string[]): Promise<NodeCert> {
  const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']) as webcrypto.CryptoKeyPair;
  const certPem = await sign(ca, keys.publicKey, subject, dnsNames, new Date(notAfterMs), now, ips);
  return { certPem, keyPem: pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)) };
}

// The request's public key only, after checking the request's own signature
// and that the key is P-256; subject and extensions are the CA's.
export async function signCSRHere(ca: RootCA, csrPem: string, subject: string, dnsNames: string[], notAfterMs: number, now: number): Promise<string> {
  const x509 = await x509lib();
  let csr: InstanceType<X509Lib['Pkcs10CertificateRequest']>;
  try { csr = new x509.Pkcs10CertificateRequest(csrPem); } catch { throw invalid('rpc error: code = InvalidArgument desc = CSR Decode failed'); }
  const spki = createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: 'der', type: 'spki' });
  if (spki.asymmetricKeyType !== 'ec' || spki.asymmetricKeyDetails?.namedCurve !== 'prime256v1') throw invalid('rpc error: code = InvalidArgument desc = the certificate request must be for an ECDSA P-256 key');
  if (!(await csr.verify().catch(() => false))) throw invalid('rpc error: code = InvalidArgument desc = the certificate request\'s signature is not valid');
  const publicKey = await csr.publicKey.export(ALG, ['verify']);
  return sign(ca, publicKey, subject, dnsNames, new Date(notAfterMs), now);
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

// TLSInfo as Docker shows it: the root PEM, and the issuer's subject and
// public key as base64 DER.
export async function tlsInfoHere(ca: RootCA): Promise<{ TrustRoot: string; CertIssuerSubject: string; CertIssuerPublicKey: string }> {
  const x509 = await x509lib();
  const cert = new x509.X509Certificate(ca.certPem);
  return {
    TrustRoot: ca.certPem,
    CertIssuerSubject: Buffer.from(cert.subjectName.toArrayBuffer()).toString('base64'),
    CertIssuerPublicKey: Buffer.from(cert.publicKey.rawData).toString('base64'),
  };
}
