import type { ServerResponse } from 'node:http';
import { originalTarget, writeAnswer } from './engine-answer';
import type { NetworkSpec } from '../../model/types';
import type { ApiRequest, Router } from '../router';
import type { EngineAnswer, CallOptions } from '../../engine/client';
import type { ControlApi } from '../../manager/controlapi';
import { forbidden, invalid, isShoalError, NOT_A_MANAGER, notFound, unavailable } from '../../common/errors';
import { matchLabels, parseFilters, type Filters } from '../../common/filters';
import { decodeGo } from '../../common/go/go-json';
import { goQuote } from '../../common/go/go-format';
import { parseGoBool } from '../../common/go/query';
import { parseGoTimestamp } from '../../common/go/go-time';
import { networkNameConflict } from '../../manager/controlapi/networks';
import type { NetworkResource } from '../../manager/controlapi/network-resource';
import { OVERLAY } from '../../manager/controlapi/validate-network';
import { ENGINE_NETWORK_LABEL, engineNetworkName } from '../../protocol/network-view';
import { NetworkConnect, NetworkCreateRequest } from '../decode/docker-types';
import type { SwarmMembership } from './membership';
import { connectSwarmNetwork, disconnectSwarmNetwork, type SwarmAttacher } from './containers';
import { isRec } from '../../protocol/checks';
import { carriedNetworkResource, findCarried } from './carried-networks';

// /networks: the engine's local networks and the swarm's overlay networks
// behind one API, as dockerd in swarm mode serves them (moby's
// api/server/router/network). Overlay (or `Scope: swarm`) creates go to the
// control API; every other driver, and every call about an engine network, is
// relayed to the engine as sent. Engine networks labelled ENGINE_NETWORK_LABEL
// carry swarm networks on this node (agent/network): Shoal's plumbing, never
// shown, removed or pruned through the API.

export interface NetworkEngine {
  request(method: string, path: string, opts?: CallOptions): Promise<EngineAnswer>;
}

export interface NetworkRouteDeps {
  swarm: SwarmMembership;
  engine: NetworkEngine;
  // This node's agent while in a swarm: containers on attachable swarm networks (containers.ts).
  attacher?: () => SwarmAttacher | undefined;
}

export const NETWORK_FILTERS = ['dangling', 'driver', 'id', 'label', 'name', 'scope', 'type'] as const;
const PRUNE_FILTERS = ['label', 'label!', 'until'] as const;
// runconfig.IsPreDefinedNetwork.
const PREDEFINED = new Set(['bridge', 'host', 'none', 'default']);

type EngineNetwork = NetworkResource & { Labels: Record<string, string> | null };

interface NetworkCreateBody {
  Name?: string; CheckDuplicate?: boolean; Driver?: string; Scope?: string; EnableIPv6?: boolean;
  IPAM?: { Driver?: string; Options?: Record<string, string>; Config?: Array<{ Subnet?: string; IPRange?: string; Gateway?: string }> };
  Internal?: boolean; Attachable?: boolean; Ingress?: boolean; ConfigOnly?: boolean; ConfigFrom?: { Network?: string };
  Options?: Record<string, string>; Labels?: Record<string, string>;
}

const isPlumbing = (n: { Labels?: Record<string, string> | null }): boolean =>
  !!n.Labels && Object.prototype.hasOwnProperty.call(n.Labels, ENGINE_NETWORK_LABEL);

// The control API when this node is an active manager, else undefined (the
// engine's networks are still served, as dockerd does on a worker).
function controlOrNone(swarm: SwarmMembership): ControlApi | undefined {
  try { return swarm.control(); } catch (e) { if (isShoalError(e) && e.kind === 'unavailable') return undefined; throw e; }
}

async function engineJson<T>(engine: NetworkEngine, path: string, query?: Record<string, string | undefined>): Promise<{ status: number; value?: T; answer: EngineAnswer }> {
  const answer = await engine.request('GET', path, { query });
  if (answer.status !== 200) return { status: answer.status, answer };
  return { status: 200, value: JSON.parse(answer.body.toString('utf8')) as T, answer };
}

