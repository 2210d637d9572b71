import type { ViewNetwork } from '../../../protocol/network-view';

// A network a task asked for (`Overlay.ensure`) before the node's view named
// it is kept on the node for a while without the view. Once the view has
// named it, the view decides: a network it then stops naming goes at once
// (kept to the pin's end, `stack rm` left every stack network on the nodes
// that had run its tasks for 5 minutes).
export interface Pin { net: ViewNetwork; until: number; seen?: boolean }

// Drops the pins that expired or that the view took over and released; the networks still pinned (pure but for marking `seen`).
export function livePins(pins: Map<string, Pin>, viewIds: ReadonlySet<string>, now: number): ViewNetwork[] {
  const out: ViewNetwork[] = [];
  for (const [id, p] of pins) {
    if (viewIds.has(id)) p.seen = true;
    if (p.until < now || (p.seen && !viewIds.has(id))) pins.delete(id);
    else out.push(p.net);
  }
  return out;
}
