// Run by `inCAChild` (ca.ts) as its own node process: reads one request
// (JSON) on stdin, does it with @peculiar/x509 (ca-x509.ts), prints the answer
// as one line of JSON and exits, taking the library with it. The CA key comes
// through the pipe, never on the command line or in the environment.
import { isShoalError } from '../../common/errors';
import { createRootCAHere, issueCertHere, signCSRHere, tlsInfoHere } from './ca-x509';
import type { CARequest } from './ca';

async function answer(r: CARequest): Promise<unknown> {
  switch (r.op) {
    case 'root': return createRootCAHere(r.now);
    case 'issue': return issueCertHere(r.ca, r.subject, r.dnsNames, r.notAfterMs, r.now, r.ips);
    case 'csr': return signCSRHere(r.ca, r.csrPem, r.subject, r.dnsNames, r.notAfterMs, r.now);
    case 'tlsInfo': return tlsInfoHere(r.ca);
  }
}

let input = '';
process.stdin.setEncoding('utf8').on('data', (d: string) => { input += d; }).on('end', () => {
  // The parent (this daemon's own code) wrote the request: a malformed one is a bug, reported as such.
  Promise.resolve().then(() => answer(JSON.parse(input) as CARequest)).then((ok) => {
    process.stdout.write(`${JSON.stringify({ ok })}\n`);
  }, (err: unknown) => {
    const message = err instanceof Error ? err.message : String(err);
    process.stdout.write(`${JSON.stringify({ error: { kind: isShoalError(err) ? err.kind : 'internal', message } })}\n`);
  });
});
