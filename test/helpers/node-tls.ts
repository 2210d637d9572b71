import { issueNodeCert, type RootCA } from '../../src/manager/ca/ca';
import type { NodeTls } from '../../src/rpc/grpc';

// A node's TLS material signed by `ca`, valid for a day: what a node holds
// after joining, for tests and benches that talk over the node-to-node channel.
export async function nodeTlsFrom(ca: RootCA, nodeId: string, role: 'manager' | 'worker', clusterId: string): Promise<NodeTls> {
  const c = await issueNodeCert(ca, nodeId, role, clusterId, 24 * 3600e9);
  return { caPem: ca.certPem, certPem: c.certPem, keyPem: c.keyPem };
}
