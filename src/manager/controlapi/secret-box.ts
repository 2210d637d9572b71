import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readKeyFile, writeKeyFiles } from '../../node/key-lock';

// Secret values at rest: AES-256-GCM under the swarm's data key, one random
// 96-bit nonce per value, the secret's ID as additional authenticated data (a
// sealed value moved onto another secret does not open).
//
// The data key is made at `swarm init` and kept beside the node's TLS key
// (certificates/swarm-secrets.key, mode 0600), never in etcd: whoever copies
// etcd's files gets ciphertext only. The same key seals the CA's private key
// in the cluster object (manager/ca/ca-key.ts). A joining manager gets it over
// mutual TLS (membership.JoinManager); under autolock the file is wrapped with
// the unlock key (node/key-lock.ts).
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
// A file wrapped under autolock needs `unlockKey` (key-lock.ts errors otherwise).
export function loadDataKey(path: string, unlockKey?: Buffer): Buffer | undefined {
  const text = readKeyFile(path, unlockKey);
  if (text === undefined) return undefined;
  const key = Buffer.from(text.toString('utf8').trim(), 'base64');
  if (key.length !== KEY_BYTES) throw new Error(`${path}: not a ${KEY_BYTES}-byte base64 key`);
  return key;
}

// The file's content: the key in base64 and a newline (then wrapped or not).
export function dataKeyFile(key: Buffer): Buffer { return Buffer.from(key.toString('base64') + '\n', 'utf8'); }

export function writeDataKey(path: string, key: Buffer, unlockKey?: Buffer): void {
  writeKeyFiles([{ path, clear: dataKeyFile(key) }], unlockKey);
}