async function engineNetworks(engine: NetworkEngine, filters?: string): Promise<EngineNetwork[]> {
  const r = await engineJson<EngineNetwork[]>(engine, '/networks', filters ? { filters } : undefined);
  if (r.status !== 200) throw engineError(r.answer);
  return (r.value ?? []).filter((n) => !isPlumbing(n));
}

function engineError(a: EngineAnswer): Error {
  let message = a.body.toString('utf8').trim();
  try { message = (JSON.parse(message) as { message?: string }).message ?? message; } catch { /* plain text */ }
  const e = invalid(message);
  return a.status === 404 ? notFound(message) : a.status === 403 ? forbidden(message) : e;
}

// filters.Args.Match: the value itself, or as a regular expression found in it.
function goMatch(values: string[] | undefined, source: string): boolean {
  if (!values?.length) return true;
  return values.some((v) => {
    if (v === source) return true;
    try { return new RegExp(v).test(source); } catch { return false; }
  });
}

// moby's FilterNetworks over the swarm's networks (cluster.GetNetworks first
// keeps exact names only, and ID prefixes).
function filterSwarmNetworks(list: NetworkResource[], f: Filters, inUse: (id: string) => boolean): NetworkResource[] {
  let out = list.filter((n) => {
    const names = f.get('name');
    if (names?.length && !names.includes(n.Name)) return false;
    const ids = f.get('id');
    if (ids?.length && !ids.some((p) => n.Id.startsWith(p))) return false;
    if (f.get('driver')?.length && !f.get('driver')!.includes(n.Driver)) return false;
    if (!goMatch(f.get('name'), n.Name) || !goMatch(f.get('id'), n.Id)) return false;
    if (!matchLabels(n.Labels ?? {}, f.get('label'))) return false;
    if (f.get('scope')?.length && !f.get('scope')!.includes(n.Scope)) return false;
    return true;
  });
  const dangling = f.get('dangling') ?? [];
  if (dangling.length > 1) throw invalid('got more than one value for filter key "dangling"');
  if (dangling.length === 1) {
    const v = dangling[0]!;
    if (!['0', 'false', '1', 'true'].includes(v)) throw invalid('invalid value for filter \'dangling\', must be "true" (or "1"), or "false" (or "0")');
    const only = v === '1' || v === 'true';
    out = out.filter((n) => (only ? !inUse(n.Id) : inUse(n.Id)));
  }
  const types = f.get('type');
  if (types?.length) {
    for (const t of types) if (t !== 'custom' && t !== 'builtin') throw invalid(`invalid filter: 'type'='${t}'`);
    out = types.includes('custom') ? out : [];
  }
  return out;
}

// NetworkCreateRequest → NetworkSpec (moby's convert.BasicNetworkCreateToGRPC).
function toSpec(b: NetworkCreateBody): NetworkSpec {
  const spec: NetworkSpec = {
    Name: b.Name,
    Labels: b.Labels,
    DriverConfiguration: { Name: b.Driver ?? '', ...(b.Options ? { Options: b.Options } : {}) },
    IPv6Enabled: !!b.EnableIPv6,
    Internal: !!b.Internal,
    Attachable: !!b.Attachable,
    Ingress: !!b.Ingress,
  };
  if (b.IPAM) {
    spec.IPAMOptions = {
      Driver: { Name: b.IPAM.Driver || 'default', ...(b.IPAM.Options ? { Options: b.IPAM.Options } : {}) },
      Configs: (b.IPAM.Config ?? []).map((c) => ({
        ...(c.Subnet ? { Subnet: c.Subnet } : {}), ...(c.IPRange ? { Range: c.IPRange } : {}), ...(c.Gateway ? { Gateway: c.Gateway } : {}),
      })),
    };
  }
  if (b.ConfigFrom?.Network) spec.ConfigFrom = { Network: b.ConfigFrom.Network };
  return spec;
}

