// Root CA rotation, the decisions (state in, decision out; no I/O, no clock):
// what a `swarm update` asks for, the cluster object when a rotation starts
// and when it ends, which nodes still lack a certificate of the new CA, and
// what each node should trust and hold. The control API (start), the leader's
// loop (finish, ca/rotation-loop.ts) and the nodes (daemon) act on them.
//
// While a rotation runs the cluster object holds the new root (RootRotation),
// TLSInfo names the old root as TrustRoot and the new CA as issuer (what
// Docker's CLI compares each node's TLSInfo with), nodes trust both roots,
// and every certificate the CA signs comes from the new CA followed by the new
// root cross-signed by the old key, so that a peer still trusting only the
// old root verifies it. Once every node reports a certificate of the new CA,
// the new root becomes the only one and the join tokens name its digest.
import { invalid } from '../../common/errors';
import type { Node, SwarmSpec, TLSInfo } from '../../model/types';
import { joinTokenDigestPart, parseJoinToken, type WantedTrust } from '../../protocol/ca';
import type { ClusterObject, RootRotation } from '../../store/objects';

const bad = (msg: string) => invalid(`rpc error: code = InvalidArgument desc = ${msg}`);

export type RotationRequest =
  | { kind: 'none' }
  | { kind: 'generate' }                          // a new root made by the swarm (ForceRotate changed)
  | { kind: 'given'; certPem: string; keyPem: string }; // a root the user gives (--ca-cert, --ca-key)

// What a swarm update asks of the root CA, compared with the current cluster.
// External CAs (a root without its key) are not built: refused.
export function rotationRequest(spec: SwarmSpec, current: ClusterObject): RotationRequest {
  const ca = spec.CAConfig ?? {};
  const cert = (ca.SigningCACert ?? '').trim();
  const key = (ca.SigningCAKey ?? '').trim();
  if (key && !cert) throw bad('if a signing CA key is provided, the signing CA cert must also be provided');
  if (cert && !key) {
    throw bad('rotating to a root CA without its key (an external CA, --external-ca) is not supported by Shoal: give the CA key too (--ca-key)');
  }
  if (cert) {
    // The root in use already (with its key): nothing to rotate, as SwarmKit.
    if (!current.RootRotation && cert === (current.TLSInfo.TrustRoot ?? '').trim()) return { kind: 'none' };
    if (current.RootRotation && cert === current.RootRotation.CACert.trim()) return { kind: 'none' };
    return { kind: 'given', certPem: cert + '\n', keyPem: key + '\n' };
  }
  if ((ca.ForceRotate ?? 0) !== (current.Spec.CAConfig?.ForceRotate ?? 0)) return { kind: 'generate' };
  return { kind: 'none' };
}

// The spec as stored: the signing CA's certificate and key never are (the key
// would be in clear); the new root lives in RootRotation, sealed.
export function storedSpec(spec: SwarmSpec): SwarmSpec {
  const out = structuredClone(spec);
  if (out.CAConfig) {
    delete out.CAConfig.SigningCACert;
    delete out.CAConfig.SigningCAKey;
  }
  return out;
}

export interface NewRoot {
  certPem: string;
  crossSignedPem: string; // the new root signed by the current root's key
  sealedKey: string;      // the new root's key, sealed as the cluster's CA key is
  issuer: { CertIssuerSubject: string; CertIssuerPublicKey: string };
}

// The cluster object with a rotation to `root` started (or a running one
// replaced: the nodes then move on to this root instead).
export function startedRotation(c: ClusterObject, root: NewRoot, now: string): ClusterObject {
  const next = structuredClone(c);
  next.RootRotation = { CACert: root.certPem, CrossSignedCACert: root.crossSignedPem, SealedCAKey: root.sealedKey };
  next.RootRotationInProgress = true;
  next.TLSInfo = { TrustRoot: c.TLSInfo.TrustRoot, ...root.issuer };
  next.UpdatedAt = now;
  return next;
}

// The cluster object once the rotation is over: the new root the only one,
// its key the CA key, the join tokens naming its digest (same secrets, as Docker's).
export function finishedRotation(c: ClusterObject, now: string): ClusterObject | undefined {
  const r = c.RootRotation;
  if (!r) return undefined;
  const next = structuredClone(c);
  delete next.RootRotation;
  next.RootRotationInProgress = false;
  next.SealedCAKey = r.SealedCAKey;
  delete next.CAKey;
  next.TLSInfo = { ...c.TLSInfo, TrustRoot: r.CACert };
  next.JoinTokens = { Worker: rederiveJoinToken(c.JoinTokens.Worker, r.CACert), Manager: rederiveJoinToken(c.JoinTokens.Manager, r.CACert) };
  next.UpdatedAt = now;
  return next;
}

// A join token for another root: the same secret, that root's digest.
export function rederiveJoinToken(token: string, rootPem: string): string {
  const t = parseJoinToken(token);
  const digest = joinTokenDigestPart(rootPem);
  return t.version === 1 ? `SWMTKN-1-${digest}-${t.secret}` : `SWMTKN-2-${t.fips ? 1 : 0}-${digest}-${t.secret}`;
}

// Has this node reported what the cluster wants (a certificate of the wanted
// issuer, and the wanted trust root)?
export function nodeConverged(node: Node, want: TLSInfo): boolean {
  const t = node.Description?.TLSInfo ?? {};
  return t.CertIssuerPublicKey === want.CertIssuerPublicKey && t.CertIssuerSubject === want.CertIssuerSubject && t.TrustRoot === want.TrustRoot;
}

export type RotationDecision =
  | { kind: 'idle' }
  | { kind: 'waiting'; pending: string[] }  // nodes without a certificate of the new CA yet
  | { kind: 'finish' };

// The leader's decision: every node (down ones too: a node left with an old
// certificate could not talk to the swarm afterwards) must have renewed.
export function rotationDecision(c: ClusterObject, nodes: Node[]): RotationDecision {
  if (!c.RootRotation) return { kind: 'idle' };
  const pending = nodes.filter((n) => !nodeConverged(n, c.TLSInfo)).map((n) => n.ID).sort();
  return pending.length ? { kind: 'waiting', pending } : { kind: 'finish' };
}

// What every node should hold now: the roots to trust (both while a rotation
// runs), and the CA its certificate should come from.
export function wantedTrust(c: Pick<ClusterObject, 'TLSInfo' | 'RootRotation'>): WantedTrust {
  return { bundle: trustBundle(c.TLSInfo.TrustRoot ?? '', c.RootRotation), issuerPublicKey: c.TLSInfo.CertIssuerPublicKey ?? '' };
}

export function trustBundle(rootPem: string, rotation: RootRotation | undefined): string {
  const one = (pem: string): string => pem.trim() + '\n';
  return rotation ? one(rootPem) + one(rotation.CACert) : one(rootPem);
}
