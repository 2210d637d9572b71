import type { InitRequest, SwarmSpec } from '../../model/types';
import { invalid } from '../../common/errors';
import { goQuote } from '../../common/go/go-format';

const bad = (msg: string) => invalid(`rpc error: code = InvalidArgument desc = ${msg}`);
const MIN_NODE_CERT_EXPIRY_NS = 3600e9;

// `swarm init`'s request: its spec as below.
export function validateInitRequest(req: InitRequest): void {
  if (req.Spec) validateSwarmSpec(req.Spec);
}

// Root CA rotation (`docker swarm ca --rotate`: a new ForceRotate, or a
// signing CA given) is not built: refused rather than accepted and ignored
// (the CLI would wait on a rotation that never starts, or print the old root).
export const CA_ROTATION_NOT_BUILT = bad('root CA rotation (docker swarm ca --rotate) is not built yet in Shoal: the swarm keeps its root CA').message;

// `swarm update`'s spec: as below, and no root CA rotation (compared with the current spec).
export function validateSwarmUpdate(spec: SwarmSpec | undefined, current?: SwarmSpec): asserts spec is SwarmSpec {
  validateSwarmSpec(spec);
  const ca = spec.CAConfig ?? {};
  if ((ca.ForceRotate ?? 0) !== (current?.CAConfig?.ForceRotate ?? 0) || ca.SigningCACert || ca.SigningCAKey) throw invalid(CA_ROTATION_NOT_BUILT);
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
