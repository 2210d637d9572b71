import { MemoryBackend } from '../../src/store/memory-backend';
import type { Backend } from '../../src/store/backend';

// A second client of the same in-memory etcd: its own watch set, and always
// the plain stream (a test's subclass of MemoryBackend may alter its own);
// closing it leaves the backend open for the first client.
export function secondClient(b: MemoryBackend): Backend {
  return {
    range: (p, o) => b.range(p, o),
    count: (p, r) => b.count(p, r),
    txn: (c, o) => MemoryBackend.prototype.txn.call(b, c, o),
    watch: (p, f, cb) => MemoryBackend.prototype.watch.call(b, p, f, cb),
    close: async () => undefined,
  };
}
