import { chmodSync, lstatSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

// The data root holds etcd's files, the CA's certificate, node and etcd keys,
// the data key and etcd.log: nobody but root reads any of it. Made tight on
// every start, whatever an earlier release, a restore or an umask left.
export function secureDataRoot(dataRoot: string): void {
  mkdirSync(dataRoot, { recursive: true, mode: 0o700 });
  tighten(dataRoot);
}

// Drops group and other bits below `path` (symbolic links and sockets are left alone).
function tighten(path: string): void {
  const st = lstatSync(path);
  if (st.isSymbolicLink() || st.isSocket()) return;
  if ((st.mode & 0o077) !== 0) chmodSync(path, st.mode & 0o700);
  if (st.isDirectory()) for (const entry of readdirSync(path)) tighten(join(path, entry));
}
