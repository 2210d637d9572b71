// Run by `newKeyAndCSR` (common/x509.ts) as its own node process: prints a new
// key and certificate request as one line of JSON, then exits, taking
// @peculiar/x509 with it.
import { newKeyAndCSRHere } from './x509';

newKeyAndCSRHere().then((r) => {
  process.stdout.write(`${JSON.stringify(r)}\n`);
}, (err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
