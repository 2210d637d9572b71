import type { ServerResponse } from 'node:http';
import { originalTarget, writeAnswer } from './engine-answer';
import type { ApiRequest, Router } from '../router';
import type { CallOptions, EngineAnswer } from '../../engine/client';
import { invalid, isShoalError } from '../../common/errors';
import { isRec, type Rec } from '../../protocol/checks';
import { SHOAL_DNS_ADDR, type CarriedNetwork } from '../../protocol/network-view';

// Containers on attachable swarm networks (moby's "network attachment" on
// `docker run --network NAME` and `docker network connect NAME`). The engine
// knows nothing of swarm networks: a create (or connect) naming one that the
// engine does not know gets an address from the leader through this node's
// agent (SwarmAttacher), the network is made on this node, and the call goes
// to the engine naming the engine network that carries it here, with the
// allocated address as its IPAM config and Shoal's DNS server (service names
// answer through it). A container that starts again asks again for its
// address. Everything else is the engine's, forwarded as sent.

export interface AttachedNetwork {
  id: string;
  networkId: string;
  networkName: string;
  address: string;
  engineNetwork: string;
  dns: string;             // Shoal's DNS server as this container reaches it
}

// This node's agent while the node is in a swarm (agent/network/attachments.ts).
export interface SwarmAttacher {
  attach(req: { Target: string; Aliases: string[]; Address?: string; Container?: string }): Promise<AttachedNetwork>;
  release(id: string): Promise<void>;
  name(id: string, container: string, aliases: string[]): Promise<void>;  // never rejects
  find(networkId: string, address: string): string | undefined;
  network(term: string): { ID: string; Name: string } | undefined;
  carried(): CarriedNetwork[];  // the swarm networks this node carries (a worker's network ls and inspect)
}

export interface ContainerEngine {
  request(method: string, path: string, opts?: CallOptions): Promise<EngineAnswer>;
}

export interface ContainerRouteDeps {
  engine: ContainerEngine;
  attacher: () => SwarmAttacher | undefined;
  // The engine's own network named `ref` (name, ID or ID prefix), Shoal's plumbing excepted.
  engineNetwork: (ref: string) => Promise<string | undefined>;
}

// Network modes that never name a network (runconfig's predefined ones, and container:ID).
const BUILTIN = new Set(['', 'default', 'bridge', 'host', 'none']);
const ENGINE_PREFIX = 'shoal-';


const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
const recOf = (v: unknown): Rec => (isRec(v) ? v : {});

// The swarm network a create names, or undefined when it is the engine's business.
async function swarmNetworkOf(deps: ContainerRouteDeps, body: Rec): Promise<string | undefined> {
  const mode = recOf(body.HostConfig).NetworkMode;
  if (typeof mode !== 'string' || BUILTIN.has(mode) || mode.startsWith('container:') || mode.startsWith(ENGINE_PREFIX)) return undefined;
  if (await deps.engineNetwork(mode)) return undefined;
  return mode;
}

// The engine's refusal of an attachment's create/connect gives the address
// back; `accepted` runs on its success, before the answer goes out.
async function forwardOrRelease(deps: ContainerRouteDeps, attacher: SwarmAttacher, a: AttachedNetwork, res: ServerResponse, method: string, path: string, body: unknown, ok: number, accepted?: (answer: EngineAnswer) => Promise<void>): Promise<void> {
  let answer: EngineAnswer;
  try {
    answer = await deps.engine.request(method, path, { body });
  } catch (err) {
    await attacher.release(a.id);
    throw err;
  }
  if (answer.status !== ok) await attacher.release(a.id);
  else await accepted?.(answer);
  writeAnswer(res, answer);
}

