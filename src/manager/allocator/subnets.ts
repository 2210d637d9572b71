import { type Cidr, last, overlaps, parseCidr, size } from './ipv4';

// Docker's texts (libnetwork ipam) for a pool that cannot be had.
export const NO_DEFAULT_POOL = 'could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network';
export const POOL_OVERLAPS = 'invalid pool request: Pool overlaps with other one on this address space';

// The first /bits subnet of the default pools that overlaps none of `taken`
// (each pool walked in order, jumping past whatever is in the way).
export function nextSubnet(pools: string[], bits: number, taken: Iterable<Cidr>): Cidr | undefined {
  const used = [...taken].sort((a, b) => a.base - b.base);
  for (const p of pools) {
    const pool = parseCidr(p, true);
    if (!pool || bits < pool.bits || bits > 32) continue;
    const step = size({ base: 0, bits });
    let cand: Cidr = { base: pool.base, bits };
    while (last(cand) <= last(pool)) {
      const hit = used.find((u) => overlaps(u, cand));
      if (!hit) return cand;
      // Next aligned candidate after the subnet in the way.
      const after = last(hit) + 1;
      cand = { base: Math.ceil(after / step) * step, bits };
    }
  }
  return undefined;
}
