// A root CA rotation reaches a node as "trust these roots, hold a certificate
// of this CA" (protocol/ca.ts WantedTrust: managers read it from the cluster
// object, workers from their session). While what the node holds differs, it
// renews (the answer brings the certificate and the roots); a failed renewal
// is tried again after a pause, with the latest wish, until it matches.
import type { Logger } from '../common/log';
import { nodeNeedsRenewal, type WantedTrust } from '../protocol/ca';
import type { NodeTls } from '../rpc/grpc';
import { issuedByKey } from './identity';

const RETRY_MS = 10_000;

export interface TrustFollower {
  note(want: WantedTrust): void;
  stop(): void;
}

export function startTrustFollower(opts: { held: () => NodeTls; renew: () => Promise<unknown>; log: Logger; retryMs?: number }): TrustFollower {
  let want: WantedTrust | undefined;
  let running = false;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;

  // Every session message says what is wanted: the signature check is made once per certificate and key.
  let memo: { cert: string; key: string; ok: boolean } | undefined;
  const issuedByWanted = (certPem: string, key: string): boolean => {
    if (memo?.cert !== certPem || memo.key !== key) memo = { cert: certPem, key, ok: issuedByKey(certPem, key) };
    return memo.ok;
  };
  const needed = (): boolean => {
    if (!want) return false;
    const tls = opts.held();
    return nodeNeedsRenewal({ bundle: tls.caPem, issuedByWanted: issuedByWanted(tls.certPem, want.issuerPublicKey) }, want);
  };

  const run = async (): Promise<void> => {
    if (running || stopped) return;
    running = true;
    try {
      for (let i = 0; i < 3 && !stopped && needed(); i++) {
        opts.log.info('the swarm\'s root CA changed: renewing this node\'s certificate');
        await opts.renew();
      }
    } catch (err) {
      opts.log.warn({ err: (err as Error).message }, 'renewal for the new root CA failed; trying again shortly');
    } finally {
      running = false;
    }
    if (!stopped && needed()) {
      clearTimeout(timer);
      timer = setTimeout(() => { void run(); }, opts.retryMs ?? RETRY_MS);
      timer.unref();
    }
  };

  return {
    note: (w) => { want = w; void run(); },
    stop: () => { stopped = true; clearTimeout(timer); },
  };
}
