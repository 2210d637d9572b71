// When to start etcd again after it exited (pure: no clock, no I/O). A few
// quick exits are restarted fast with a growing delay; many within a window
// is a crash loop (a broken binary, a corrupt data dir, a port taken): then it
// is retried slowly and reported, instead of spinning.
export interface RestartPolicy {
  windowMs: number;         // exits older than this are forgotten
  crashLoopExits: number;   // this many exits within the window is a crash loop
  firstDelayMs: number;     // delay after a lone exit, doubled per recent exit
  maxDelayMs: number;
  crashLoopDelayMs: number; // delay between attempts while crash-looping
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = {
  windowMs: 60_000,
  crashLoopExits: 5,
  firstDelayMs: 200,
  maxDelayMs: 5_000,
  crashLoopDelayMs: 10_000,
};

export interface RestartDecision {
  recentExits: number[];    // the exit times still inside the window (keep these)
  delayMs: number;
  crashLoop: boolean;
}

// `exitTimes` includes the exit that just happened, at `now`.
export function nextRestart(exitTimes: number[], now: number, p: RestartPolicy = DEFAULT_RESTART_POLICY): RestartDecision {
  const recentExits = exitTimes.filter((t) => now - t < p.windowMs);
  const n = Math.max(1, recentExits.length);
  const crashLoop = n >= p.crashLoopExits;
  const delayMs = crashLoop ? p.crashLoopDelayMs : Math.min(p.maxDelayMs, p.firstDelayMs * 2 ** (n - 1));
  return { recentExits, delayMs, crashLoop };
}
