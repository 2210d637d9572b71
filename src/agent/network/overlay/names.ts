import { VXLAN_ID_OPTION, type Network } from '../../../model/types';
import type { ViewNetwork } from '../../../protocol/network-view';

// Kernel names of a swarm network's devices on a node. Interface names hold
// at most 15 characters; the network ID's first 12 (as engineNetworkName)
// follow a prefix that marks the device as Shoal's, so that a network gone
// from the view is found again from the kernel alone.
export const BRIDGE_PREFIX = 'sb-';
export const VXLAN_PREFIX = 'sv-';
export const VXLAN_PORT = 4789;
// VXLAN over IPv4 adds 50 bytes (outer IP 20 + UDP 8 + VXLAN 8 + inner Ethernet 14).
export const VXLAN_OVERHEAD = 50;

export const networkKey = (networkId: string): string => networkId.slice(0, 12);
export const bridgeName = (networkId: string): string => `${BRIDGE_PREFIX}${networkKey(networkId)}`;
export const vxlanName = (networkId: string): string => `${VXLAN_PREFIX}${networkKey(networkId)}`;

// The key of a Shoal device's network, or undefined for any other device.
export function keyOfDevice(ifname: string): string | undefined {
  for (const p of [BRIDGE_PREFIX, VXLAN_PREFIX]) if (ifname.startsWith(p) && ifname.length > p.length) return ifname.slice(p.length);
  return undefined;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
export const isIPv4 = (s: unknown): s is string => typeof s === 'string' && IPV4.test(s);

// "10.0.1.5/24" or "10.0.1.5" → "10.0.1.5"; undefined when it is not IPv4.
export function plainAddr(s: unknown): string | undefined {
  if (typeof s !== 'string') return undefined;
  const a = s.split('/')[0]!;
  return isIPv4(a) ? a : undefined;
}

export function parseCidr(s: unknown): { addr: string; prefix: number } | undefined {
  if (typeof s !== 'string') return undefined;
  const [a, p] = s.split('/');
  const prefix = Number(p);
  if (!isIPv4(a) || p === undefined || !/^\d+$/.test(p) || prefix < 1 || prefix > 32) return undefined;
  return { addr: a, prefix };
}

export const MAX_VNI = 0xffffff;

// A swarm network as a task's attachment carries it, in the view's shape: so
// that the network can be made before the view that names it arrives.
// The attachment comes from the managers unchecked beyond its shape: looked at here.
export function viewNetworkFromAttachment(n: Network | undefined): ViewNetwork | Error {
  if (!n || typeof n.ID !== 'string' || !/^[a-z0-9]{12,64}$/.test(n.ID)) return new Error('network attachment without a valid network ID');
  const spec = n.Spec ?? {};
  const name = typeof spec.Name === 'string' && spec.Name ? spec.Name : n.ID;
  const cfg = n.IPAM?.Configs?.[0];
  const vni = Number(String(n.DriverState?.Options?.[VXLAN_ID_OPTION] ?? '').split(',')[0]);
  if (!parseCidr(cfg?.Subnet) || !isIPv4(cfg?.Gateway)) return new Error(`network ${name} has no allocated subnet and gateway`);
  if (!Number.isInteger(vni) || vni < 1 || vni > MAX_VNI) return new Error(`network ${name} has no VXLAN ID`);
  return {
    ID: n.ID,
    Name: name,
    Subnet: cfg!.Subnet!,
    Gateway: cfg!.Gateway!,
    VNI: vni,
    Internal: spec.Internal === true,
    Attachable: spec.Attachable === true,
    Ingress: spec.Ingress === true,
    Encrypted: spec.DriverConfiguration?.Options?.['encrypted'] !== undefined,
    Labels: { ...(spec.Labels ?? {}) },
  };
}
