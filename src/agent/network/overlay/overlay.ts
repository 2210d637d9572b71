import type { Logger } from '../../../common/log';
import type { Network } from '../../../model/types';
import { EngineError, type EngineClient } from '../../../engine/client';
import { ENGINE_NETWORK_LABEL, type NodeNetworkView, type ViewNetwork } from '../../../protocol/network-view';
import type { NetworkComponent, NetworkComponentOptions } from '../component';
import { readJson, runBatch, type BatchFailure } from './commands';
import { deepEqual } from '../../../common/deep-equal';
import { desiredOverlays, type Desired } from './desired';
import { viewNetworkFromAttachment } from './names';
import { parseAddrs, parseEngineNetworks, parseFdb, parseLinks, parseNeighbours, parseTunnels, type ObservedOverlays } from './observed';
import { livePins, viewTakesOver, type Pin } from './pins';
import { planOverlays, type OverlayPlan } from './plan';
import { Tunnel } from './tunnel';

// This node's overlays (docs/ARCHITECTURE.md, "Networking"): for each swarm
// network it needs, a Linux bridge with a VXLAN port and static FDB and
// neighbour entries for every remote endpoint, and a docker `bridge` network
// on that bridge. Each round reads what the kernel and the engine have, plans
// (plan.ts, pure) and applies; rounds run one at a time and a round asked for
// while one runs is merged into the next (the latest view wins).

// How a round reads and changes the node (iproute2 by default; tests count calls).
export interface NodeCommands { readJson: typeof readJson; runBatch: typeof runBatch }

export interface OverlayOptions extends NetworkComponentOptions {
  engine: EngineClient;
  commands?: NodeCommands;
  pinMs?: number;          // how long a network asked for by a task is kept without the view naming it
  engineTimeoutMs?: number;
}

export const EMPTY_VIEW: NodeNetworkView = { Networks: [], Services: [], Endpoints: [], LoadBalancers: [] };
const DEFAULT_PIN_MS = 5 * 60_000;
const DEFAULT_ENGINE_TIMEOUT_MS = 30_000;
// A network no longer wanted whose engine network a container still used
// (the task's container is being stopped): looked at again this soon, not
// at the next view or drift repair (`stack rm` left networks for a minute).
// Doubled while it stays in use (a container the swarm does not know of).
const KEPT_RETRY_MS = 2_000;
const KEPT_RETRY_MAX_MS = 60_000;

// `temporary`: the node could not be looked at (engine or iproute2 not
// answering); trying again later may help. Otherwise the network itself failed.
export class OverlayError extends Error {
  constructor(message: string, readonly temporary = false) { super(message); this.name = 'OverlayError'; }
}

export class Overlay implements NetworkComponent {
  readonly name = 'overlay';
  private view: NodeNetworkView = EMPTY_VIEW;
  private readonly pins = new Map<string, Pin>();
  private readonly made = new Set<string>();      // networks whole after the last round
  private readonly failed = new Map<string, string>(); // network → why the last round could not make it
  private running: Promise<void> = Promise.resolve();
  private next?: Promise<void>;
  private closed = false;
  private lastProblems = '';
  private roundError?: string;         // why the last round stopped before applying
  private readonly pinMs: number;
  private readonly engineMs: number;
  private readonly cmd: NodeCommands;
  private keptRetry?: NodeJS.Timeout;
  private keptInUse = false;           // the last round kept a network no longer wanted (in use)
  private lastDesired?: Desired;       // what the last round's last pass aimed at
  // What the node has, as far as the last whole round knows; cleared while a round runs.
  private settled?: Desired;
  private keptDelay = KEPT_RETRY_MS;
  private readonly tunnel = new Tunnel((name) => {
    if (this.closed) return; // a swarm leave's own overlay took it down
    this.opts.log.warn({ tunnel: name }, 'wireguard-go ended; looking at the overlays again');
    void this.round();
  });

  constructor(private readonly opts: OverlayOptions) {
    this.pinMs = opts.pinMs ?? DEFAULT_PIN_MS;
    this.engineMs = opts.engineTimeoutMs ?? DEFAULT_ENGINE_TIMEOUT_MS;
    this.cmd = opts.commands ?? { readJson, runBatch };
  }

  update(view: NodeNetworkView): Promise<void> {
    const again = view === this.view; // the host's periodic resync: look at the node again (drift repair)
    this.view = view;
    viewTakesOver(this.pins, view); // a pin only bridges the time until the view names the network (pins.ts)
    if (!again && this.nothingNew()) return Promise.resolve();
    return this.round();
  }

  // The new view asks nothing new of this node's overlays (it changed what
  // other components use, or nodes this node shares no network with): no
  // round. A round reads the kernel and the engine with four commands, and
  // at 5,000 nodes views changed every few seconds: spawning them from a
  // manager's big process took 9 s of a 300 s profile of its event loop.
  private nothingNew(): boolean {
    if (!this.settled || this.next) return false;
    return deepEqual(desiredOverlays({ nodeId: this.opts.nodeId, nodeAddr: this.opts.nodeAddr, view: this.view, pinned: this.pinned() }), this.settled);
  }

