// How long a small write may go unanswered before the store looks for its
// outcome and sends it again (Store.commitOps). A second suits a healthy etcd,
// where no answer most likely means the etcd leader that had the write died.
// On a loaded etcd writes take seconds, and a fixed second turned each slow
// write into an outcome read and a resend (3,389 in five minutes on a leader
// at 5,000 nodes), which loaded it further. So the wait follows the writes
// seen lately: QUICK_FACTOR times the slowest of the last SAMPLES answers,
// between QUICK_MIN_MS and QUICK_MAX_MS. No clock here: callers give durations.
export const QUICK_MIN_MS = 1_000;
export const QUICK_MAX_MS = 5_000;
const QUICK_FACTOR = 3;
const SAMPLES = 32;

export class WriteLatency {
  private readonly recent: number[] = [];
  private next = 0;

  // A write's time from sent to known applied (answered, or found applied).
  note(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) return;
    if (this.recent.length < SAMPLES) this.recent.push(ms);
    else this.recent[this.next] = ms;
    this.next = (this.next + 1) % SAMPLES;
  }

  quickTimeoutMs(): number {
    let slowest = 0;
    for (const ms of this.recent) if (ms > slowest) slowest = ms;
    return Math.min(QUICK_MAX_MS, Math.max(QUICK_MIN_MS, Math.ceil(slowest * QUICK_FACTOR)));
  }
}
