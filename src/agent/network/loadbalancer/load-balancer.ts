// The node's load balancer: keeps the `ip shoal` nftables table equal to what
// the network view asks for (ruleset.ts), replaced whole in one `nft -f -`
// transaction and only when its text changes; then drops the conntrack
// entries of backends that went away, keeps dockerd's FORWARD chain from
// dropping balanced traffic (forward-accept.ts), lets the mesh answer on
// 127.0.0.1 (localnet.ts) and a task reach itself through its own service
// (hairpin.ts). Acts on the network namespace the process runs in.
import type { Logger } from '../../../common/log';
import { run } from '../../../common/run';
import type { NodeNetworkView } from '../../../protocol/network-view';
import { staleFlowDeletes } from './conntrack';
import { ensureForwardAccept, removeForwardAccept, type Exec } from './forward-accept';
import { enableHairpin } from './hairpin';
import { disableRouteLocalnet, enableRouteLocalnet } from './localnet';
import { buildRuleset, removeTransaction, replaceTransaction, type Frontend } from './ruleset';

export interface LoadBalancerOptions {
  nodeId: string;
  nodeAddr?: string;
  log: Logger;
  exec?: Exec;   // how commands run (default: here; tests wrap them in nsenter)
}

const NFT_TIMEOUT_MS = 15_000;
const CONNTRACK_TIMEOUT_MS = 5_000;
// Past this many (frontend, backend) pairs in one change, the rest of the
// stale entries are left to expire on their own rather than hold up the update.
export const MAX_CONNTRACK_DELETES = 256;

export class LoadBalancer {
  readonly name = 'loadbalancer';
  private readonly exec: Exec;
  private readonly log: Logger;
  private applied: string | undefined;
  private frontends: Frontend[] = [];
  private readonly localnet = new Set<string>();
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(private readonly opts: LoadBalancerOptions) {
    this.exec = opts.exec ?? run;
    this.log = opts.log.child({ part: 'loadbalancer' });
  }

  // The whole desired state each time; never throws (errors are logged, the next update retries).
  async update(view: NodeNetworkView): Promise<void> {
    await this.serial(() => this.apply(view));
  }

  // Removes the table, the FORWARD rule and route_localnet; later updates do nothing.
  async close(): Promise<void> {
    await this.serial(async () => {
      if (this.closed) return;
      this.closed = true;
      const r = await this.exec('nft', ['-f', '-'], { input: removeTransaction(), timeoutMs: NFT_TIMEOUT_MS });
      if (r.code !== 0) this.log.error({ stderr: r.stderr.trim() }, 'cannot remove the load balancer table');
      await removeForwardAccept(this.exec);
      await disableRouteLocalnet(this.exec, [...this.localnet]);
      this.localnet.clear();
      this.applied = undefined;
      this.frontends = [];
    });
  }

  // Writes the table if its text changed; true if it wrote. Errors are logged here.
  async apply(view: NodeNetworkView): Promise<boolean> {
    if (this.closed) return false;
    const rs = buildRuleset(view, this.opts.nodeId);
    let wrote = false;
    if (rs.text !== this.applied) {
      for (const w of rs.warnings) this.log.warn(w);
      const r = await this.exec('nft', ['-f', '-'], { input: replaceTransaction(rs.text), timeoutMs: NFT_TIMEOUT_MS });
      if (r.code !== 0) {
        this.log.error({ code: r.code, stderr: r.stderr.trim().slice(0, 2000) }, 'nft refused the load balancer table; the previous one stays');
        return false;
      }
      const stale = staleFlowDeletes(this.frontends, rs.frontends);
      this.applied = rs.text;
      this.frontends = rs.frontends;
      wrote = true;
      this.log.debug({ frontends: rs.frontends.length, stale: stale.length }, 'load balancer table replaced');
      await this.dropStale(stale);
    }
    if (rs.frontends.length) {
      const err = await ensureForwardAccept(this.exec);
      if (err) this.log.error({ err }, 'cannot let balanced traffic through FORWARD');
    }
    const { changed, errors } = await enableRouteLocalnet(this.exec, rs.localnetAddrs);
    for (const c of changed) this.localnet.add(c);
    for (const e of errors) this.log.error({ err: e }, 'cannot enable the routing mesh on 127.0.0.1');
    for (const e of await enableHairpin(this.exec, rs.hairpinAddrs)) this.log.error({ err: e }, 'cannot let a task reach itself through its service');
    return wrote;
  }

  private async dropStale(deletes: string[][]): Promise<void> {
    if (deletes.length > MAX_CONNTRACK_DELETES) {
      this.log.warn({ stale: deletes.length, dropped: MAX_CONNTRACK_DELETES }, 'too many removed backends at once; the other conntrack entries expire by themselves');
    }
    for (const args of deletes.slice(0, MAX_CONNTRACK_DELETES)) {
      // Exit 1 with "0 flow entries have been deleted" is the common, fine case.
      const r = await this.exec('conntrack', args, { timeoutMs: CONNTRACK_TIMEOUT_MS });
      if (r.code !== 0 && r.code !== 1) this.log.warn({ args, code: r.code, stderr: r.stderr.trim() }, 'conntrack -D failed');
    }
  }

  private serial(fn: () => Promise<unknown>): Promise<unknown> {
    const next = this.queue.then(fn).catch((err: unknown) => this.log.error({ err }, 'load balancer step failed'));
    this.queue = next;
    return next;
  }
}
