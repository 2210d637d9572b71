import type { Network, Service, Task, TaskState } from '../../../src/model/types';

// Stored objects for the allocator's tests: networks written as the API
// would (no IPAM/DriverState yet), services and new tasks.

export function makeNetwork(id: string, o: { subnet?: string; gateway?: string; ingress?: boolean; name?: string } = {}): Network {
  return {
    ID: id, Version: { Index: 1 }, CreatedAt: 't', UpdatedAt: 't',
    Spec: {
      Name: o.name ?? id, DriverConfiguration: { Name: 'overlay' }, Scope: 'swarm', Labels: {},
      ...(o.ingress ? { Ingress: true } : {}),
      ...(o.subnet ? { IPAMOptions: { Configs: [{ Subnet: o.subnet, ...(o.gateway ? { Gateway: o.gateway } : {}) }] } } : {}),
    },
  };
}

export function svc(id: string, o: { networks?: Array<string | { Target: string; Aliases?: string[] }>; ports?: Array<{ target: number; published?: number; mode?: 'ingress' | 'host'; protocol?: 'tcp' | 'udp' }>; dnsrr?: boolean; labels?: Record<string, string> } = {}): Service {
  const nets = (o.networks ?? []).map((n) => (typeof n === 'string' ? { Target: n } : n));
  return {
    ID: id, Version: { Index: 1 }, CreatedAt: 't', UpdatedAt: 't',
    Spec: {
      Name: id, Labels: o.labels ?? {},
      TaskTemplate: { ContainerSpec: { Image: 'busybox' }, ...(nets.length ? { Networks: nets } : {}) },
      Mode: { Replicated: { Replicas: 1 } },
      EndpointSpec: {
        Mode: o.dnsrr ? 'dnsrr' : 'vip',
        ...(o.ports ? { Ports: o.ports.map((p) => ({ TargetPort: p.target, ...(p.published ? { PublishedPort: p.published } : {}), PublishMode: p.mode ?? 'ingress', Protocol: p.protocol ?? 'tcp' })) } : {}),
      },
    },
    Endpoint: { Spec: {} },
  };
}

let seq = 0;
export function task(service: Service, o: { id?: string; state?: TaskState; desired?: TaskState; node?: string } = {}): Task {
  const id = o.id ?? `t${++seq}`;
  return {
    ID: id, Version: { Index: 1 }, CreatedAt: 't', UpdatedAt: 't', Labels: {},
    Spec: structuredClone(service.Spec.TaskTemplate ?? {}), ServiceID: service.ID, Slot: seq,
    ...(o.node ? { NodeID: o.node } : {}),
    Status: { Timestamp: 't', State: o.state ?? 'new', Message: 'created' }, DesiredState: o.desired ?? 'running',
  };
}

export const addrs = (t: Task | undefined): string[] => (t?.NetworksAttachments ?? []).flatMap((a) => a.Addresses);
