import type { PortConfig, Service, ServiceSpec } from '../../model/types';

// Published ports (SwarmKit's port allocator): ingress ports that name no
// published port get one from Docker's dynamic range, kept across updates.
export const DYNAMIC_PORT_FIRST = 30000;
export const DYNAMIC_PORT_LAST = 32767;

export const portKey = (protocol: string, port: number): string => `${protocol}/${port}`;

// A spec port as Docker shows it in Endpoint.Ports (protocol and mode filled in).
export function normalisePort(p: PortConfig): PortConfig {
  const out: PortConfig = {};
  if (p.Name) out.Name = p.Name;
  out.Protocol = p.Protocol ?? 'tcp';
  out.TargetPort = p.TargetPort ?? 0;
  out.PublishedPort = p.PublishedPort ?? 0;
  out.PublishMode = p.PublishMode ?? 'ingress';
  return out;
}

export const isIngressPort = (p: PortConfig): boolean => (p.PublishMode ?? 'ingress') === 'ingress';
export const publishesIngress = (spec: ServiceSpec | undefined): boolean => (spec?.EndpointSpec?.Ports ?? []).some(isIngressPort);

export type PortsResult = { ok: true; ports: PortConfig[] } | { ok: false; error: string };

// The service's Endpoint.Ports for its spec. `holder(key)` says which service
// holds a published ingress port; `dynamicFree(key)` is free for this service.
// Ports this service had chosen before are kept for the same (name, protocol,
// target) so an update does not move them.
export function allocatePorts(s: Service, holder: (key: string) => string | undefined, describe: (serviceId: string) => string): PortsResult {
  const spec = (s.Spec.EndpointSpec?.Ports ?? []).map(normalisePort);
  const before = (s.Endpoint?.Ports ?? []).filter((p) => isIngressPort(p) && p.PublishedPort);
  const mine = (key: string): boolean => { const h = holder(key); return h === undefined || h === s.ID; };
  const taken = new Set<string>();
  const out: PortConfig[] = [];
  for (const p of spec) {
    if (p.PublishMode !== 'ingress' || !p.PublishedPort) continue;
    const key = portKey(p.Protocol!, p.PublishedPort);
    if (!mine(key)) return { ok: false, error: `port '${p.PublishedPort}' is already in use by service ${describe(holder(key)!)} as an ingress port` };
    taken.add(key);
  }
  for (const p of spec) {
    if (p.PublishMode === 'ingress' && !p.PublishedPort) {
      const idx = before.findIndex((b) => (b.Name ?? '') === (p.Name ?? '') && b.Protocol === p.Protocol && b.TargetPort === p.TargetPort
        && !taken.has(portKey(b.Protocol!, b.PublishedPort!)) && mine(portKey(b.Protocol!, b.PublishedPort!)));
      if (idx >= 0) {
        p.PublishedPort = before[idx]!.PublishedPort;
        before.splice(idx, 1);
      } else {
        let port = 0;
        for (let c = DYNAMIC_PORT_FIRST; c <= DYNAMIC_PORT_LAST; c++) {
          const key = portKey(p.Protocol!, c);
          if (!taken.has(key) && holder(key) === undefined) { port = c; break; }
        }
        if (!port) return { ok: false, error: `could not allocate a published port for target port ${p.TargetPort}/${p.Protocol}: the dynamic range ${DYNAMIC_PORT_FIRST}-${DYNAMIC_PORT_LAST} is used up` };
        p.PublishedPort = port;
      }
      taken.add(portKey(p.Protocol!, p.PublishedPort!));
    }
    out.push(p);
  }
  return { ok: true, ports: out };
}

// The controlapi's check at create/update (SwarmKit's checkPortConflicts): a
// published port another service already uses, with Docker's texts.
export function portConflict(spec: ServiceSpec, serviceId: string | undefined, services: Iterable<Service>): string | undefined {
  const ingress = new Set<string>();
  const host = new Set<string>();
  for (const p of spec.EndpointSpec?.Ports ?? []) {
    if (!p.PublishedPort) continue;
    (isIngressPort(p) ? ingress : host).add(portKey(p.Protocol ?? 'tcp', p.PublishedPort));
  }
  if (!ingress.size && !host.size) return undefined;
  for (const s of services) {
    if (serviceId && s.ID === serviceId) continue;
    for (const p of [...(s.Spec.EndpointSpec?.Ports ?? []), ...(s.Endpoint?.Ports ?? [])]) {
      if (!p.PublishedPort) continue;
      const key = portKey(p.Protocol ?? 'tcp', p.PublishedPort);
      if (isIngressPort(p)) {
        if (ingress.has(key) || host.has(key)) return `port '${p.PublishedPort}' is already in use by service '${s.Spec.Name ?? ''}' (${s.ID}) as an ingress port`;
      } else if (ingress.has(key)) {
        return `port '${p.PublishedPort}' is already in use by service '${s.Spec.Name ?? ''}' (${s.ID}) as a host-published port`;
      }
    }
  }
  return undefined;
}
