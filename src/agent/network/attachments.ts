import type { Logger } from '../../common/log';
import type { Network } from '../../model/types';
import type { EngineClient } from '../../engine/client';
import type { AttachNetworkRequest, AttachNetworkResponse, NameAttachmentRequest } from '../../protocol/attachments';
import { dnsServerFor, engineNetworkName, type CarriedNetwork, type NodeNetworkView } from '../../protocol/network-view';

// This node's containers on attachable swarm networks (`docker run --network`,
// `docker network connect`): the API asks here for an address (the leader
// allocates it as a network attachment task), the network is made on this
// node before the container is created on it, and the address goes back when
// no container on the node uses it any more. That is found by looking: every
// CHECK_MS the node's attachments (the view's endpoints of this node without a
// service, and those just made) are compared with the addresses the engine
// networks' containers hold; one unused at two checks in a row (a container
// stopped, removed, disconnected) is released. A container that starts again
// asks again for its address (api/routes/containers.ts).

export interface AttachmentPlane {
  attachNetwork(req: AttachNetworkRequest): Promise<AttachNetworkResponse>;
  detachNetwork(attachmentId: string): Promise<void>;
  nameAttachment(req: NameAttachmentRequest): Promise<void>;
}

export interface NodeAttachmentsOptions {
  nodeId: string;
  engine: Pick<EngineClient, 'request'>;
  plane: AttachmentPlane;
  ensure: (networks: Network[]) => Promise<void>;  // makes the networks on this node (the overlay)
  log: Logger;
  checkMs?: number;
}

export interface Attached {
  id: string;
  networkId: string;
  networkName: string;
  address: string;         // plain IPv4
  engineNetwork: string;   // the engine network that carries it here
  dns: string;             // the container's Shoal DNS server (dnsServerFor: the gateway on an internal network)
}

const CHECK_MS = 5000;
// A container is created (or connected) within this after its address is given.
const GRACE_MS = 30_000;

interface Known { networkId: string; addr: string; since: number; misses: number }

export class NodeAttachments {
  private readonly known = new Map<string, Known>();
  private networks: Array<{ ID: string; Name: string }> = [];
  private view?: NodeNetworkView;
  private readonly timer: NodeJS.Timeout;
  private checking = false;
  private closed = false;

  constructor(private readonly opts: NodeAttachmentsOptions) {
    this.timer = setInterval(() => void this.check(), opts.checkMs ?? CHECK_MS);
    this.timer.unref();
  }

  async attach(req: AttachNetworkRequest): Promise<Attached> {
    const res = await this.opts.plane.attachNetwork(req);
    const net = res.Network;
    try {
      await this.opts.ensure([net]);
    } catch (err) {
      await this.release(res.AttachmentID);
      throw err;
    }
    const address = res.Address.split('/')[0]!;
    this.known.set(res.AttachmentID, { networkId: net.ID, addr: address, since: Date.now(), misses: 0 });
    return { id: res.AttachmentID, networkId: net.ID, networkName: net.Spec.Name ?? net.ID, address, engineNetwork: engineNetworkName(net.ID), dns: dnsServerFor([net]) };
  }

  async release(id: string): Promise<void> {
    this.known.delete(id);
    try {
      await this.opts.plane.detachNetwork(id);
    } catch (err) {
      this.opts.log.warn({ attachment: id, err: (err as Error).message }, 'releasing a network attachment failed; the next check tries again');
    }
  }

  // The container made on attachment `id` is known now (its name and short ID
  // answer in DNS); a failure is logged: the container runs either way.
  async name(id: string, container: string, aliases: string[]): Promise<void> {
    try {
      await this.opts.plane.nameAttachment({ AttachmentID: id, Container: container, Aliases: aliases });
    } catch (err) {
      this.opts.log.warn({ attachment: id, container, err: (err as Error).message }, 'naming a network attachment failed; the container answers only to its address and aliases');
    }
  }

  // The attachment of this node holding `address` on `networkId`, if any.
  find(networkId: string, address: string): string | undefined {
    for (const [id, k] of this.known) if (k.networkId === networkId && k.addr === address) return id;
    return undefined;
  }

  // A swarm network this node carries, by ID, name or ID prefix (the view's).
  network(term: string): { ID: string; Name: string } | undefined {
    return this.networks.find((n) => n.ID === term) ?? this.networks.find((n) => n.Name === term) ?? this.networks.find((n) => n.ID.startsWith(term));
  }

  // The swarm networks this node carries (its latest view), with their peers.
  carried(): CarriedNetwork[] {
    const view = this.view;
    if (!view) return [];
    return view.Networks.map((network) => {
      const peers = new Map<string, string>();
      for (const e of view.Endpoints) if (e.NetworkID === network.ID && e.Running) peers.set(e.NodeID, e.NodeAddr);
      for (const lb of view.LoadBalancers) if (lb.NetworkID === network.ID) peers.set(lb.NodeID, lb.NodeAddr);
      return { network, peers: [...peers].map(([NodeID, IP]) => ({ NodeID, IP })) };
    });
  }

  // The view names this node's attachments (after a restart too).
  update(view: NodeNetworkView): void {
    this.view = view;
    this.networks = view.Networks.map((n) => ({ ID: n.ID, Name: n.Name }));
    const mine = view.Endpoints.filter((e) => !e.ServiceID && e.NodeID === this.opts.nodeId);
    for (const e of mine) if (!this.known.has(e.TaskID)) this.known.set(e.TaskID, { networkId: e.NetworkID, addr: e.Addr, since: Date.now(), misses: 0 });
  }

  private async check(): Promise<void> {
    if (this.checking || this.closed || !this.known.size) return;
    this.checking = true;
    try {
      const now = Date.now();
      const inUse = new Map<string, Set<string> | undefined>();
      for (const [id, k] of [...this.known]) {
        if (now - k.since < GRACE_MS) continue;
        if (!inUse.has(k.networkId)) inUse.set(k.networkId, await this.addressesInUse(k.networkId));
        const used = inUse.get(k.networkId);
        if (!used) continue; // the engine did not answer: no conclusion
        if (used.has(k.addr)) { k.misses = 0; continue; }
        if (++k.misses < 2) continue;
        this.opts.log.info({ attachment: id, network: k.networkId, addr: k.addr }, 'no container uses this network attachment any more; releasing it');
        await this.release(id);
      }
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message }, 'checking network attachments failed');
    } finally {
      this.checking = false;
    }
  }

  // Addresses held by containers on the engine network carrying `networkId`;
  // none when it does not exist, undefined when the engine failed.
  private async addressesInUse(networkId: string): Promise<Set<string> | undefined> {
    try {
      const a = await this.opts.engine.request('GET', `/networks/${engineNetworkName(networkId)}`);
      if (a.status === 404) return new Set();
      if (a.status !== 200) return undefined;
      const n = JSON.parse(a.body.toString('utf8')) as { Containers?: Record<string, { IPv4Address?: string }> | null };
      return new Set(Object.values(n.Containers ?? {}).map((c) => (c?.IPv4Address ?? '').split('/')[0]!).filter(Boolean));
    } catch {
      return undefined;
    }
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
  }
}
