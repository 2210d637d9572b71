import type { InitRequest, SwarmSpec } from '../../model/types';
import { invalid } from '../../common/errors';
import { goQuote } from '../../common/go/go-format';

const bad = (msg: string) => invalid(`rpc error: code = InvalidArgument desc = ${msg}`);
const MIN_NODE_CERT_EXPIRY_NS = 3600e9;

// `swarm init`'s request: its spec as below.
export function validateInitRequest(req: InitRequest): void {
  if (req.Spec) validateSwarmSpec(req.Spec);
}

// `swarm update`'s spec: as below (a root CA rotation is read from it by manager/ca/rotation.ts).
export function validateSwarmUpdate(spec: SwarmSpec | undefined): asserts spec is SwarmSpec {
  validateSwarmSpec(spec);
}

// Root rotation to an external CA (a root whose key the swarm does not hold) is not built.
export const EXTERNAL_CA_ROTATION_NOT_BUILT = bad('rotating the root CA with external CAs (--external-ca) is not supported by Shoal: rotate without them, or give the new root\'s key (--ca-cert with --ca-key)').message;

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