export function registerNetworkRoutes(router: Router, deps: NetworkRouteDeps): void {
  const { swarm, engine } = deps;

  router.on('GET', '/networks', async (req) => {
    const raw = req.query.get('filters');
    const filters = parseFilters(raw, NETWORK_FILTERS);
    const control = controlOrNone(swarm);
    const local = await engineNetworks(engine, raw ?? undefined);
    if (!control) {
      // A worker: the swarm networks it carries (carried-networks.ts).
      const carried = deps.attacher?.()?.carried() ?? [];
      if (!carried.length) return { status: 200, body: local };
      const nodeId = swarm.info().NodeID;
      const mine = filterSwarmNetworks(carried.map((c) => carriedNetworkResource(c, nodeId, undefined, null)), filters, () => true);
      const seen = new Set(mine.map((n) => n.Id));
      return { status: 200, body: [...mine, ...local.filter((n) => !seen.has(n.Id))] };
    }
    const all = control.networks.all();
    const byId = new Map(all.map((n) => [n.ID, n]));
    const mine = filterSwarmNetworks(control.networks.list(), filters, (id) => !!control.networks.inUse(byId.get(id)!));
    const seen = new Set(mine.map((n) => n.Id));
    return { status: 200, body: [...mine, ...local.filter((n) => !seen.has(n.Id))] };
  });

  router.on('POST', '/networks/create', async (req, res) => {
    const raw = await req.json<unknown>();
    if (raw === undefined) throw invalid('got EOF while reading request body');
    const body = decodeGo<NetworkCreateBody>(raw, NetworkCreateRequest);
    const name = body.Name ?? '';
    const control = controlOrNone(swarm);
    if (control && control.networks.all().some((n) => n.Spec.Name === name)) throw networkNameConflict(name);
    const swarmScoped = body.Driver === OVERLAY || body.Scope === 'swarm';
    if (!swarmScoped) {
      writeAnswer(res, await engine.request('POST', originalTarget(req), { body: raw }));
      return undefined;
    }
    // dockerd's own checks come first (daemon.createNetwork), then the redirect to the swarm.
    if (PREDEFINED.has(name)) throw forbidden(`operation is not permitted on predefined ${name} network `);
    let warning = '';
    const clash = (await engineNetworks(engine)).find((n) => n.Name === name);
    if (clash) {
      if (body.CheckDuplicate) throw networkNameConflict(name);
      warning = `network with name ${name} already exists`;
    }
    if (!control) {
      const info = swarm.info();
      if (info.LocalNodeState === 'active' && !info.ControlAvailable) throw forbidden('Cannot create a multi-host network from a worker node. Please create the network from a manager node.');
      swarm.control(); // throws why this manager cannot answer (or Docker's "not a swarm manager")
      throw unavailable(NOT_A_MANAGER);
    }
    if (body.Driver !== OVERLAY) throw invalid(`only the overlay driver is supported for swarm-scoped networks, not ${goQuote(body.Driver ?? '')}`);
    const { ID } = await control.networks.create(toSpec(body));
    return { status: 201, body: { Id: ID, Warning: warning } };
  });

  router.on('GET', '/networks/:id', async (req) => {
    const term = req.params.id!;
    const rawVerbose = req.query.get('verbose') ?? '';
    let verbose = false;
    if (rawVerbose !== '') {
      const v = parseGoBool(rawVerbose);
      if (v === undefined) throw invalid(`invalid value for verbose: ${rawVerbose}: strconv.ParseBool: parsing ${goQuote(rawVerbose)}: invalid syntax`);
      verbose = v;
    }
    const scope = req.query.get('scope') ?? '';
    let found: Found;
    try {
      found = await findNetwork(deps, term, { scope, ingressByName: true, verbose });
    } catch (e) {
      // A worker: one of the swarm networks it carries (carried-networks.ts).
      const carried = isShoalError(e) && e.kind === 'not_found' && scope !== 'local' && !controlOrNone(swarm) ? findCarried(deps.attacher?.()?.carried() ?? [], term) : undefined;
      if (!carried) throw e;
      const carrier = await engineJson<EngineNetwork>(engine, `/networks/${engineNetworkName(carried.network.ID)}`);
      const containers = (carrier.value?.Containers as Record<string, unknown> | null | undefined) ?? {};
      return { status: 200, body: carriedNetworkResource(carried, swarm.info().NodeID, carrier.value?.Created as string | undefined, containers) };
    }
    if (found.kind === 'swarm') {
      const r = found.control.networks.resource(found.network, verbose);
      // Where the network is on this node (Docker's local libnetwork network):
      // its containers, as the engine network that carries it here shows them,
      // and the node's load-balancer endpoint. Elsewhere Docker answers the
      // cluster's object: no containers, no peers.
      const carrier = await engineJson<EngineNetwork>(engine, `/networks/${engineNetworkName(found.network.ID)}`);
      if (carrier.status !== 404) {
        const lb = found.control.networks.localEndpoint(found.network);
        r.Containers = { ...((carrier.value?.Containers as Record<string, unknown> | null | undefined) ?? {}), ...(lb ? { [lb[0]]: lb[1] } : {}) };
      } else {
        r.Containers = null;
        delete r.Peers;
      }
      return { status: 200, body: r };
    }
    return { status: 200, body: found.detail };
  });

  router.on('DELETE', '/networks/:id', async (req, res) => {
    const found = await findNetwork(deps, req.params.id!, { scope: '', ingressByName: false, verbose: false });
    if (found.kind === 'swarm') {
      await found.control.networks.remove(found.network.ID);
      return { status: 204 };
    }
    writeAnswer(res, await engine.request('DELETE', `/networks/${found.detail.Id}`));
    return undefined;
  });

  router.on('POST', '/networks/prune', async (req) => {
    const raw = req.query.get('filters');
    const filters = parseFilters(raw, PRUNE_FILTERS);
    const untilValues = filters.get('until') ?? [];
    if (untilValues.length > 1) throw invalid('more than one until filter specified');
    const until = untilValues.length ? parseGoTimestamp(untilValues[0]!, Date.now()) : undefined;
    const control = controlOrNone(swarm);
    const deleted = control ? await control.networks.prune(filters, until) : [];
    // The engine prunes its own, never the networks that carry swarm networks here.
    const engineFilters: Record<string, Record<string, boolean>> = {};
    for (const [k, vs] of filters) engineFilters[k] = Object.fromEntries(vs.map((v) => [v, true]));
    engineFilters['label!'] = { ...engineFilters['label!'], [ENGINE_NETWORK_LABEL]: true };
    const a = await engine.request('POST', '/networks/prune', { query: { filters: JSON.stringify(engineFilters) } });
    if (a.status !== 200) throw engineError(a);
    const local = (JSON.parse(a.body.toString('utf8')) as { NetworksDeleted?: string[] | null }).NetworksDeleted ?? [];
    const all = [...deleted, ...local];
    return { status: 200, body: { NetworksDeleted: all.length ? all : null } };
  });

  // A container on an attachable swarm network (containers.ts): the swarm
  // network is found by the leader (a worker's control API knows none);
  // engine networks are the engine's business.
  for (const verb of ['connect', 'disconnect'] as const) {
    router.on('POST', `/networks/:id/${verb}`, async (req, res) => {
      const raw = await req.json<unknown>();
      if (raw === undefined) throw invalid('got EOF while reading request body');
      decodeGo(raw, NetworkConnect);
      const term = req.params.id!;
      const found = await findNetwork(deps, term, { scope: '', ingressByName: false, verbose: false }).catch((e: unknown) => {
        if (isShoalError(e) && e.kind === 'not_found') return undefined;
        throw e;
      });
      const attacher = deps.attacher?.();
      if (found?.kind !== 'engine' && attacher && isRec(raw)) {
        const cdeps = { engine, attacher: () => attacher, engineNetwork: engineNetworkLookup(engine) };
        if (verb === 'connect') { await connectSwarmNetwork(cdeps, attacher, found?.network.ID ?? term, raw, res); return undefined; }
        const networkId = found?.network.ID ?? attacher.network(term)?.ID;
        if (networkId) { await disconnectSwarmNetwork(cdeps, attacher, networkId, raw, res); return undefined; }
      }
      if (found?.kind === 'swarm') throw invalid(`swarm network ${found.network.Spec.Name ?? found.network.ID}: this node's agent is not running`);
      writeAnswer(res, await engine.request('POST', originalTarget(req), { body: raw }));
      return undefined;
    });
  }
}

