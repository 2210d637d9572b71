// A --hold in brief (bench/scale.ts): each manager's memory, daemon plus
// etcd, over the samples from some point of the hold on (once a create's
// garbage had its chance to go). Pure: samples in, ranges out.

export interface HeldSample { seconds: number; managers: Array<{ host: string; leader: boolean; daemonMB: number; etcdMB: number }> }
export interface HeldRange { host: string; leader: boolean; samples: number; minMB: number; medianMB: number; maxMB: number }

// How often a held service's managers are sampled.
const HOLD_SAMPLE_MS = 10_000;

// When (ms into a hold) to sample: every HOLD_SAMPLE_MS, and at its end
// (a hold shorter than one period still gives one sample; none without a hold).
export function holdSampleTimes(holdMs: number): number[] {
  const out: number[] = [];
  for (let t = HOLD_SAMPLE_MS; t < holdMs; t += HOLD_SAMPLE_MS) out.push(t);
  if (holdMs > 0) out.push(holdMs);
  return out;
}

// The samples at or after `fromSeconds`; all of them (from 0) when none is
// that late (a hold shorter than that). Says which it used.
export function heldRanges(held: HeldSample[], fromSeconds: number): { fromSeconds: number; ranges: HeldRange[] } {
  const late = held.filter((s) => s.seconds >= fromSeconds);
  const use = late.length ? late : held;
  const byHost = new Map<string, { leader: boolean; totals: number[] }>();
  for (const s of use) {
    for (const m of s.managers) {
      const h = byHost.get(m.host) ?? { leader: false, totals: [] };
      h.leader = m.leader; // as of the latest sample
      h.totals.push(Math.round((m.daemonMB + m.etcdMB) * 10) / 10);
      byHost.set(m.host, h);
    }
  }
  const ranges = [...byHost].map(([host, h]) => {
    const sorted = [...h.totals].sort((a, b) => a - b);
    return { host, leader: h.leader, samples: sorted.length, minMB: sorted[0]!, medianMB: sorted[Math.floor((sorted.length - 1) / 2)]!, maxMB: sorted[sorted.length - 1]! };
  });
  return { fromSeconds: late.length ? fromSeconds : 0, ranges };
}
