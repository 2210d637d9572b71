// Plain IPv4 checks for what the network view carries (pure). The view comes
// from the leader, but a bad address must fail alone instead of breaking the
// whole nftables transaction, so every address is checked before it is used.

const QUAD = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

// "10.0.1.5" (or "10.0.1.5/24": the prefix is dropped) as a number; undefined if malformed.
export function ipv4ToInt(addr: string): number | undefined {
  const m = QUAD.exec(addr.split('/')[0] ?? '');
  if (!m) return undefined;
  const b = m.slice(1).map(Number);
  if (b.some((x) => x > 255)) return undefined;
  return ((b[0]! << 24) >>> 0) + (b[1]! << 16) + (b[2]! << 8) + b[3]!;
}

// The address without a prefix, or undefined if malformed.
export function plainIpv4(addr: string): string | undefined {
  return ipv4ToInt(addr) === undefined ? undefined : addr.split('/')[0];
}

export interface Subnet { cidr: string; base: number; prefix: number }

// "10.0.1.0/24" normalised to its network address; undefined if malformed.
export function parseSubnet(cidr: string): Subnet | undefined {
  const [addr, len, ...rest] = cidr.split('/');
  if (rest.length || len === undefined || !/^\d{1,2}$/.test(len)) return undefined;
  const prefix = Number(len);
  const n = ipv4ToInt(addr ?? '');
  if (n === undefined || prefix > 32) return undefined;
  const base = prefix === 0 ? 0 : (n & (~0 << (32 - prefix))) >>> 0;
  return { cidr: `${intToIpv4(base)}/${prefix}`, base, prefix };
}

export function intToIpv4(n: number): string {
  return [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');
}

export function inSubnet(addr: string, s: Subnet): boolean {
  const n = ipv4ToInt(addr);
  if (n === undefined) return false;
  return s.prefix === 0 || ((n & (~0 << (32 - s.prefix))) >>> 0) === s.base;
}

export const byAddress = (a: string, b: string): number => (ipv4ToInt(a) ?? 0) - (ipv4ToInt(b) ?? 0);
