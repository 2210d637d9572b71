// Brings this node to the role the store last gave it (promotion, demotion):
// role notices are kept newest-first (node/role.ts), and one loop at a time
// renews the certificate (the CA signs the role its mirror holds), switches
// only on a certificate signed from the wanted version or a later one, then
// decides again, since the role may have changed during a switch. The
// switch itself (etcd, store, agents) is the caller's `become`.
import type { Logger } from '../common/log';
import type { NodeRole } from '../model/types';
import { decideRoleStep, newerNotice, type RoleNotice } from './role';

export interface RoleSwitchOptions {
  running(): NodeRole | undefined;       // what this node runs now (undefined: not in a swarm)
  renew(): Promise<RoleNotice>;          // a renewal: the role signed, the node version it was read from
  become(role: NodeRole): Promise<void>; // one switch, with the certificate on disk for that role
  log: Logger;
  renewals?: number;                     // renewals in a row on a certificate older than the role wanted
  renewPauseMs?: number;                 // pause before the n-th of them: n × this
  retryMs?: number;                      // then (or after a failed switch) a new try after this
}

export class RoleSwitch {
  private desired?: RoleNotice;
  private looping?: Promise<void>;
  private retry?: NodeJS.Timeout;
  private stopped = false;
  private dirty = false; // a notice came while the loop ran

  constructor(private readonly opts: RoleSwitchOptions) {}

  get wanted(): RoleNotice | undefined { return this.desired; }

  // A notice of this node's role (mirror, session, renewal): kept if newer, then acted on.
  note(notice: RoleNotice): void {
    const before = this.desired;
    this.desired = newerNotice(before, notice);
    if (before && this.desired !== before && before.role !== notice.role) {
      this.opts.log.info({ role: notice.role, version: notice.version, was: before.role, wasVersion: before.version }, 'role notice');
    }
    if (this.looping) this.dirty = true; else this.kick();
  }

  // Resolves when no switch is running (tests).
  async idle(): Promise<void> { while (this.looping) await this.looping; }

  // Left the swarm: notices were about that membership's node object.
  reset(): void { this.desired = undefined; clearTimeout(this.retry); }

  stop(): void { this.stopped = true; clearTimeout(this.retry); }

  private kick(): void {
    if (this.looping || this.stopped) return; // the running loop decides again after its step
    clearTimeout(this.retry);
    this.dirty = false;
    this.looping = this.loop().finally(() => {
      this.looping = undefined;
      // A notice between the loop's last decision and now has not been looked at.
      if (this.dirty) this.kick();
    });
  }

  private async loop(): Promise<void> {
    const renewals = this.opts.renewals ?? 5;
    const pauseMs = this.opts.renewPauseMs ?? 500;
    let cert: RoleNotice | undefined;
    let renewed = 0;
    try {
      while (!this.stopped) {
        const running = this.opts.running();
        if (!running) return;
        const step = decideRoleStep({ running, desired: this.desired, cert });
        if (step.kind === 'stay') return;
        if (step.kind === 'renew') {
          if (renewed >= renewals) {
            this.opts.log.warn({ want: step.want, version: this.desired?.version, cert }, 'no certificate with the role wanted yet; retried shortly');
            this.retryLater();
            return;
          }
          // A renewal right away would likely reach a CA as far behind: a growing pause.
          if (renewed > 0) await new Promise((r) => setTimeout(r, pauseMs * renewed));
          renewed++;
          cert = await this.opts.renew();
          this.desired = newerNotice(this.desired, cert);
          continue;
        }
        await this.opts.become(step.to);
        cert = undefined;
        renewed = 0;
      }
    } catch (err) {
      this.opts.log.error({ err: (err as Error).message, want: this.desired?.role }, 'role change failed; retried shortly');
      this.retryLater();
    }
  }

  private retryLater(): void {
    if (this.stopped) return;
    clearTimeout(this.retry);
    this.retry = setTimeout(() => this.kick(), this.opts.retryMs ?? 5_000);
    this.retry.unref();
  }
}
