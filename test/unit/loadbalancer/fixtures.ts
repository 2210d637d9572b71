// A network view for the load balancer's tests: node A (this node) and node B,
// an overlay `app` with a VIP service `web` (three running tasks, one stopped),
// the ingress network with `web` published on 8080 -> 80 (tcp) and 5353 -> 53 (udp).
import type { NodeNetworkView, ViewEndpoint, ViewService } from '../../../src/protocol/network-view';

export const NODE_A = 'nodeaaaaaaaaaaaaaaaaaaaaa1';
export const NODE_B = 'nodebbbbbbbbbbbbbbbbbbbbb2';
export const APP = 'netapp00000000000000000001';
export const INGRESS = 'netingress0000000000000001';
export const WEB = 'svcweb00000000000000000001';

export function endpoint(n: number, net: string, node: string, running = true): ViewEndpoint {
  const third = net === APP ? 1 : 0;
  return {
    TaskID: `task${net.slice(3, 6)}${String(n).padStart(19, '0')}`, TaskName: `web.${n}.x`, ServiceID: WEB,
    NodeID: node, NodeAddr: node === NODE_A ? '10.199.9.2' : '10.199.9.3', NetworkID: net,
    Addr: `10.0.${third}.${10 + n}`, Running: running,
  };
}

export function webService(extra: Partial<ViewService> = {}): ViewService {
  return {
    ID: WEB, Name: 'web', EndpointMode: 'vip',
    VIPs: [{ NetworkID: APP, Addr: '10.0.1.2/24' }, { NetworkID: INGRESS, Addr: '10.0.0.2/24' }],
    Ports: [
      { Protocol: 'tcp', TargetPort: 80, PublishedPort: 8080, PublishMode: 'ingress' },
      { Protocol: 'udp', TargetPort: 53, PublishedPort: 5353, PublishMode: 'ingress' },
    ],
    Aliases: [], KeepClientIP: false, ...extra,
  };
}

export function view(over: Partial<NodeNetworkView> = {}): NodeNetworkView {
  return {
    Networks: [
      { ID: APP, Name: 'app', Subnet: '10.0.1.0/24', Gateway: '10.0.1.1', VNI: 4097, Internal: false, Attachable: false, Ingress: false, Encrypted: false, Labels: {}, LBAddr: '10.0.1.3' },
      { ID: INGRESS, Name: 'ingress', Subnet: '10.0.0.0/24', Gateway: '10.0.0.1', VNI: 4096, Internal: false, Attachable: false, Ingress: true, Encrypted: false, Labels: {}, LBAddr: '10.0.0.3' },
    ],
    Services: [webService()],
    Endpoints: [
      endpoint(1, APP, NODE_A), endpoint(2, APP, NODE_B), endpoint(3, APP, NODE_B), endpoint(4, APP, NODE_B, false),
      endpoint(1, INGRESS, NODE_A), endpoint(2, INGRESS, NODE_B), endpoint(3, INGRESS, NODE_B), endpoint(4, INGRESS, NODE_B, false),
    ],
    LoadBalancers: [
      { NetworkID: APP, NodeID: NODE_A, NodeAddr: '10.199.9.2', Addr: '10.0.1.3' },
      { NetworkID: APP, NodeID: NODE_B, NodeAddr: '10.199.9.3', Addr: '10.0.1.4' },
      { NetworkID: INGRESS, NodeID: NODE_A, NodeAddr: '10.199.9.2', Addr: '10.0.0.3' },
      { NetworkID: INGRESS, NodeID: NODE_B, NodeAddr: '10.199.9.3', Addr: '10.0.0.4' },
    ],
    ...over,
  };
}
