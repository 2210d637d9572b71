import type { Node } from '../../model/types';

// Which nodes are alive, from heartbeats, on the manager's clock only. Pure:
// the state and the time go in, decisions come out; the dispatcher does the
// timers and the store writes.
//
// Timing, from the cluster's HeartbeatPeriod P (Docker's default 5 s):
//  - the agent beats every P/2 (heartbeatIntervalMs);
//  - a node unheard of for 1.5 × P (allowanceMs) is down.
// Shoal's goal is a lost worker's tasks running elsewhere within 10 s with the
// defaults: detection at 7.5 s leaves 2.5 s for the orchestrator, the
// scheduler and a container start. SwarmKit waits P × 3 (± jitter), 15 s,
// with one beat per P, so one lost beat is not a failure; beating every P/2
// keeps that tolerance within 1.5 × P: two beats in a row may be lost or late
// before a node is declared down.
export const DEFAULT_HEARTBEAT_PERIOD_MS = 5000;
// Below this, beats would be busy work and a GC pause a "failure".
export const MIN_HEARTBEAT_PERIOD_MS = 500;
// After a leader change every agent must notice, find the new leader and
// register again: they get twice the allowance before anyone is declared down.
const LEADER_CHANGE_FACTOR = 2;

export const heartbeatPeriodMs = (periodNs: number | undefined): number =>
  !periodNs || periodNs <= 0 ? DEFAULT_HEARTBEAT_PERIOD_MS : Math.max(MIN_HEARTBEAT_PERIOD_MS, Math.floor(periodNs / 1e6));
export const heartbeatIntervalMs = (periodMs: number): number => Math.floor(periodMs / 2);

// Every beat reaches the leader (relayed or not), and each costs its node, a
// follower and the leader about 0.4 ms of CPU together (bench/scale.ts: an
// idle swarm of 5,000 nodes took 0.75 of the two cores at 1,000 beats a
// second, 0.50 at 400; docs/SCALE.md). So a
// cluster's period grows with its size, in steps of PERIOD_STEP_MS, to keep
// the beats at most MAX_BEATS_PER_SECOND: Docker's default 5 s up to 1,250
// nodes, 20 s up to 5,000 (a lost node is found within 30 s then; Kubernetes'
// default grace is 40 s). Nomad scales its heartbeat TTL the same way. The
// configured period stays what `docker info` shows, and is the floor.
export const MAX_BEATS_PER_SECOND = 500;
export const PERIOD_STEP_MS = 5000;
export function effectivePeriodMs(configuredMs: number, nodes: number): number {
  const neededMs = (nodes * 2 * 1000) / MAX_BEATS_PER_SECOND; // two beats per period
  return neededMs <= configuredMs ? configuredMs : Math.ceil(neededMs / PERIOD_STEP_MS) * PERIOD_STEP_MS;
}
export const allowanceMs = (periodMs: number): number => Math.floor(periodMs * 1.5);
// The period in force, and the interval the agents are asked to beat at, from
// the configured period (ns, the cluster's spec) and the swarm's size: the
// dispatcher's, and the one a join's answer tells.
export const periodInForceMs = (configuredNs: number | undefined, nodes: number): number =>
  effectivePeriodMs(heartbeatPeriodMs(configuredNs), nodes);
export const intervalInForceMs = (configuredNs: number | undefined, nodes: number): number =>
  heartbeatIntervalMs(periodInForceMs(configuredNs, nodes));

// Node ID → the time (ms, manager clock) after which it is down.
export type Liveness = Map<string, number>;

export function heard(state: Liveness, nodeId: string, now: number, periodMs: number): void {
  state.set(nodeId, now + allowanceMs(periodMs));
}

// A node the dispatcher starts to watch without having heard from it (a node
// that joined, every node at a leader change): it gets `factor` allowances.
export function expect(state: Liveness, nodeId: string, now: number, periodMs: number, factor = 1): void {
  if (!state.has(nodeId)) state.set(nodeId, now + allowanceMs(periodMs) * factor);
}

// On becoming leader: every node not already down is expected afresh, so that
// a leader change does not mark nodes down for the time their agents take to
// move to the new leader.
export function startLeading(nodes: readonly Node[], now: number, periodMs: number): Liveness {
  const state: Liveness = new Map();
  for (const n of nodes) if (n.Status?.State !== 'down') expect(state, n.ID, now, periodMs, LEADER_CHANGE_FACTOR);
  return state;
}

