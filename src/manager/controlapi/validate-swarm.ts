import type { InitRequest, SwarmSpec } from '../../model/types';
import { invalid } from '../../common/errors';
import { goQuote } from '../../common/go/go-format';

const bad = (msg: string) => invalid(`rpc error: code = InvalidArgument desc = ${msg}`);
const MIN_NODE_CERT_EXPIRY_NS = 3600e9;

// `swarm init`'s request: its spec as below.
export function validateInitRequest(req: InitRequest): void {
  if (req.Spec) validateSwarmSpec(req.Spec);
}

// `swarm update`'s spec: as below.
export function validateSwarmUpdate(spec: SwarmSpec | undefined): asserts spec is SwarmSpec {
  validateSwarmSpec(spec);
}

// A swarm spec as `swarm init` and `swarm update` take it: moby's conversion
// (external CA protocols) and SwarmKit's validateClusterSpec, with their texts.
export function validateSwarmSpec(spec: SwarmSpec | undefined): asserts spec is SwarmSpec {
  if (!spec || typeof spec !== 'object') throw bad('swarm spec must not be empty');
  for (const ca of spec.CAConfig?.ExternalCAs ?? []) {
    const protocol = (ca as { Protocol?: string } | null)?.Protocol ?? '';
    if (protocol.toLowerCase() !== 'cfssl') throw invalid(`invalid protocol: ${goQuote(protocol)}`);
  }
  const hist = spec.Orchestration?.TaskHistoryRetentionLimit;
  if (hist !== undefined && !Number.isInteger(hist)) throw bad('invalid task history retention limit');
  if ((spec.Dispatcher?.HeartbeatPeriod ?? 1) < 0) throw bad('heartbeat period must be positive');
  const expiry = spec.CAConfig?.NodeCertExpiry;
  if (expiry !== undefined && expiry !== 0 && expiry < MIN_NODE_CERT_EXPIRY_NS) throw bad('minimum certificate expiry time is: 1h0m0s');
}
