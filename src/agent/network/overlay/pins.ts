import type { NodeNetworkView, ViewNetwork } from '../../../protocol/network-view';

// A network a task asked for (`Overlay.ensure`) before the node's view named
// it is kept on the node for a while without the view. Once the view names
// it, the pin goes and the view decides: a network it then stops naming goes
// at once (kept to the pin's end, `stack rm` left every stack network on the
// nodes that had run its tasks for 5 minutes, and its VNI may be handed to
// another network).
export interface Pin { net: ViewNetwork; until: number }

// A new view: the pins of the networks it names go.
export function viewTakesOver(pins: Map<string, Pin>, view: Pick<NodeNetworkView, 'Networks'>): void {
  for (const n of view.Networks) pins.delete(n.ID);
}

// Drops the expired pins; the networks still pinned.
export function livePins(pins: Map<string, Pin>, now: number): ViewNetwork[] {
  const out: ViewNetwork[] = [];
  for (const [id, p] of pins) {
    if (p.until < now) pins.delete(id);
    else out.push(p.net);
  }
  return out;
}
