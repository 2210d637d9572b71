import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

// Secret values at rest: AES-256-GCM under the swarm's data key, one random
// 96-bit nonce per value, the secret's ID as additional authenticated data (a
// sealed value moved onto another secret does not open).
//
// The data key is made at `swarm init` and kept beside the node's TLS key
// (certificates/swarm-secrets.key, mode 0600), never in etcd: whoever copies
// etcd's files gets ciphertext only. The same key seals the CA's private key
// in the cluster object (manager/ca/ca-key.ts). With one manager that is all there is;
// more managers will need the key handed to each over mutual TLS at join, and
// autolock would keep it wrapped under the unlock key.
const VERSION = 'v1';
const KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

export class SecretBox {
  private readonly key: Buffer;

  constructor(key: Buffer) {
    if (key.length !== KEY_BYTES) throw new Error(`secret data key must be ${KEY_BYTES} bytes, got ${key.length}`);
    this.key = Buffer.from(key);
  }

  static generateKey(): Buffer { return randomBytes(KEY_BYTES); }

  // "v1:" + base64(nonce | tag | ciphertext)
  seal(plaintext: Buffer, aad: string): string {
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, nonce);
    cipher.setAAD(Buffer.from(aad, 'utf8'));
    const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return `${VERSION}:${Buffer.concat([nonce, cipher.getAuthTag(), ct]).toString('base64')}`;
  }

  // Throws when the value was not sealed with this key for this `aad`.
  open(sealed: string, aad: string): Buffer {
    if (!sealed.startsWith(`${VERSION}:`)) throw new Error('sealed secret: unknown format');
    const raw = Buffer.from(sealed.slice(VERSION.length + 1), 'base64');
    if (raw.length < NONCE_BYTES + TAG_BYTES) throw new Error('sealed secret: truncated');
    const decipher = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, NONCE_BYTES));
    decipher.setAAD(Buffer.from(aad, 'utf8'));
    decipher.setAuthTag(raw.subarray(NONCE_BYTES, NONCE_BYTES + TAG_BYTES));
    try {
      return Buffer.concat([decipher.update(raw.subarray(NONCE_BYTES + TAG_BYTES)), decipher.final()]);
    } catch {
      throw new Error('sealed secret: authentication failed (wrong data key?)');
    }
  }
}

// Reads the key file; undefined when there is none. Never makes one: a key
// that went missing would silently orphan everything sealed with it, so the
// caller decides (swarm-node.ts refuses to start when anything is sealed).
export function loadDataKey(path: string): Buffer | undefined {
  if (!existsSync(path)) return undefined;
  const key = Buffer.from(readFileSync(path, 'utf8').trim(), 'base64');
  if (key.length !== KEY_BYTES) throw new Error(`${path}: not a ${KEY_BYTES}-byte base64 key`);
  return key;
}

export function writeDataKey(path: string, key: Buffer): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, key.toString('base64') + '\n', { mode: 0o600 });
  renameSync(tmp, path);
}