export function registerContainerRoutes(router: Router, deps: ContainerRouteDeps): void {
  router.on('POST', '/containers/create', async (req, res) => {
    const raw = await req.json<unknown>();
    const attacher = deps.attacher();
    const target = attacher && isRec(raw) ? await swarmNetworkOf(deps, raw) : undefined;
    if (!attacher || !target || !isRec(raw)) {
      writeAnswer(res, await deps.engine.request('POST', originalTarget(req), { body: raw }));
      return undefined;
    }
    const hostConfig = recOf(raw.HostConfig);
    const networking = recOf(raw.NetworkingConfig);
    const endpoints = recOf(networking.EndpointsConfig);
    const ep = recOf(endpoints[target]);
    const ipam = recOf(ep.IPAMConfig);
    const name = req.query.get('name') ?? undefined;
    const a = await attacher.attach({
      Target: target, Aliases: strings(ep.Aliases),
      ...(typeof ipam.IPv4Address === 'string' && ipam.IPv4Address ? { Address: ipam.IPv4Address } : {}),
      ...(name ? { Container: name } : {}),
    });
    const rest = Object.fromEntries(Object.entries(endpoints).filter(([k]) => k !== target));
    const dns = strings(hostConfig.Dns).filter((x) => x !== a.dns && x !== SHOAL_DNS_ADDR);
    const body = {
      ...raw,
      HostConfig: { ...hostConfig, NetworkMode: a.engineNetwork, Dns: [a.dns, ...dns] },
      NetworkingConfig: { ...networking, EndpointsConfig: { ...rest, [a.engineNetwork]: { ...ep, IPAMConfig: { ...ipam, IPv4Address: a.address } } } },
    };
    await forwardOrRelease(deps, attacher, a, res, 'POST', originalTarget(req), body, 201, (created) => nameAttachment(deps, attacher, a.id, created));
    return undefined;
  });

  // A stopped container gave its address back: it asks for it again before it starts.
  router.on('POST', '/containers/:id/start', async (req, res) => {
    const attacher = deps.attacher();
    if (attacher) await reattach(deps, attacher, req.params.id!);
    // Start takes no body since API 1.24; whatever came is passed on.
    const raw = await req.json<unknown>();
    writeAnswer(res, await deps.engine.request('POST', originalTarget(req), raw === undefined ? {} : { body: raw }));
    return undefined;
  });
}