// Many nodes falling silent together is more often the managers' side (a
// leader too busy to read heartbeats in time, a network fault near it) than
// that many machines failing at once, and marking them all down moves all
// their tasks at once, which loads the cluster further. So within any one
// allowance, at most DOWN_BURST_MIN or DOWN_BURST_FRACTION of the watched
// nodes (the larger) are marked down; the other expired nodes are looked at
// again when the window has room, and a heartbeat meanwhile saves them.
// (Kubernetes' node controller limits its evictions the same way.) A few
// nodes lost at once, in any cluster, go down at once as before.
export const DOWN_BURST_MIN = 10;
export const DOWN_BURST_FRACTION = 0.1;
// And when most of a large cluster is overdue at once (more than
// DISRUPTION_FRACTION of at least DISRUPTION_MIN_NODES), the fault is almost
// surely the managers' own (an overloaded leader, its network): only
// DOWN_BURST_MIN per allowance are marked down, so that a real loss of that
// many machines still moves their tasks, slowly. (Kubernetes stops evicting
// on a full disruption and slows down on a partial one, from 55 %.)
export const DISRUPTION_MIN_NODES = 50;
export const DISRUPTION_FRACTION = 0.55;

// The times (manager clock) nodes were last marked down, oldest first.
export type DownMarks = number[];

export const downBurst = (watched: number): number => Math.max(DOWN_BURST_MIN, Math.ceil(watched * DOWN_BURST_FRACTION));
export const disrupted = (watched: number, due: number): boolean => watched >= DISRUPTION_MIN_NODES && due > watched * DISRUPTION_FRACTION;

// The nodes whose time is up, within the burst limit, removed from the
// state (the caller marks them down; a node that registers again is watched
// again): returns the nodes to mark down now
// (recorded in `marks`), how many expired nodes were put off, whether most
// were overdue at once (`disrupted`), and the limit that applied.
// `pending` (id, expiry): whether a node is not to be judged now (its relay is
// held up); such nodes are left as they are and counted in `pending`.
export function takeExpired(state: Liveness, marks: DownMarks, now: number, periodMs: number, pending?: (id: string, at: number) => boolean):
  { down: string[]; deferred: number; disrupted: boolean; limit: number; pending: number } {
  const window = allowanceMs(periodMs);
  while (marks.length && marks[0]! <= now - window) marks.shift();
  const watched = state.size + marks.length;
  let held = 0;
  const due = [...state].filter(([id, at]) => at <= now && !(pending?.(id, at) && ++held)).sort((x, y) => x[1] - y[1] || (x[0] < y[0] ? -1 : 1));
  const isDisrupted = disrupted(watched, due.length + marks.length);
  const limit = isDisrupted ? DOWN_BURST_MIN : downBurst(watched);
  const room = Math.max(0, limit - marks.length);
  const down = due.slice(0, room).map(([id]) => id);
  for (const id of down) { state.delete(id); marks.push(now); }
  // The rest wait until the oldest mark leaves the window (at least a beat's interval).
  const later = Math.max(marks.length ? marks[0]! + window : now, now + heartbeatIntervalMs(periodMs));
  for (const [id] of due.slice(room)) state.set(id, later);
  return { down: down.sort(), deferred: due.length - down.length, disrupted: isDisrupted, limit, pending: held };
}

// The manager's own stall (its event loop held up by a long batch or GC for
// `ms`): heartbeats that arrived meanwhile are still queued, so every node gets
// that time back rather than being declared down for the manager's delay.
export function forgive(state: Liveness, ms: number): void {
  forgiveSome(state, [...state.keys()], ms);
}

// The same for the nodes a follower relays (relay.ts): their beats reach the
// leader in that manager's batches, one every few milliseconds while it
// relays many nodes. A longer silence of the batches is that manager's
// stall (its loop held up, its connection to the leader backed up), not its
// nodes'. While it lasts, those of its nodes that were alive when it began
// are not judged (takeExpired's `pending`); when the next batch comes, they
// get the silence back, less what the leader's own stalls gave every node
// meanwhile. Up to one allowance: a relay silent longer is as good as gone,
// and its nodes are judged as any. With few nodes behind a relay, silences
// between batches are normal, and nothing is excused.
export const RELAY_MIN_NODES = 20;
export const RELAY_STALL_MIN_MS = 1000;
export function relayStallMs(silenceMs: number, ownStallsMs: number, relayedNodes: number, periodMs: number): number {
  if (relayedNodes < RELAY_MIN_NODES) return 0;
  const ms = silenceMs - ownStallsMs;
  return ms >= RELAY_STALL_MIN_MS ? Math.min(ms, allowanceMs(periodMs)) : 0;
}
// Whether a relay is in such a silence now (its nodes wait to be judged).
export const relayHeldUp = (silenceMs: number, ownStallsMs: number, relayedNodes: number, periodMs: number): boolean =>
  relayStallMs(silenceMs, ownStallsMs, relayedNodes, periodMs) > 0 && silenceMs - ownStallsMs < allowanceMs(periodMs);

export function forgiveSome(state: Liveness, nodeIds: Iterable<string>, ms: number): void {
  for (const id of nodeIds) {
    const at = state.get(id);
    if (at !== undefined) state.set(id, at + ms);
  }
}

// When the next node may expire (for the caller's timer).
export function nextExpiry(state: Liveness): number | undefined {
  let next: number | undefined;
  for (const at of state.values()) if (next === undefined || at < next) next = at;
  return next;
}

// SwarmKit's text for a node that stopped heartbeating.
export const HEARTBEAT_FAILURE = 'heartbeat failure';
