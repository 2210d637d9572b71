// A task that reaches its own service (through the VIP or a published port)
// may be balanced to itself. With bridge-nf-call-iptables=1 the kernel does
// not route a packet DNATed to an address on the bridge it came from: it
// bridges it, out of the port the backend hangs on, which is the port it came
// in by, and a bridge never sends a frame back out of its ingress port unless
// the port has hairpin mode (dockerd sets it only with --userland-proxy=false).
// So every container port (veth) of a bridge carrying an LB address of a
// network with balanced traffic gets hairpin on. The VXLAN port is left alone.
import type { Exec } from './forward-accept';
import { interfacesWith } from './localnet';

const TIMEOUT_MS = 5_000;

interface Port { ifname?: unknown; linkinfo?: { info_kind?: unknown; info_slave_data?: { hairpin?: unknown } } }

// Veth ports without hairpin, from `ip -j -d link show master BR` (pure).
export function portsWithoutHairpin(ipJson: string): string[] {
  let ports: unknown;
  try { ports = JSON.parse(ipJson); } catch { return []; }
  if (!Array.isArray(ports)) return [];
  return (ports as Port[])
    .filter((p) => typeof p?.ifname === 'string' && p.linkinfo?.info_kind === 'veth' && p.linkinfo.info_slave_data?.hairpin === false)
    .map((p) => p.ifname as string)
    .sort();
}

// Turns hairpin on where it is off; the errors, one line each.
export async function enableHairpin(exec: Exec, lbAddrs: string[]): Promise<string[]> {
  const errors: string[] = [];
  if (!lbAddrs.length) return errors;
  const list = await exec('ip', ['-j', '-4', 'addr', 'show'], { timeoutMs: TIMEOUT_MS });
  if (list.code !== 0) return [`ip addr show: ${list.stderr.trim() || `exit ${list.code}`}`];
  for (const bridge of interfacesWith(list.stdout, lbAddrs)) {
    const ports = await exec('ip', ['-j', '-d', 'link', 'show', 'master', bridge], { timeoutMs: TIMEOUT_MS });
    if (ports.code !== 0) { errors.push(`ip link show master ${bridge}: ${ports.stderr.trim() || `exit ${ports.code}`}`); continue; }
    for (const port of portsWithoutHairpin(ports.stdout)) {
      const r = await exec('ip', ['link', 'set', 'dev', port, 'type', 'bridge_slave', 'hairpin', 'on'], { timeoutMs: TIMEOUT_MS });
      // A container that stopped meanwhile takes its port with it: not an error worth a line.
      if (r.code !== 0 && !/cannot find device/i.test(r.stderr)) errors.push(`hairpin on ${port}: ${r.stderr.trim() || `exit ${r.code}`}`);
    }
  }
  return errors;
}