// The container now exists: its name (the engine's own when the user gave
// none) and short ID answer in DNS, as Docker's embedded resolver answers them.
async function nameAttachment(deps: ContainerRouteDeps, attacher: SwarmAttacher, attachmentId: string, created: EngineAnswer): Promise<void> {
  try {
    const id = String((JSON.parse(created.body.toString('utf8')) as { Id?: unknown }).Id ?? '');
    if (!/^[0-9a-f]{12,64}$/.test(id)) return;
    const c = await deps.engine.request('GET', `/containers/${id}/json`);
    if (c.status !== 200) return;
    const name = String((JSON.parse(c.body.toString('utf8')) as { Name?: unknown }).Name ?? '').replace(/^\//, '');
    if (name) await attacher.name(attachmentId, name, [id.slice(0, 12)]);
  } catch { /* the create stands; the container answers to its address and aliases only */ }
}

async function reattach(deps: ContainerRouteDeps, attacher: SwarmAttacher, ref: string): Promise<void> {
  const a = await deps.engine.request('GET', `/containers/${encodeURIComponent(ref)}/json`);
  if (a.status !== 200) return; // the engine's start answers for it
  const c = JSON.parse(a.body.toString('utf8')) as { Name?: string; State?: { Running?: boolean }; NetworkSettings?: { Networks?: Record<string, { IPAMConfig?: { IPv4Address?: string } | null; Aliases?: string[] | null }> } };
  if (c.State?.Running) return;
  for (const [engineNet, n] of Object.entries(c.NetworkSettings?.Networks ?? {})) {
    const addr = n.IPAMConfig?.IPv4Address;
    if (!engineNet.startsWith(ENGINE_PREFIX) || !addr) continue;
    const swarmNet = await swarmNetworkIdOf(deps, engineNet);
    if (!swarmNet || attacher.find(swarmNet, addr)) continue;
    try {
      await attacher.attach({ Target: swarmNet, Aliases: strings(n.Aliases), Address: addr, ...(c.Name ? { Container: c.Name.replace(/^\//, '') } : {}) });
    } catch (err) {
      const why = isShoalError(err) ? err.message : String(err);
      throw invalid(`Could not attach to network ${swarmNet} with address ${addr}: ${why}; remove the container and run it again`);
    }
  }
}

// The swarm network an engine network carries (its ENGINE_NETWORK_LABEL).
async function swarmNetworkIdOf(deps: ContainerRouteDeps, engineNet: string): Promise<string | undefined> {
  const a = await deps.engine.request('GET', `/networks/${encodeURIComponent(engineNet)}`);
  if (a.status !== 200) return undefined;
  const n = JSON.parse(a.body.toString('utf8')) as { Labels?: Record<string, string> | null };
  return n.Labels?.['io.shoal.network.id'];
}

// `docker network connect|disconnect NAME CONTAINER` for a swarm network
// (networks.ts sends them here when the engine does not know NAME).
export async function connectSwarmNetwork(deps: ContainerRouteDeps, attacher: SwarmAttacher, term: string, body: Rec, res: ServerResponse): Promise<void> {
  const ep = recOf(body.EndpointConfig);
  const ipam = recOf(ep.IPAMConfig);
  const container = typeof body.Container === 'string' ? body.Container : '';
  if (!container) throw invalid('no container name or ID given');
  // The container's name (it answers in DNS) and, as Docker adds on user-defined
  // networks, its short ID as an alias; the engine's connect answers for a wrong one.
  const c = await deps.engine.request('GET', `/containers/${encodeURIComponent(container)}/json`);
  const info = c.status === 200 ? JSON.parse(c.body.toString('utf8')) as { Id?: string; Name?: string } : {};
  const name = typeof info.Name === 'string' && info.Name ? info.Name.replace(/^\//, '') : container;
  const shortId = typeof info.Id === 'string' ? info.Id.slice(0, 12) : '';
  const aliases = strings(ep.Aliases);
  const a = await attacher.attach({
    Target: term, Aliases: shortId && !aliases.includes(shortId) ? [...aliases, shortId] : aliases, Container: name,
    ...(typeof ipam.IPv4Address === 'string' && ipam.IPv4Address ? { Address: ipam.IPv4Address } : {}),
  });
  const next = { ...body, EndpointConfig: { ...ep, IPAMConfig: { ...ipam, IPv4Address: a.address } } };
  await forwardOrRelease(deps, attacher, a, res, 'POST', `/networks/${a.engineNetwork}/connect`, next, 200);
}

export async function disconnectSwarmNetwork(deps: ContainerRouteDeps, attacher: SwarmAttacher, networkId: string, body: Rec, res: ServerResponse): Promise<void> {
  const container = typeof body.Container === 'string' ? body.Container : '';
  if (!container) throw invalid('no container name or ID given');
  const engineNet = `${ENGINE_PREFIX}${networkId.slice(0, 12)}`;
  const c = await deps.engine.request('GET', `/containers/${encodeURIComponent(container)}/json`);
  let addr: string | undefined;
  if (c.status === 200) {
    const j = JSON.parse(c.body.toString('utf8')) as { NetworkSettings?: { Networks?: Record<string, { IPAddress?: string; IPAMConfig?: { IPv4Address?: string } | null }> } };
    const n = j.NetworkSettings?.Networks?.[engineNet];
    addr = n?.IPAMConfig?.IPv4Address || n?.IPAddress || undefined;
  }
  const answer = await deps.engine.request('POST', `/networks/${engineNet}/disconnect`, { body });
  const id = addr ? attacher.find(networkId, addr) : undefined;
  if (answer.status === 200 && id) await attacher.release(id);
  writeAnswer(res, answer);
}
