// The order a pass's new tasks are written in. The dispatcher sends a node
// its new tasks once per batch of store events, so tasks written in slot
// order (spread placement: one task per node, node after node) reached each
// node one message at a time: 30 messages for 30 tasks, each encoded, framed,
// relayed, decoded and checked on its own. Written a node's tasks together,
// a few messages carry them all.
//
// Not all of a node's tasks in one go, though: a node starts its containers
// as they come, and one that got its 30 only with the pass's last write
// would still be starting them long after the others. So a node's tasks go
// in groups of at most PER_NODE, round after round: in each round every node
// gets its next group, in the order the nodes first appear.
export const PER_NODE = 8;

// `items` in write order (see above); `nodeOf` names an item's node, or
// undefined for one not placed yet (those keep their order, first: they wait
// for the scheduler anyway). Stable within a node; nothing added or lost.
export function dispatchOrder<T>(items: readonly T[], nodeOf: (item: T) => string | undefined, perNode = PER_NODE): T[] {
  if (perNode < 1 || !Number.isInteger(perNode)) throw new Error(`perNode must be a whole number of at least 1, got ${perNode}`);
  const unplaced: T[] = [];
  const byNode = new Map<string, T[]>();
  for (const item of items) {
    const node = nodeOf(item);
    if (node === undefined) { unplaced.push(item); continue; }
    let list = byNode.get(node);
    if (!list) byNode.set(node, (list = []));
    list.push(item);
  }
  const out = unplaced;
  // The nodes with items left; a node drops out once its last group is out
  // (one node with thousands of items costs no pass over all the others).
  let left = [...byNode.values()];
  for (let from = 0; left.length; from += perNode) {
    const next: T[][] = [];
    for (const list of left) {
      const to = Math.min(list.length, from + perNode);
      for (let i = from; i < to; i++) out.push(list[i]!);
      if (to < list.length) next.push(list);
    }
    left = next;
  }
  return out;
}
