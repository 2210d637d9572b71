import type { Node } from '../../model/types';
import { JsonText } from '../json-text';

// `GET /nodes` of thousands of nodes serialised every node again on each
// call: 6 MB for 5,000 nodes, held the leader's event loop 0.7 s in one go
// while nodes joined (bench/scale.ts, a CPU profile's stretches). A worker's
// answer depends only on its stored version, so its JSON is kept per node and
// version; managers (a few, with live leader and reachability) are
// serialised each time. The whole answer is kept too, as bytes (7 MB at
// 5,000 nodes): an idle swarm's `node ls` sends the same one again (joining
// and encoding it took 50 ms on a quiet core, far more on a starved follower).
export class NodeListJson {
  private readonly kept = new Map<string, { index: number; json: string }>();
  private last?: { parts: string[]; body: JsonText };

  render(nodes: readonly Node[]): JsonText {
    const parts = nodes.map((n) => {
      if (n.Spec.Role === 'manager') return JSON.stringify(n);
      const hit = this.kept.get(n.ID);
      if (hit && hit.index === n.Version.Index) return hit.json;
      const json = JSON.stringify(n);
      this.kept.set(n.ID, { index: n.Version.Index, json });
      return json;
    });
    // Removed nodes' entries go when the cache outgrows what is listed (an unfiltered list names every node).
    if (this.kept.size > 2 * nodes.length + 100) this.prune(nodes);
    if (this.last && sameParts(this.last.parts, parts)) return this.last.body;
    const body = new JsonText(`[${parts.join(',')}]`);
    this.last = { parts, body };
    return body;
  }

  private prune(listed: readonly Node[]): void {
    const ids = new Set(listed.map((n) => n.ID));
    for (const id of this.kept.keys()) if (!ids.has(id)) this.kept.delete(id);
  }
}

// The same strings in the same order: a kept worker's JSON is the same string
// object (=== is one pointer comparison); a manager's, made anew, compares by content.
function sameParts(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
