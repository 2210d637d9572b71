import type { NodeNetworkView, ViewEndpoint, ViewService } from '../../../../../src/protocol/network-view';

// A node's view with two networks and the ingress network:
//   front 10.0.1.0/24: web (vip 10.0.1.2; tasks .11 .12 running, .13 not), api (vip 10.0.1.3, alias backend)
//   back  10.0.2.0/24: db (dnsrr, alias database; tasks .21 .22), api (vip 10.0.2.3)
//   api's task is on both; web's first task also on ingress (10.255.0.11).
export const FRONT = 'net-front';
export const BACK = 'net-back';
export const INGRESS = 'net-ingress';

export const ep = (TaskID: string, TaskName: string, ServiceID: string, NetworkID: string, Addr: string, Running = true): ViewEndpoint =>
  ({ TaskID, TaskName, ServiceID, NodeID: 'n1', NodeAddr: '192.168.0.1', NetworkID, Addr, Running });

const svc = (ID: string, Name: string, EndpointMode: 'vip' | 'dnsrr', VIPs: ViewService['VIPs'], Aliases: ViewService['Aliases'] = []): ViewService =>
  ({ ID, Name, EndpointMode, VIPs, Ports: [], Aliases, KeepClientIP: false });

const network = (ID: string, Name: string, Subnet: string, Ingress = false) =>
  ({ ID, Name, Subnet, Gateway: Subnet.replace(/0\/\d+$/, '1'), VNI: 4097, Internal: false, Attachable: false, Ingress, Encrypted: false, Labels: {} });

export function sampleView(): NodeNetworkView {
  return {
    Networks: [network(FRONT, 'front', '10.0.1.0/24'), network(BACK, 'back', '10.0.2.0/24'), network(INGRESS, 'ingress', '10.255.0.0/16', true)],
    Services: [
      svc('s-web', 'web', 'vip', [{ NetworkID: FRONT, Addr: '10.0.1.2' }, { NetworkID: INGRESS, Addr: '10.255.0.2' }]),
      svc('s-db', 'db', 'dnsrr', [], [{ NetworkID: BACK, Aliases: ['database'] }]),
      svc('s-api', 'api', 'vip', [{ NetworkID: FRONT, Addr: '10.0.1.3' }, { NetworkID: BACK, Addr: '10.0.2.3' }], [{ NetworkID: FRONT, Aliases: ['backend'] }]),
    ],
    Endpoints: [
      ep('t1', 'web.1.t1', 's-web', FRONT, '10.0.1.11'),
      ep('t1', 'web.1.t1', 's-web', INGRESS, '10.255.0.11'),
      ep('t2', 'web.2.t2', 's-web', FRONT, '10.0.1.12'),
      ep('t3', 'web.3.t3', 's-web', FRONT, '10.0.1.13', false),
      ep('d1', 'db.1.d1', 's-db', BACK, '10.0.2.21'),
      ep('d2', 'db.2.d2', 's-db', BACK, '10.0.2.22'),
      ep('a1', 'api.1.a1', 's-api', FRONT, '10.0.1.31'),
      ep('a1', 'api.1.a1', 's-api', BACK, '10.0.2.31'),
    ],
    LoadBalancers: [],
  };
}
