import type { IPAMConfig, Network, NetworkSpec } from '../../model/types';
import { conflict, forbidden, invalid } from '../../common/errors';
import { blockContains, blocksOverlap, parseIpv4, parseIpv4Cidr, type Ipv4Block } from './ipv4';
import { isValidObjectName } from './names';

// SwarmKit's validateNetworkSpec (controlapi/network.go) with its messages,
// plus what Shoal's data path needs and Docker does not check at create time:
// one IPv4 subnet per network, no subnet overlapping another swarm network's
// (Docker accepts it and the allocator fails later), only the overlay driver
// options Shoal's overlay implements.

const bad = (msg: string) => invalid(`rpc error: code = InvalidArgument desc = ${msg}`);

export const PREDEFINED_LABEL = 'com.docker.swarm.predefined';
// A network named ingress with this label is an ingress network too (Docker before 17.05).
export const LEGACY_INGRESS_LABEL = 'com.docker.swarm.internal';

export const OVERLAY = 'overlay';
export const ENCRYPTED_OPTION = 'encrypted';
export const MTU_OPTION = 'com.docker.network.driver.mtu';
const OVERLAY_OPTIONS = new Set([ENCRYPTED_OPTION, MTU_OPTION]);

export function isIngressNetwork(n: Pick<Network, 'Spec'>): boolean {
  if (n.Spec.Ingress) return true;
  return n.Spec.Name === 'ingress' && Object.prototype.hasOwnProperty.call(n.Spec.Labels ?? {}, LEGACY_INGRESS_LABEL);
}

// Every IPv4 block a stored network holds or asked for.
export function networkBlocks(n: Network): Array<{ subnet: string; block: Ipv4Block }> {
  const out: Array<{ subnet: string; block: Ipv4Block }> = [];
  for (const c of [...(n.Spec.IPAMOptions?.Configs ?? []), ...(n.IPAM?.Configs ?? [])]) {
    const block = c.Subnet ? parseIpv4Cidr(c.Subnet) : undefined;
    if (block) out.push({ subnet: c.Subnet!, block });
  }
  return out;
}

export function validateNetworkSpec(spec: NetworkSpec | undefined, existing: readonly Network[]): asserts spec is NetworkSpec {
  if (!spec || typeof spec !== 'object') throw bad('invalid argument');
  const driver = spec.DriverConfiguration;
  if (spec.Ingress && driver?.Name && driver.Name !== OVERLAY) {
    throw invalid('rpc error: code = Unimplemented desc = only overlay driver is currently supported for ingress network');
  }
  if (spec.Attachable && spec.Ingress) throw bad('ingress network cannot be attachable');
  if (!spec.Name) throw bad('meta: name must be provided');
  if (!isValidObjectName(spec.Name)) throw bad(spec.Name.length > 63 ? 'name must be 63 characters or fewer' : 'name must be valid as a DNS name component');
  if (Object.prototype.hasOwnProperty.call(spec.Labels ?? {}, PREDEFINED_LABEL)) {
    throw forbidden(`rpc error: code = PermissionDenied desc = label ${PREDEFINED_LABEL} is for internally created predefined networks and cannot be applied by users`);
  }
  if (driver) {
    if (!driver.Name) throw bad('driver name: if driver is specified name is required');
    if (driver.Name !== OVERLAY) throw bad(`plugin ${driver.Name} not supported`);
    for (const [k, v] of Object.entries(driver.Options ?? {})) {
      if (!OVERLAY_OPTIONS.has(k)) throw bad(`overlay driver option ${k} is not supported (supported: ${[...OVERLAY_OPTIONS].join(', ')})`);
      if (k === MTU_OPTION && !(/^\d+$/.test(v) && Number(v) >= 68 && Number(v) <= 65535)) throw bad(`invalid MTU ${JSON.stringify(v)}: a number from 68 to 65535`);
    }
  }
  if (spec.IPv6Enabled) throw bad('IPv6 is not supported on swarm networks');
  if (spec.ConfigFrom?.Network) throw bad('networks made from a configuration network (--config-from) are not supported');
  const ipam = spec.IPAMOptions;
  if (ipam) {
    if (ipam.Driver) {
      if (!ipam.Driver.Name) throw bad('driver name: if driver is specified name is required');
      if (ipam.Driver.Name.toLowerCase() !== 'default') throw bad(`plugin ${ipam.Driver.Name} not supported`);
    }
    const configs = ipam.Configs ?? [];
    for (const c of configs) validateIpamConfig(c);
    if (configs.length > 1) throw bad('ipam configuration: one subnet per swarm network');
    for (const c of configs) refuseOverlap(c, existing);
  }
  if (spec.Ingress) {
    const present = existing.find(isIngressNetwork);
    if (present) throw conflict(`rpc error: code = AlreadyExists desc = ingress network (${present.ID}) is already present`);
  }
}

function validateIpamConfig(c: IPAMConfig | undefined): void {
  if (!c) throw bad('ipam configuration: cannot be empty');
  const subnet = parseIpv4Cidr(c.Subnet ?? '');
  if (!subnet) throw bad(`ipam configuration: invalid subnet ${c.Subnet ?? ''}`);
  if (c.Range) {
    const range = parseIpv4Cidr(c.Range);
    if (!range) throw bad(`ipam configuration: invalid range ${c.Range}`);
    const first = parseIpv4(c.Range.slice(0, c.Range.indexOf('/')))!;
    if (!blockContains(subnet, first)) throw bad(`ipam configuration: subnet ${c.Subnet} does not contain range ${c.Range}`);
  }
  if (c.Gateway) {
    const gw = parseIpv4(c.Gateway);
    if (gw === undefined) throw bad(`ipam configuration: invalid gateway ${c.Gateway}`);
    if (!blockContains(subnet, gw)) throw bad(`ipam configuration: subnet ${c.Subnet} does not contain gateway ${c.Gateway}`);
  }
  // Too small to hold a gateway, a task and a load-balancer address.
  if (subnet.bits > 29) throw bad(`ipam configuration: subnet ${c.Subnet} is too small (at most /29)`);
}

// Every node carries every swarm network's subnet on a bridge in one
// namespace: two overlapping subnets would route into each other. The text is
// libnetwork's for an overlapping pool.
function refuseOverlap(c: IPAMConfig, existing: readonly Network[]): void {
  const mine = parseIpv4Cidr(c.Subnet!)!;
  for (const n of existing) {
    const hit = networkBlocks(n).find((b) => blocksOverlap(mine, b.block));
    if (hit) throw forbidden(`Pool overlaps with other one on this address space: ${c.Subnet} overlaps ${hit.subnet} of network ${n.Spec.Name ?? n.ID}`);
  }
}