  // A task is about to be created on these networks: they exist when this
  // resolves, or it rejects saying why one cannot be made.
  async ensure(networks: Network[]): Promise<void> {
    const nets: ViewNetwork[] = [];
    for (const n of networks) {
      const v = viewNetworkFromAttachment(n);
      if (v instanceof Error) throw new OverlayError(v.message);
      nets.push(v);
    }
    const until = Date.now() + this.pinMs;
    for (const n of nets) if (!this.view.Networks.some((x) => x.ID === n.ID)) this.pins.set(n.ID, { net: n, until });
    if (nets.every((n) => this.made.has(n.ID))) return;
    await this.round();
    for (const n of nets) {
      if (this.made.has(n.ID)) continue;
      const why = this.failed.get(n.ID);
      throw new OverlayError(`network ${n.Name} could not be made on this node: ${why ?? this.roundError ?? 'unknown error'}`, !why);
    }
  }

  // Leaves the node's networks as they are: task containers keep running, and
  // the next agent takes them over.
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.keptRetry);
    await this.next;
    await this.running;
  }

  private round(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.next ??= this.running.then(() => {
      this.next = undefined;
      if (this.closed) return;
      this.roundError = undefined;
      this.settled = undefined;
      this.running = this.reconcile().then(() => {
        // Whole: every network made, none kept back.
        if (!this.failed.size && !this.keptInUse) this.settled = this.lastDesired;
      }, (err: unknown) => {
        this.roundError = (err as Error).message;
        this.made.clear();
        this.opts.log.warn({ err: this.roundError }, 'overlay round failed');
      });
      return this.running;
    });
    return this.next;
  }

  private pinned(): ViewNetwork[] {
    return livePins(this.pins, Date.now());
  }

  private async reconcile(): Promise<void> {
    this.keptInUse = false;
    try {
      await this.reconcilePasses();
    } finally {
      clearTimeout(this.keptRetry);
      if (!this.keptInUse) this.keptDelay = KEPT_RETRY_MS;
      else if (!this.closed) {
        this.keptRetry = setTimeout(() => { void this.round(); }, this.keptDelay);
        this.keptRetry.unref();
        this.keptDelay = Math.min(KEPT_RETRY_MAX_MS, this.keptDelay * 2);
      }
    }
  }

  private async reconcilePasses(): Promise<void> {
    // A second pass only after removing an engine network that did not fit (the engine takes its bridge along).
    for (let pass = 0; pass < 2; pass++) {
      const desired = desiredOverlays({ nodeId: this.opts.nodeId, nodeAddr: this.opts.nodeAddr, view: this.view, pinned: this.pinned() });
      const observed = await this.observe(desired.nodeAddr);
      const plan = planOverlays(desired.networks, desired.nodeAddr, observed, desired.tunnel);
      this.report([...desired.problems, ...plan.problems]);
      this.lastDesired = plan.problems.length ? undefined : desired;
      if (!(await this.apply(plan))) return;
    }
  }

  private report(problems: string[]): void {
    const key = problems.join('\n');
    if (key === this.lastProblems) return;
    this.lastProblems = key;
    if (problems.length) this.opts.log.warn({ problems }, 'network view items left out');
  }

  private async observe(nodeAddr: string | undefined): Promise<ObservedOverlays> {
    const [links, addrs, neigh, fdb, engine] = await Promise.all([
      this.cmd.readJson('ip', ['-d', 'link', 'show']),
      this.cmd.readJson('ip', ['addr', 'show']),
      this.cmd.readJson('ip', ['neigh', 'show']),
      this.cmd.readJson('bridge', ['fdb', 'show']),
      this.opts.engine.getJson<unknown>('/networks', { query: { filters: JSON.stringify({ label: [ENGINE_NETWORK_LABEL] }) }, timeoutMs: this.engineMs }),
    ]);
    const a = parseAddrs(addrs, nodeAddr);
    return {
      links: parseLinks(links),
      tunnels: parseTunnels(links, addrs),
      addrs: a.addrs,
      neighbours: parseNeighbours(neigh),
      fdb: parseFdb(fdb),
      engineNetworks: parseEngineNetworks(engine),
      ...(a.underlayMtu ? { underlayMtu: a.underlayMtu } : {}),
    };
  }

  // Returns true when the plan removed engine networks that did not fit (plan again).
  private async apply(plan: OverlayPlan): Promise<boolean> {
    const { log } = this.opts;
    const broken = new Map<string, string>();
    let removedMisfits = false;
    for (const n of plan.networks) {
      for (const id of n.engineRemove) {
        try {
          await this.opts.engine.call('DELETE', `/networks/${encodeURIComponent(id)}`, { timeoutMs: this.engineMs });
          removedMisfits = true;
          log.info({ network: n.networkId, engineNetwork: id }, 'removed an engine network that does not match the swarm network');
        } catch (err) {
          broken.set(n.networkId, `removing the engine network that does not match failed: ${(err as Error).message}`);
        }
      }
    }
    if (removedMisfits) return true;

    // Networks no longer wanted go first: one a dead daemon left (a swarm left
    // or re-made) may hold the subnet a wanted network is about to take.
    for (const t of plan.teardown) await this.teardown(t.networkId ?? t.key, t.engineNetworks, t.links);
    if (plan.tunnelRemove.length) {
      this.tunnel.removing(plan.tunnelRemove);
      const failed = (await this.cmd.runBatch('ip', plan.tunnelRemove.map((n) => `link del dev ${n}`))).filter((f) => !/Cannot find device/.test(f.error));
      for (const f of failed) log.warn({ command: f.line, err: f.error }, 'removing a tunnel failed');
      if (failed.length < plan.tunnelRemove.length) log.info({ removed: plan.tunnelRemove.length - failed.length }, 'encrypted overlay tunnel removed from this node');
    }

    // The tunnel before the encrypted networks' VXLAN ports, which are bound to its address.
    const noTunnel = new Set<string>();
    if (plan.tunnel) {
      try {
        const made = plan.tunnel.create;
        await this.tunnel.apply(plan.tunnel);
        if (made) log.info({ tunnel: plan.tunnel.name }, 'encrypted overlay tunnel made');
      } catch (err) {
        const why = `the encrypted overlay tunnel: ${(err as Error).message}`;
        for (const n of plan.networks) if (n.encrypted) { broken.set(n.networkId, why); noTunnel.add(n.networkId); }
      }
    }

    const linkFailures = await this.cmd.runBatch('ip', plan.networks.filter((n) => !noTunnel.has(n.networkId)).flatMap((n) => n.links));
    markFailures(linkFailures, plan, 'links', broken, log);

    for (const n of plan.networks) {
      if (!n.engineCreate || broken.has(n.networkId)) continue;
      try {
        await this.opts.engine.postJson('/networks/create', n.engineCreate, { timeoutMs: this.engineMs });
        log.info({ network: n.networkId, engineNetwork: n.engineCreate.Name }, 'engine network created');
      } catch (err) {
        // 409: made meanwhile (an earlier round whose answer was lost); the next round checks it.
        if (!(err instanceof EngineError && err.status === 409)) broken.set(n.networkId, `creating the engine network failed: ${(err as Error).message}`);
      }
    }

    const ready = plan.networks.filter((n) => !broken.has(n.networkId));
    const entryFailures = [
      ...(await this.cmd.runBatch('ip', ready.flatMap((n) => n.ip))),
      ...(await this.cmd.runBatch('bridge', ready.flatMap((n) => n.fdb))),
    ];
    // A failed address or entry concerns one endpoint: logged, the network stays usable.
    for (const f of entryFailures) log.warn({ command: f.line, err: f.error }, 'overlay entry not applied');

    this.made.clear();
    this.failed.clear();
    for (const n of plan.networks) {
      const why = broken.get(n.networkId);
      if (why) { this.failed.set(n.networkId, why); log.warn({ network: n.networkId, err: why }, 'overlay network not made'); } else this.made.add(n.networkId);
    }
    return false;
  }

  // Engine networks first: the engine refuses while a container uses one, and
  // then the devices stay too.
  private async teardown(network: string, engineNetworks: string[], links: string[]): Promise<void> {
    const { log } = this.opts;
    for (const id of engineNetworks) {
      try {
        await this.opts.engine.call('DELETE', `/networks/${encodeURIComponent(id)}`, { timeoutMs: this.engineMs });
        log.info({ network, engineNetwork: id }, 'engine network removed');
      } catch (err) {
        if (err instanceof EngineError && err.status === 404) continue;
        log.debug({ network, engineNetwork: id, err: (err as Error).message }, 'engine network kept (in use or refused)');
        this.keptInUse = true;
        return;
      }
    }
    const failures = await this.cmd.runBatch('ip', links);
    // "Cannot find device": the engine removed the bridge with its network.
    for (const f of failures) if (!/Cannot find device/.test(f.error)) log.warn({ network, command: f.line, err: f.error }, 'removing an overlay device failed');
    if (links.length) log.info({ network }, 'overlay network removed from this node');
  }
}

function markFailures(failures: BatchFailure[], plan: OverlayPlan, what: string, broken: Map<string, string>, log: Logger): void {
  for (const f of failures) {
    const n = plan.networks.find((x) => x.links.includes(f.line));
    if (n) broken.set(n.networkId, `${what}: ${f.line}: ${f.error}`);
    else log.warn({ command: f.line, err: f.error }, `overlay ${what} failed`);
  }
}
