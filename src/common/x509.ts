import { webcrypto } from 'node:crypto';
import { join } from 'node:path';
import { run } from './run';

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

// A new P-256 key (PKCS#8 PEM) and a certificate request for it, made in
// this process (the CSR child, `common/csr-child.ts`, calls it).
export async function newKeyAndCSRHere(): Promise<{ keyPem: string; csrPem: string }> {
  const x509 = await x509lib();
  const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=swarm-node', keys, signingAlgorithm: ALG });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { keyPem: pem('PRIVATE KEY', pkcs8), csrPem: csr.toString('pem') + '\n' };
}

// A new key and certificate request (join, renewal). The CA takes only the
// public key from the request: subject and extensions are its own. Made in a
// short-lived node process: @peculiar/x509 would stay in the daemon's heap
// for good once loaded (about 2.7 MB; reflect-metadata and tsyringe keep it),
// and a worker needs it only at join and renewal.
export async function newKeyAndCSR(timeoutMs = CSR_TIMEOUT_MS): Promise<{ keyPem: string; csrPem: string }> {
  if (csrsInProcess) return newKeyAndCSRHere();
  const r = await run(process.execPath, [join(__dirname, 'csr-child.js')], { timeoutMs });
  if (r.code !== 0) throw new Error(`making a certificate request failed (exit ${r.code}): ${r.stderr.trim().split('\n').pop() ?? ''}`);
  return parseCsrChildOutput(r.stdout);
}
let csrsInProcess = false;
// `shoal sim` makes thousands of requests: a node process each would cost far
// more than the library it keeps out of a daemon's heap.
export function makeCsrsInProcess(): void { csrsInProcess = true; }
const CSR_TIMEOUT_MS = 30_000; // a node start and one P-256 key on a starved host take well under this

// The child's one line of JSON, checked where it enters.
export function parseCsrChildOutput(stdout: string): { keyPem: string; csrPem: string } {
  let v: unknown;
  try { v = JSON.parse(stdout); } catch { throw new Error('the certificate request process wrote no JSON'); }
  const o = (typeof v === 'object' && v !== null ? v : {}) as Record<string, unknown>;
  const { keyPem, csrPem } = o;
  if (typeof keyPem !== 'string' || !keyPem.includes('-----BEGIN PRIVATE KEY-----')
    || typeof csrPem !== 'string' || !csrPem.includes('-----BEGIN CERTIFICATE REQUEST-----')) {
    throw new Error('the certificate request process wrote no key and request');
  }
  return { keyPem, csrPem };
}
