// A manager's three keys at rest (its node key, its etcd key, the swarm's data
// key) as files under certificates/, in clear or wrapped under the unlock key
// (autolock, node/key-lock.ts), and the clear copy of the etcd key that etcd
// itself reads: etcd takes its key only as a file path, so while it runs that
// copy lives on tmpfs (never on disk), mode 0600 in a 0700 directory, and it
// is removed when etcd stops.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { readKeyFile, writeKeyFiles } from '../node/key-lock';

// tmpfs on every Linux (/run is not tmpfs in every container).
export const DEFAULT_RUNTIME_ROOT = '/dev/shm';

export class ManagerKeys {
  readonly nodeKey: string;
  readonly etcdKey: string;
  readonly dataKey: string;
  readonly runtimeDir: string;

  constructor(dataRoot: string, runtimeRoot = DEFAULT_RUNTIME_ROOT) {
    const certs = join(dataRoot, 'certificates');
    this.nodeKey = join(certs, 'swarm-node.key');
    this.etcdKey = join(certs, 'etcd.key');
    this.dataKey = join(certs, 'swarm-secrets.key');
    // One directory per data root (several daemons on one machine in tests and labs).
    this.runtimeDir = join(runtimeRoot, `shoal-${createHash('sha256').update(dataRoot).digest('hex').slice(0, 16)}`);
  }

  // The file etcd is given as its key.
  get runtimeEtcdKey(): string { return join(this.runtimeDir, 'etcd.key'); }

  private present(): string[] { return [this.nodeKey, this.etcdKey, this.dataKey].filter((p) => existsSync(p)); }

  // Does `unlockKey` open every key file? Throws the first KeyLockError.
  verify(unlockKey: Buffer): void {
    for (const p of this.present()) readKeyFile(p, unlockKey);
  }

  // The clear copy etcd reads, from certificates/etcd.key (opened with `unlockKey` when wrapped).
  stageEtcdKey(unlockKey: Buffer | undefined): void {
    const clear = readKeyFile(this.etcdKey, unlockKey);
    if (!clear) throw new Error(`${this.etcdKey} is missing: this manager cannot start its etcd member`);
    this.dropRuntime();
    mkdirSync(this.runtimeDir, { mode: 0o700 }); // fails if someone made it in between
    writeKeyFiles([{ path: this.runtimeEtcdKey, clear }], undefined);
  }

  dropRuntime(): void { rmSync(this.runtimeDir, { recursive: true, force: true }); }

  // Every key file read with `from` and written again under `to` (undefined:
  // in clear). All are staged before any is renamed.
  rewrap(from: Buffer | undefined, to: Buffer | undefined): void {
    writeKeyFiles(this.present().map((path) => ({ path, clear: readKeyFile(path, from)! })), to);
  }
}
