// One string per value for what many objects repeat. JSON.parse gives every
// decoded task its own copy of its service's ID, its node's ID, its states and
// the timestamps it shares with the rest of its batch: at 150,000 tasks those
// copies were 89 MB of a leader's 446 MB of live heap (a heap snapshot,
// docs/SCALE.md). The mirror keeps the first copy it saw and lets the others go.
//
// The table is bounded: when it is full it starts again empty, so at worst a
// value has one copy per generation of the table: never more copies than
// without it, and a table of at most `limit` entries.
export class StringInterner {
  private readonly table = new Map<string, string>();

  constructor(private readonly limit = 50_000) {}

  intern(s: string): string {
    const had = this.table.get(s);
    if (had !== undefined) return had;
    if (this.table.size >= this.limit) this.table.clear();
    this.table.set(s, s);
    return s;
  }

  get size(): number { return this.table.size; }
}
