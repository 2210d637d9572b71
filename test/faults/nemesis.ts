// The nemesis: one fault per round, healed before the round ends. Only one
// host (or one process) is ever hurt at a time, so a three-manager quorum
// always survives.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { killPid } from '../../src/common/proc';
import type { FaultMark } from './checker';
import { daemonPid, etcdPid, lab, leaderOf, restartDaemon, type FaultLab } from './lab';
import type { Rng } from './prng';

export const FAULTS = ['kill-host', 'partition', 'pause-daemon', 'kill-daemon', 'kill-etcd'] as const;
export type FaultKind = (typeof FAULTS)[number];

export interface Round { round: number; kind: FaultKind; target: string; holdMs: number }

// The round's fault (pure given the rng): `kind` forces one (the short form
// runs each kind once); etcd runs only on managers.
export function planRound(rng: Rng, l: Pick<FaultLab, 'hosts' | 'managers'>, round: number, kind?: FaultKind): Round {
  const k = kind ?? rng.pick(FAULTS);
  const target = rng.pick(k === 'kill-etcd' ? l.managers : l.hosts);
  return { round, kind: k, target, holdMs: rng.int(3_000, 10_000) };
}

// Applies the fault, holds it, heals it. Returns the fault's mark (when it
// hit, whether it hit the leader's host).
export async function runRound(l: FaultLab, r: Round, say: (s: string) => void): Promise<FaultMark> {
  const leader = await leaderOf(l);
  const hitLeader = leader === r.target;
  const at = performance.now();
  say(`round ${r.round}: ${r.kind} ${r.target}${hitLeader ? ' (the leader)' : ''} for ${r.holdMs} ms`);
  switch (r.kind) {
    case 'kill-host':
      await lab(l, ['kill', r.target]);
      await sleep(r.holdMs);
      await lab(l, ['start', r.target]);
      break;
    case 'partition':
      await lab(l, ['partition', r.target]);
      await sleep(r.holdMs);
      await lab(l, ['heal', r.target]);
      break;
    case 'pause-daemon': {
      const pid = daemonPid(l, r.target);
      if (!pid) throw new Error(`${r.target}: no daemon to pause`);
      killPid(pid, 'SIGSTOP');
      try { await sleep(r.holdMs); } finally { killPid(pid, 'SIGCONT'); }
      break;
    }
    case 'kill-daemon': {
      const pid = daemonPid(l, r.target);
      if (!pid) throw new Error(`${r.target}: no daemon to kill`);
      killPid(pid, 'SIGKILL');
      await sleep(r.holdMs);
      await restartDaemon(l, r.target);
      break;
    }
    case 'kill-etcd': {
      // The daemon supervises its etcd and restarts it.
      const pid = etcdPid(l, r.target);
      if (!pid) throw new Error(`${r.target}: no etcd to kill`);
      killPid(pid, 'SIGKILL');
      await sleep(r.holdMs);
      break;
    }
  }
  return { round: r.round, kind: r.kind, target: r.target, hitLeader, at };
}
