// What this manager's CA signs with, read from the cluster object: the
// current root (served to joiners, named by join tokens), and while a root
// rotation runs the new root, whose certificates go out followed by the
// cross-signed root (manager/ca/rotation.ts). Keys are opened once per sealed value.
import type { TLSInfo } from '../../model/types';
import type { ClusterObject } from '../../store/objects';
import type { RootCA } from './ca';
import { openCAKey, openSealedCAKey, type Sealer } from './ca-key';
import { trustBundle } from './rotation';

export interface Signing {
  root: RootCA;     // the swarm's root now
  issuer: RootCA;   // signs node certificates: the new root while rotating, else the root
  chain: string;    // PEM sent after each node certificate ('' unless rotating)
  bundle: string;   // the roots a node should trust now
  tls: TLSInfo;     // what a node holding a certificate of `issuer` reports
}

export class ClusterSigner {
  private cache?: { key: string; signing: Signing };

  constructor(private readonly sealer: Sealer) {}

  of(c: ClusterObject): Signing {
    const r = c.RootRotation;
    const key = `${c.TLSInfo.TrustRoot ?? ''}|${c.SealedCAKey ?? c.CAKey ?? ''}|${r?.SealedCAKey ?? ''}|${r?.CACert ?? ''}`;
    if (this.cache?.key === key) return this.cache.signing;
    const root: RootCA = { certPem: c.TLSInfo.TrustRoot ?? '', keyPem: openCAKey(this.sealer, c) };
    const issuer: RootCA = r ? { certPem: r.CACert, keyPem: openSealedCAKey(this.sealer, c.ID, r.SealedCAKey) } : root;
    const signing: Signing = {
      root, issuer, chain: r ? r.CrossSignedCACert : '', bundle: trustBundle(root.certPem, r),
      tls: { TrustRoot: c.TLSInfo.TrustRoot, CertIssuerSubject: c.TLSInfo.CertIssuerSubject, CertIssuerPublicKey: c.TLSInfo.CertIssuerPublicKey },
    };
    this.cache = { key, signing };
    return signing;
  }
}
