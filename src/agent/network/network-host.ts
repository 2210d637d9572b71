import type { Logger } from '../../common/log';
import type { Task } from '../../model/types';
import type { EngineClient } from '../../engine/client';
import type { NodeNetworkView } from '../../protocol/network-view';
import type { TaskNetworks } from '../task-runner';
import type { NetworkComponent } from './component';
import { Overlay } from './overlay/overlay';

// The node's network components, fed the node's network view (from the
// session with the dispatcher). Views are applied one at a time, each to every
// component in order (the overlay first: the others build on its bridges); a
// view that arrives meanwhile replaces any that was waiting, so only the
// latest is applied next. The latest is applied again now and then, which
// repairs what something else changed (a dockerd restart, an operator).
// It also makes a task's networks on demand before its container is created.

export interface NetworkHostOptions {
  nodeId: string;
  nodeAddr?: string;           // this node's data-path address (else the view's)
  engine: EngineClient;
  log: Logger;
  resyncMs?: number;
}

const DEFAULT_RESYNC_MS = 60_000;

export class NetworkHost implements TaskNetworks {
  readonly overlay: Overlay;
  private readonly components: NetworkComponent[];
  private latest?: NodeNetworkView;
  private waiting = false;
  private busy?: Promise<void>;
  private closed = false;
  private timer?: NodeJS.Timeout;

  constructor(private readonly opts: NetworkHostOptions, more: (base: { nodeId: string; nodeAddr?: string; log: Logger }) => NetworkComponent[] = () => []) {
    const base = { nodeId: opts.nodeId, ...(opts.nodeAddr ? { nodeAddr: opts.nodeAddr } : {}) };
    this.overlay = new Overlay({ ...base, engine: opts.engine, log: opts.log.child({ part: 'overlay' }) });
    // The integrator adds the load balancer and DNS components here (same shape).
    this.components = [this.overlay, ...more({ ...base, log: opts.log })];
    const every = opts.resyncMs ?? DEFAULT_RESYNC_MS;
    this.timer = setInterval(() => { if (this.latest && !this.busy) this.setView(this.latest); }, every);
    this.timer.unref();
  }

  // Takes the node's whole view; resolves once it (or a later one) is applied.
  setView(view: NodeNetworkView): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.latest = view;
    this.waiting = true;
    this.busy ??= this.drain().finally(() => { this.busy = undefined; });
    return this.busy;
  }

  private async drain(): Promise<void> {
    while (this.waiting && !this.closed) {
      this.waiting = false;
      const view = this.latest!;
      for (const c of this.components) {
        try {
          await c.update(view);
        } catch (err) {
          this.opts.log.warn({ component: c.name, err: (err as Error).message }, 'network component update failed');
        }
      }
    }
  }

  ensure(task: Task): Promise<void> {
    return this.overlay.ensure((task.NetworksAttachments ?? []).map((a) => a.Network));
  }

  // The node's networks stay as they are (the containers keep running).
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.busy;
    for (const c of this.components) await c.close().catch((err: unknown) => this.opts.log.warn({ component: c.name, err: (err as Error).message }, 'closing network component failed'));
  }
}
