// Network attachments: a container that `docker run --network NAME` (or
// `docker network connect`) puts on an attachable swarm network gets its
// address from the leader, as a task does (SwarmKit's "network attachment
// task": a task with NetworkAttachmentSpec, no service, its node set). The
// node's daemon asks for one with its own certificate (the node is always the
// caller's), and gives it back when the container no longer uses it.
//
//   AttachNetwork  unary: an address on network Target (name, ID or ID
//                  prefix) for a container on the calling node; answers once
//                  the allocator has given it (or why it could not).
//   DetachNetwork  unary: the attachment is over (its address is released).
//   NameAttachment unary: the container made on the attachment's address is
//                  known now: its name (the engine's, when the user gave none)
//                  and its short ID answer in DNS from then on.
import type { Network } from '../model/types';
import { invalid } from '../common/errors';
import { arr, id, optStr, rec, str } from './checks';
import type { UnaryMethod } from '../rpc/transport';

export interface AttachNetworkRequest {
  Target: string;
  Aliases: string[];
  Address?: string;        // a requested IPv4 address (`--ip`), plain
  Container?: string;      // the container's name or ID, for the record
}
export interface AttachNetworkResponse {
  AttachmentID: string;
  Network: Network;        // the allocated network, as a task's attachment carries it
  Address: string;         // CIDR ("10.0.1.7/24")
}
export interface DetachNetworkRequest { AttachmentID: string }
export interface NameAttachmentRequest { AttachmentID: string; Container: string; Aliases: string[] }

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

export function checkAttachRequest(raw: unknown): AttachNetworkRequest {
  const r = rec(raw, 'attach request');
  const address = optStr(r.Address, 'Address', 15);
  if (address !== undefined && !IPV4.test(address)) throw invalid('Address: not an IPv4 address');
  const container = optStr(r.Container, 'Container', 256);
  return {
    Target: id(r.Target, 'Target'),
    Aliases: arr(r.Aliases ?? [], 'Aliases', 100).map((a, i) => str(a, `Aliases[${i}]`, 255)),
    ...(address ? { Address: address } : {}),
    ...(container ? { Container: container } : {}),
  };
}

// The network's inside is checked where it is used (the overlay's
// viewNetworkFromAttachment), as for a task's attachments.
export function checkAttachResponse(raw: unknown): AttachNetworkResponse {
  const r = rec(raw, 'attach response');
  const n = rec(r.Network, 'Network');
  id(n.ID, 'Network.ID');
  rec(n.Spec, 'Network.Spec');
  const address = str(r.Address, 'Address', 18);
  if (!/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/.test(address)) throw invalid('Address: not an IPv4 CIDR');
  return { AttachmentID: id(r.AttachmentID, 'AttachmentID'), Network: n as unknown as Network, Address: address };
}

export const AttachNetwork: UnaryMethod<AttachNetworkRequest, AttachNetworkResponse> = {
  name: 'dispatcher.AttachNetwork', access: 'node', request: checkAttachRequest, response: checkAttachResponse,
};
export const DetachNetwork: UnaryMethod<DetachNetworkRequest, Record<string, never>> = {
  name: 'dispatcher.DetachNetwork', access: 'node',
  request: (raw) => ({ AttachmentID: id(rec(raw, 'detach request').AttachmentID, 'AttachmentID') }),
  response: (raw) => { rec(raw, 'detach response'); return {}; },
};

export const NameAttachment: UnaryMethod<NameAttachmentRequest, Record<string, never>> = {
  name: 'dispatcher.NameAttachment', access: 'node',
  request: (raw) => {
    const r = rec(raw, 'name request');
    return {
      AttachmentID: id(r.AttachmentID, 'AttachmentID'),
      Container: str(r.Container, 'Container', 256),
      Aliases: arr(r.Aliases ?? [], 'Aliases', 100).map((a, i) => str(a, `Aliases[${i}]`, 255)),
    };
  },
  response: (raw) => { rec(raw, 'name response'); return {}; },
};

// A task that is a container's network attachment, not a service's task.
export const isAttachmentTask = (t: { ServiceID: string; Spec: { NetworkAttachmentSpec?: unknown } }): boolean =>
  !t.ServiceID && t.Spec.NetworkAttachmentSpec !== undefined;