type Found =
  | { kind: 'swarm'; control: ControlApi; network: ReturnType<ControlApi['networks']['resolve']> }
  | { kind: 'engine'; detail: NetworkResource };

// moby's getNetwork / findUniqueNetwork over both sides: a full ID first (the
// engine's before the swarm's), then a unique full name, then a unique ID
// prefix. `ingressByName` false leaves engine-side ingress names out, as
// findUniqueNetwork does.
async function findNetwork(deps: NetworkRouteDeps, term: string, opts: { scope: string; ingressByName: boolean; verbose: boolean }): Promise<Found> {
  const control = opts.scope === 'local' ? undefined : controlOrNone(deps.swarm);
  const local = opts.scope === '' || opts.scope === 'local' ? await engineNetworks(deps.engine) : [];
  const swarmNets = control?.networks.all() ?? [];
  const engineDetail = async (id: string): Promise<Found> => {
    const r = await engineJson<NetworkResource>(deps.engine, `/networks/${id}`, { verbose: opts.verbose ? 'true' : undefined, scope: opts.scope || undefined });
    if (r.status !== 200) throw engineError(r.answer);
    return { kind: 'engine', detail: r.value! };
  };
  const exactLocal = local.find((n) => n.Id === term);
  if (exactLocal) return engineDetail(exactLocal.Id);
  const exactSwarm = swarmNets.find((n) => n.ID === term);
  if (exactSwarm) return { kind: 'swarm', control: control!, network: exactSwarm };
  // Keyed by ID: one network seen on both sides counts once, the engine's first.
  const byName = new Map<string, () => Promise<Found>>();
  const byPrefix = new Map<string, () => Promise<Found>>();
  for (const n of local) {
    if (n.Name === term && (opts.ingressByName || !n.Ingress)) byName.set(n.Id, () => engineDetail(n.Id));
    if (n.Id.startsWith(term)) byPrefix.set(n.Id, () => engineDetail(n.Id));
  }
  for (const n of swarmNets) {
    const swarmFound = async (): Promise<Found> => ({ kind: 'swarm', control: control!, network: n });
    if (n.Spec.Name === term && !byName.has(n.ID)) byName.set(n.ID, swarmFound);
    if (n.ID.startsWith(term) && !byPrefix.has(n.ID)) byPrefix.set(n.ID, swarmFound);
  }
  if (byName.size === 1) return [...byName.values()][0]!();
  if (byName.size > 1) throw invalid(`network ${term} is ambiguous (${byName.size} matches found based on name)`);
  if (byPrefix.size === 1) return [...byPrefix.values()][0]!();
  if (byPrefix.size > 1) throw invalid(`network ${term} is ambiguous (${byPrefix.size} matches found based on ID prefix)`);
  throw notFound(`network ${term} not found`);
}

// The name of the engine's network `ref` (name, ID or ID prefix), Shoal's plumbing excepted.
export function engineNetworkLookup(engine: NetworkEngine): (ref: string) => Promise<string | undefined> {
  return async (ref) => {
    const n = (await engineNetworks(engine)).find((x) => x.Name === ref || x.Id.startsWith(ref));
    return n?.Name;
  };
}
