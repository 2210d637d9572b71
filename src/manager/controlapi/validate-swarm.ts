import type { InitRequest, SwarmSpec } from '../../model/types';
import { invalid } from '../../common/errors';
import { goQuote } from '../../common/go/go-format';

const bad = (msg: string) => invalid(`rpc error: code = InvalidArgument desc = ${msg}`);
const MIN_NODE_CERT_EXPIRY_NS = 3600e9;

// Autolock (the managers' keys wrapped under an unlock key the operator holds)
// is not built: refused at init and update rather than accepted and ignored.
export const AUTOLOCK_UNSUPPORTED =
  'autolock is not supported yet: Shoal keeps this manager\'s keys on disk (mode 0600 in the data root) and cannot lock them; leave --autolock off';

// `swarm init`'s request: its spec as below, and no autolock.
export function validateInitRequest(req: InitRequest): void {
  if (req.Spec) validateSwarmSpec(req.Spec);
  if (req.AutoLockManagers || req.Spec?.EncryptionConfig?.AutoLockManagers) throw invalid(AUTOLOCK_UNSUPPORTED);
}

// `swarm update`'s spec: as below, and autolock stays off.
export function validateSwarmUpdate(spec: SwarmSpec | undefined): asserts spec is SwarmSpec {
  validateSwarmSpec(spec);
  if (spec.EncryptionConfig?.AutoLockManagers) throw invalid(AUTOLOCK_UNSUPPORTED);
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
