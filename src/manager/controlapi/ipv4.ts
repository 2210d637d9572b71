import { isIPv4 } from 'node:net';

// IPv4 addresses and CIDR blocks as numbers, for the checks a network spec
// needs (contains, overlaps). Go's net.ParseCIDR accepts host bits ("10.0.0.1/24"):
// so does this, and `base` is the block's first address.

export interface Ipv4Block { base: number; bits: number; size: number }

export function parseIpv4(s: string): number | undefined {
  if (!isIPv4(s)) return undefined;
  return s.split('.').reduce((n, part) => n * 256 + Number(part), 0);
}

export function parseIpv4Cidr(s: string): Ipv4Block | undefined {
  const slash = s.indexOf('/');
  if (slash < 0) return undefined;
  const addr = parseIpv4(s.slice(0, slash));
  const bitsText = s.slice(slash + 1);
  if (addr === undefined || !/^\d{1,2}$/.test(bitsText)) return undefined;
  const bits = Number(bitsText);
  if (bits > 32) return undefined;
  const size = 2 ** (32 - bits);
  return { base: addr - (addr % size), bits, size };
}

export const formatIpv4 = (n: number): string => [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');

export const blockContains = (b: Ipv4Block, addr: number): boolean => addr >= b.base && addr < b.base + b.size;

export const blocksOverlap = (a: Ipv4Block, b: Ipv4Block): boolean => a.base < b.base + b.size && b.base < a.base + a.size;
