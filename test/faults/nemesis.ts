// The nemesis: one fault per round, healed before the round ends. Every kind
// but one hurts one host (or one process), so a three-manager quorum
// survives; `lose-quorum` powers off or cuts off two of the three managers'
// hosts at once: no write may be acknowledged until they are back.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { killPid } from '../../src/common/proc';
import type { FaultMark } from './checker';
import { daemonPid, etcdPid, lab, leaderOf, restartDaemon, type FaultLab } from './lab';
import type { Rng } from './prng';

export const FAULTS = ['kill-host', 'partition', 'pause-daemon', 'kill-daemon', 'kill-etcd', 'lose-quorum'] as const;
export type FaultKind = (typeof FAULTS)[number];

// lose-quorum: `target` and `second` are two managers' hosts, `how` what is done to both.
export interface Round { round: number; kind: FaultKind; target: string; second?: string; how?: 'kill-host' | 'partition'; holdMs: number }

// The round's fault (pure given the rng): `kind` forces one (the short form
// runs each kind once); etcd runs only on managers.
export function planRound(rng: Rng, l: Pick<FaultLab, 'hosts' | 'managers'>, round: number, kind?: FaultKind): Round {
  const k = kind ?? rng.pick(FAULTS);
  if (k === 'lose-quorum') {
    const target = rng.pick(l.managers);
    const second = rng.pick(l.managers.filter((h) => h !== target));
    return { round, kind: k, target, second, how: rng.pick(['kill-host', 'partition'] as const), holdMs: rng.int(3_000, 10_000) };
  }
  const target = rng.pick(k === 'kill-etcd' ? l.managers : l.hosts);
  return { round, kind: k, target, holdMs: rng.int(3_000, 10_000) };
}

// Applies the fault, holds it, heals it. Returns the fault's mark (when it
// hit, whether it hit the leader's host). `onLeaderHit` runs once a fault on
// the leader's host is in place (run.ts starts its failover probe).
export async function runRound(l: FaultLab, r: Round, say: (s: string) => void, onLeaderHit?: () => void): Promise<FaultMark> {
  const leader = await leaderOf(l);
  const hitLeader = leader === r.target;
  // When the fault was in place (its command done): failover counts from there.
  let inPlace: number | undefined;
  const hit = (): void => { inPlace = performance.now(); if (hitLeader) onLeaderHit?.(); };
  const at = performance.now();
  say(`round ${r.round}: ${r.kind} ${r.target}${r.second ? ` and ${r.second} (${r.how})` : ''}${hitLeader ? ' (the leader)' : ''} for ${r.holdMs} ms`);
  switch (r.kind) {
    case 'lose-quorum': {
      // Both hurt before the window opens, the window closed before either heals:
      // a write sent and answered inside it had no quorum to commit with.
      const hosts = [r.target, r.second!];
      const [hurt, heal] = r.how === 'partition' ? ['partition', 'heal'] : ['kill', 'start'];
      try {
        for (const h of hosts) await lab(l, [hurt!, h]);
        const lost = performance.now();
        await sleep(r.holdMs);
        const healed = performance.now();
        return { round: r.round, kind: r.kind, target: hosts.join('+'), hitLeader: false, at, quorumLost: { from: lost, to: healed } };
      } finally {
        // Heal both even when one heal fails; the first failure is the round's.
        const errors: Error[] = [];
        for (const h of hosts) await lab(l, [heal!, h]).catch((e: Error) => { errors.push(e); });
        if (errors[0]) throw errors[0];
      }
    }
    case 'kill-host':
      await lab(l, ['kill', r.target]);
      hit();
      await sleep(r.holdMs);
      await lab(l, ['start', r.target]);
      break;
    case 'partition':
      await lab(l, ['partition', r.target]);
      hit();
      await sleep(r.holdMs);
      await lab(l, ['heal', r.target]);
      break;
    case 'pause-daemon': {
      const pid = daemonPid(l, r.target);
      if (!pid) throw new Error(`${r.target}: no daemon to pause`);
      killPid(pid, 'SIGSTOP');
      hit();
      try { await sleep(r.holdMs); } finally { killPid(pid, 'SIGCONT'); }
      break;
    }
    case 'kill-daemon': {
      const pid = daemonPid(l, r.target);
      if (!pid) throw new Error(`${r.target}: no daemon to kill`);
      killPid(pid, 'SIGKILL');
      hit();
      await sleep(r.holdMs);
      await restartDaemon(l, r.target);
      break;
    }
    case 'kill-etcd': {
      // The daemon supervises its etcd and restarts it.
      const pid = etcdPid(l, r.target);
      if (!pid) throw new Error(`${r.target}: no etcd to kill`);
      killPid(pid, 'SIGKILL');
      hit();
      await sleep(r.holdMs);
      break;
    }
  }
  return { round: r.round, kind: r.kind, target: r.target, hitLeader, at, ...(inPlace !== undefined ? { inPlace } : {}) };
}
