// A binary min-heap of small integers (node or branch indexes) ordered by a
// caller-supplied comparison that reads the caller's own arrays. The
// scheduler only ever changes the key of the top element (it just got a
// task), so `fixTop` is the only re-ordering it needs.
export class IntHeap {
  private items: Int32Array;
  size = 0;

  constructor(capacity: number, private readonly less: (a: number, b: number) => boolean) {
    this.items = new Int32Array(Math.max(1, capacity));
  }

  // Builds the heap from `values` in O(n).
  static from(values: ArrayLike<number>, less: (a: number, b: number) => boolean): IntHeap {
    const h = new IntHeap(values.length, less);
    for (let i = 0; i < values.length; i++) h.items[i] = values[i]!;
    h.size = values.length;
    for (let i = (h.size >> 1) - 1; i >= 0; i--) h.down(i);
    return h;
  }

  get empty(): boolean { return this.size === 0; }
  top(): number { return this.items[0]!; }

  push(v: number): void {
    if (this.size === this.items.length) {
      const bigger = new Int32Array(this.items.length * 2);
      bigger.set(this.items);
      this.items = bigger;
    }
    this.items[this.size] = v;
    this.up(this.size++);
  }

  pop(): number {
    const top = this.items[0]!;
    this.size--;
    if (this.size > 0) {
      this.items[0] = this.items[this.size]!;
      this.down(0);
    }
    return top;
  }

  // The top's key grew: move it down to its place.
  fixTop(): void { if (this.size > 1) this.down(0); }

  private up(i: number): void {
    const it = this.items;
    const v = it[i]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(v, it[p]!)) break;
      it[i] = it[p]!;
      i = p;
    }
    it[i] = v;
  }

  private down(i: number): void {
    const it = this.items;
    const n = this.size;
    const v = it[i]!;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && this.less(it[c + 1]!, it[c]!)) c++;
      if (!this.less(it[c]!, v)) break;
      it[i] = it[c]!;
      i = c;
    }
    it[i] = v;
  }
}
