import type { ChannelKeepalive } from '../rpc/transport';

// How often a node's channel pings the manager its session is with, from the
// heartbeat interval the dispatcher asks (half the period in force, which
// grows with the swarm: manager/dispatcher/liveness.ts). Pure.
//
// A ping unanswered in time closes the connection and the agent moves to
// another manager. It must do so well within the leader's allowance (three
// intervals), or the leader marks the node down while it is still looking:
// a ping every 0.4 intervals with 0.8 to answer finds a lost manager within
// 1.2 intervals, 40 % of the allowance (3 s at Docker's default 5 s period).
// Pings cost the managers: with a fixed 1 s, an idle swarm of 5,000 nodes
// took 0.26 cores more of the managers' daemons than with these (bench/scale.ts,
// docs/SCALE.md). Scaled with the interval, they stay under 1,250 a second
// at any size (the period grows by 4 ms a node past 1,250 nodes).
export const MIN_PING_MS = 1000; // faster is busy work, and the old fixed rate
// A period of hours (`--dispatcher-heartbeat`) still finds a dead connection within minutes.
export const MAX_PING_MS = 60_000;
const PING_PER_INTERVAL = 0.4;

export function nodeKeepalive(intervalMs: number): ChannelKeepalive {
  const timeMs = Math.min(MAX_PING_MS, Math.max(MIN_PING_MS, Math.round(intervalMs * PING_PER_INTERVAL)));
  return { timeMs, timeoutMs: 2 * timeMs };
}

// Before the first session says the interval: Docker's default period's.
export const INITIAL_KEEPALIVE = nodeKeepalive(2500);

// A connection's keepalive is fixed when it is made, so a new one means a new
// connection and a new session (a registration, and the node's whole task set
// sent again). Worth it only when the rate is off by half or more: a swarm
// growing from 1 to 5,000 nodes moves each node at most twice.
export function needsRetune(held: ChannelKeepalive, wanted: ChannelKeepalive): boolean {
  return Math.max(held.timeMs, wanted.timeMs) >= 2 * Math.min(held.timeMs, wanted.timeMs);
}

// When to move (ms from now; `r` in [0, 1)). The interval changes for every
// node at once, and all of them moving together would be a reconnect storm:
// spread over 10 intervals a node without tasks (a new session costs the
// leader a registration and a TLS handshake), over 60 one with tasks (its
// whole set is sent again). When a swarm passes 1,250 or 3,750 nodes, that
// is some 4 nodes a second with tasks, 25 without. At most an hour.
const MAX_RETUNE_DELAY_MS = 3_600_000;
export function retuneDelayMs(intervalMs: number, hasTasks: boolean, r: number): number {
  return Math.min(MAX_RETUNE_DELAY_MS, Math.floor(r * intervalMs * (hasTasks ? 60 : 10)));
}
