import { randomBytes } from 'node:crypto';

// 25 lowercase base-36 characters from 128 random bits, as SwarmKit's identity.NewID.
export function newId(): string {
  const n = BigInt('0x' + randomBytes(16).toString('hex'));
  return n.toString(36).padStart(25, '0');
}

export function base36Padded(bytes: Buffer, width: number): string {
  return BigInt('0x' + bytes.toString('hex')).toString(36).padStart(width, '0');
}
