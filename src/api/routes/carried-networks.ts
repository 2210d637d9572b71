import { lbEndpointOf, type NetworkResource } from '../../manager/controlapi/network-resource';
import { OVERLAY } from '../../manager/controlapi/validate-network';
import type { CarriedNetwork } from '../../protocol/network-view';

// A worker has no store: the swarm networks it knows are those its network
// view carries (a task, an attachment or the routing mesh on it), and
// `network ls` / `network inspect` on it show them as Docker's worker shows
// its local copy of a swarm network: scope swarm, the overlay's subnet and
// VNI, the containers on it here, the node's load-balancer endpoint, Peers.

const GO_ZERO_TIME = '0001-01-01T00:00:00Z';

// `created`: when the engine network that carries it here was made (Docker's
// local network's own time); `containers`: null in a list, as Docker's.
export function carriedNetworkResource(c: CarriedNetwork, nodeId: string, created: string | undefined, containers: Record<string, unknown> | null): NetworkResource {
  const v = c.network;
  const lb = v.LBAddr && containers ? lbEndpointOf(v.ID, v.Name, v.Ingress, nodeId, v.LBAddr) : undefined;
  return {
    Name: v.Name,
    Id: v.ID,
    Created: created || GO_ZERO_TIME,
    Scope: 'swarm',
    Driver: OVERLAY,
    EnableIPv6: false,
    IPAM: { Driver: 'default', Options: null, Config: [{ Subnet: v.Subnet, Gateway: v.Gateway }] },
    Internal: v.Internal,
    Attachable: v.Attachable,
    Ingress: v.Ingress,
    ConfigFrom: { Network: '' },
    ConfigOnly: false,
    Containers: containers ? { ...containers, ...(lb ? { [lb[0]]: lb[1] } : {}) } : null,
    Options: { 'com.docker.network.driver.overlay.vxlanid_list': String(v.VNI), ...(v.Encrypted ? { encrypted: '' } : {}) },
    Labels: { ...v.Labels },
    ...(containers ? { Peers: c.peers.map((p) => ({ Name: p.NodeID, IP: p.IP })).sort((a, b) => a.Name.localeCompare(b.Name)) } : {}),
  };
}

// moby's network lookup over the carried networks: full ID, exact name, unique ID prefix.
export function findCarried(carried: CarriedNetwork[], term: string): CarriedNetwork | undefined {
  const byId = carried.find((c) => c.network.ID === term);
  if (byId) return byId;
  const byName = carried.filter((c) => c.network.Name === term);
  if (byName.length === 1) return byName[0];
  const byPrefix = carried.filter((c) => c.network.ID.startsWith(term));
  return byPrefix.length === 1 ? byPrefix[0] : undefined;
}
