// A manager's keys at rest under autolock: each key file wrapped with a key
// derived from the swarm's unlock key (AES-256-GCM, a fresh nonce per write,
// the file's name as additional data so two wrapped files cannot be swapped).
//
// A wrapped file is one text line:
//   shoal-locked-key:v1:<check>:<nonce|tag|ciphertext>   (both base64)
// `check` is 8 bytes derived from the unlock key apart from the wrapping key:
// a different unlock key is told apart from a damaged file (both fail
// GCM's tag) without revealing anything about the key itself.
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';

const MAGIC = 'shoal-locked-key:v1:';
const NONCE = 12;
const TAG = 16;
const CHECK = 8;

export type KeyLockProblem = 'locked' | 'wrong-key' | 'damaged' | 'truncated';

// Why a key file could not be read: `locked` (wrapped, no key given),
// `wrong-key`, `damaged`, `truncated`; the message names the file.
export class KeyLockError extends Error {
  constructor(readonly problem: KeyLockProblem, message: string) {
    super(message);
    this.name = 'KeyLockError';
  }
}

export const isKeyLockError = (e: unknown, problem?: KeyLockProblem): e is KeyLockError =>
  e instanceof KeyLockError && (problem === undefined || e.problem === problem);

const derive = (unlockKey: Buffer, info: string, len: number): Buffer =>
  Buffer.from(hkdfSync('sha256', unlockKey, Buffer.alloc(0), `shoal key-at-rest v1 ${info}`, len));

export function isWrapped(text: string): boolean { return text.startsWith(MAGIC); }

export function wrapKey(clear: Buffer, unlockKey: Buffer, name: string): string {
  const nonce = randomBytes(NONCE);
  const cipher = createCipheriv('aes-256-gcm', derive(unlockKey, 'wrap', 32), nonce);
  cipher.setAAD(Buffer.from(name, 'utf8'));
  const ct = Buffer.concat([cipher.update(clear), cipher.final()]);
  const payload = Buffer.concat([nonce, cipher.getAuthTag(), ct]);
  return `${MAGIC}${derive(unlockKey, 'check', CHECK).toString('base64')}:${payload.toString('base64')}\n`;
}

// The clear content of a key file's text: as is when not wrapped, opened with
// `unlockKey` when wrapped. `name` is the file's base name (the additional data).
export function unwrapKey(text: string, unlockKey: Buffer | undefined, name: string): Buffer {
  if (!isWrapped(text)) return Buffer.from(text, 'utf8');
  if (!unlockKey) throw new KeyLockError('locked', `${name} is locked: the swarm's unlock key is needed to read it`);
  const rest = text.slice(MAGIC.length).trim();
  const colon = rest.indexOf(':');
  const b64 = /^[A-Za-z0-9+/]*={0,2}$/;
  if (colon < 0) throw new KeyLockError('truncated', `${name}: the locked key file is truncated`);
  const checkText = rest.slice(0, colon);
  const payloadText = rest.slice(colon + 1);
  if (!b64.test(checkText) || !b64.test(payloadText)) throw new KeyLockError('damaged', `${name}: the locked key file is damaged (not base64)`);
  const check = Buffer.from(checkText, 'base64');
  const payload = Buffer.from(payloadText, 'base64');
  if (check.length !== CHECK || payload.length <= NONCE + TAG) throw new KeyLockError('truncated', `${name}: the locked key file is truncated`);
  if (!timingSafeEqual(check, derive(unlockKey, 'check', CHECK))) throw new KeyLockError('wrong-key', `${name} is locked with another unlock key`);
  const decipher = createDecipheriv('aes-256-gcm', derive(unlockKey, 'wrap', 32), payload.subarray(0, NONCE));
  decipher.setAAD(Buffer.from(name, 'utf8'));
  decipher.setAuthTag(payload.subarray(NONCE, NONCE + TAG));
  try {
    return Buffer.concat([decipher.update(payload.subarray(NONCE + TAG)), decipher.final()]);
  } catch {
    throw new KeyLockError('damaged', `${name}: the locked key file is damaged or truncated (its authentication fails with the right unlock key)`);
  }
}

// A key file's clear content (wrapped or not); undefined when there is none.
export function readKeyFile(path: string, unlockKey: Buffer | undefined): Buffer | undefined {
  if (!existsSync(path)) return undefined;
  return unwrapKey(readFileSync(path, 'utf8'), unlockKey, basename(path));
}

export function keyFileIsWrapped(path: string): boolean {
  return existsSync(path) && isWrapped(readFileSync(path, 'utf8'));
}

// The temporary file of a key file's next content (wrapped when `unlockKey`),
// written and synced, mode 0600; the caller renames it (see `commitKeyFiles`).
export function stageKeyFile(path: string, clear: Buffer, unlockKey: Buffer | undefined): string {
  const data = unlockKey ? Buffer.from(wrapKey(clear, unlockKey, basename(path)), 'utf8') : clear;
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  return writeTmpFile(path, data, 0o600);
}

// `path`.tmp written and synced with `mode`, for a rename over `path` (node/identity.ts too).
export function writeTmpFile(path: string, data: string | Buffer, mode: number): string {
  const tmp = `${path}.tmp`;
  rmSync(tmp, { force: true }); // a leftover keeps its mode: start afresh
  const fd = openSync(tmp, 'wx', mode);
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return tmp;
}

// Several key files replaced together: all staged first, then renamed, so a
// failure while staging changes nothing.
export function writeKeyFiles(files: Array<{ path: string; clear: Buffer }>, unlockKey: Buffer | undefined): void {
  const staged = files.map((f) => ({ path: f.path, tmp: stageKeyFile(f.path, f.clear, unlockKey) }));
  for (const s of staged) renameSync(s.tmp, s.path);
  for (const d of new Set(staged.map((s) => dirname(s.path)))) {
    const fd = openSync(d, 'r');
    try { fsyncSync(fd); } finally { closeSync(fd); }
  }
}
