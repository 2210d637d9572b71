import type { Logger } from '../../common/log';
import type { NodeNetworkView } from '../../protocol/network-view';

// What every node-side network component (overlay, load balancer, DNS) looks
// like to the network host: it is handed the node's whole network view each
// time it changes and brings its part of the node in line with it.
// `update` is idempotent and never throws: a bad item is logged and skipped.
export interface NetworkComponent {
  readonly name: string;
  update(view: NodeNetworkView): Promise<void>;
  close(): Promise<void>;
}

export interface NetworkComponentOptions {
  nodeId: string;
  // This node's data-path address; without it, the address the view gives this node.
  nodeAddr?: string;
  log: Logger;
}
