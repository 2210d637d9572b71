import { type Cidr, last } from './ipv4';

// The addresses of one network: who holds each. Next-fit from a cursor, so an
// address just released is handed out again as late as possible (a stale DNS
// answer or conntrack entry then points nowhere rather than at a new task).
export class AddressPool {
  private readonly used = new Map<number, string>();
  private cursor: number;
  private readonly first: number;
  private readonly end: number; // last usable address

  constructor(readonly subnet: Cidr, readonly gateway: number) {
    // The network and broadcast addresses are never handed out (a /31 or /32 has none to spare).
    const edges = subnet.bits <= 30;
    this.first = subnet.base + (edges ? 1 : 0);
    this.end = last(subnet) - (edges ? 1 : 0);
    this.cursor = this.first;
  }

  get capacity(): number { return this.end - this.first + 1 - (this.inRange(this.gateway) ? 1 : 0); }
  get inUse(): number { return this.used.size; }

  owner(addr: number): string | undefined { return this.used.get(addr); }

  inRange(addr: number): boolean { return addr >= this.first && addr <= this.end; }

  // Records an address read from the store. False when it is not this
  // network's to give or another owner holds it.
  claim(addr: number, owner: string): boolean {
    if (!this.inRange(addr) || addr === this.gateway) return false;
    const cur = this.used.get(addr);
    if (cur !== undefined && cur !== owner) return false;
    this.used.set(addr, owner);
    return true;
  }

  // A free address (the preferred one when free), or undefined when the network is full.
  allocate(owner: string, preferred?: number): number | undefined {
    if (preferred !== undefined && this.claim(preferred, owner)) return preferred;
    const n = this.end - this.first + 1;
    if (this.used.size >= n) return undefined;
    for (let i = 0; i < n; i++) {
      const a = this.first + ((this.cursor - this.first + i) % n);
      if (a === this.gateway || this.used.has(a)) continue;
      this.used.set(a, owner);
      this.cursor = a + 1 > this.end ? this.first : a + 1;
      return a;
    }
    return undefined;
  }

  release(addr: number, owner: string): void {
    if (this.used.get(addr) === owner) this.used.delete(addr);
  }
}

