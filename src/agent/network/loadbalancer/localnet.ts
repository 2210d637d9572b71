// The routing mesh on 127.0.0.1: a locally made connection to 127.0.0.1:P is
// DNATed in the output chain to a task's address, and the kernel then refuses
// to route a packet with a loopback source out of the bridge unless that
// interface has route_localnet=1 (the source NAT to the LB address comes only
// later, in postrouting). So the interface that carries the ingress network's
// LB address gets it; the table's input chain drops what route_localnet would
// otherwise let in (new packets for 127.0.0.0/8 from outside the node).
import type { Exec } from './forward-accept';

const TIMEOUT_MS = 5_000;

// Names of the interfaces that carry any of `addrs`, from `ip -j -4 addr show` (pure).
export function interfacesWith(ipJson: string, addrs: string[]): string[] {
  let links: unknown;
  try { links = JSON.parse(ipJson); } catch { return []; }
  if (!Array.isArray(links)) return [];
  const out = new Set<string>();
  for (const l of links as Array<{ ifname?: unknown; addr_info?: Array<{ local?: unknown }> }>) {
    if (typeof l?.ifname !== 'string' || !Array.isArray(l.addr_info)) continue;
    if (l.addr_info.some((a) => typeof a?.local === 'string' && addrs.includes(a.local))) out.add(l.ifname);
  }
  return [...out].sort();
}

// Slashes in the key: an interface name may contain dots.
const key = (ifname: string): string => `net/ipv4/conf/${ifname}/route_localnet`;

// Sets route_localnet=1 where it is not yet; returns the interfaces changed and the errors.
export async function enableRouteLocalnet(exec: Exec, addrs: string[]): Promise<{ changed: string[]; errors: string[] }> {
  const changed: string[] = [];
  const errors: string[] = [];
  if (!addrs.length) return { changed, errors };
  const list = await exec('ip', ['-j', '-4', 'addr', 'show'], { timeoutMs: TIMEOUT_MS });
  if (list.code !== 0) return { changed, errors: [`ip addr show: ${list.stderr.trim() || `exit ${list.code}`}`] };
  for (const ifname of interfacesWith(list.stdout, addrs)) {
    const now = await exec('sysctl', ['-n', key(ifname)], { timeoutMs: TIMEOUT_MS });
    if (now.code === 0 && now.stdout.trim() === '1') continue;
    const r = await exec('sysctl', ['-qw', `${key(ifname)}=1`], { timeoutMs: TIMEOUT_MS });
    if (r.code === 0) changed.push(ifname);
    else errors.push(`sysctl ${key(ifname)}=1: ${r.stderr.trim() || `exit ${r.code}`}`);
  }
  return { changed, errors };
}

// Puts route_localnet back to 0 (an interface gone in the meantime is fine).
export async function disableRouteLocalnet(exec: Exec, ifnames: string[]): Promise<void> {
  for (const ifname of ifnames) await exec('sysctl', ['-qw', `${key(ifname)}=0`], { timeoutMs: TIMEOUT_MS });
}
