import { webcrypto } from 'node:crypto';

// @peculiar/x509 (and the reflect-metadata it needs) is only for making
// certificates and requests, which happens at swarm init, join and renewal;
// it is loaded then, so an idle daemon does not carry it. Reading
// certificates uses node:crypto.
export type X509Lib = typeof import('@peculiar/x509');
let lib: X509Lib | undefined;
export async function x509lib(): Promise<X509Lib> {
  if (!lib) {
    await import('reflect-metadata');
    lib = await import('@peculiar/x509');
    lib.cryptoProvider.set(webcrypto as never);
  }
  return lib;
}

// Every key in a swarm: ECDSA P-256 with SHA-256, as SwarmKit's.
export const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export function pem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

// A new P-256 key (PKCS#8 PEM) and a certificate request for it. The CA
// takes only the public key from the request: subject and extensions are its own.
export async function newKeyAndCSR(): Promise<{ keyPem: string; csrPem: string }> {
  const x509 = await x509lib();
  const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=swarm-node', keys, signingAlgorithm: ALG });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { keyPem: pem('PRIVATE KEY', pkcs8), csrPem: csr.toString('pem') + '\n' };
}
