// IPv4 addresses as unsigned 32-bit numbers, and CIDR prefixes: the
// arithmetic the allocator's pools and subnets need (pure).

export interface Cidr { base: number; bits: number } // base: first address (host bits zero)

export function parseIp(s: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const b = Number(m[i]);
    if (b > 255) return undefined;
    n = n * 256 + b;
  }
  return n;
}

export function formatIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export const size = (c: Cidr): number => 2 ** (32 - c.bits);
export const last = (c: Cidr): number => c.base + size(c) - 1;
export const formatCidr = (c: Cidr): string => `${formatIp(c.base)}/${c.bits}`;

// "10.0.1.0/24" (host bits must be zero unless `loose`, which clears them).
export function parseCidr(s: string, loose = false): Cidr | undefined {
  const [ip, b, extra] = s.split('/');
  if (extra !== undefined || ip === undefined || b === undefined || !/^\d{1,2}$/.test(b)) return undefined;
  const bits = Number(b);
  const addr = parseIp(ip);
  if (addr === undefined || bits > 32) return undefined;
  const base = addr - (addr % 2 ** (32 - bits));
  if (base !== addr && !loose) return undefined;
  return { base, bits };
}

// An address with its network's prefix length, as Docker writes attachments ("10.0.1.5/24").
export const withPrefix = (addr: number, c: Cidr): string => `${formatIp(addr)}/${c.bits}`;
// The address part of "10.0.1.5/24" (or of a plain address).
export const addrOf = (s: string): string => s.split('/')[0] ?? s;

export const overlaps = (a: Cidr, b: Cidr): boolean => a.base <= last(b) && b.base <= last(a);
