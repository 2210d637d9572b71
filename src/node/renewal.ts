// Keeps this node's certificate fresh: a renewal is due at a random point
// between 50% and 80% of its validity (as SwarmKit, so that nodes joined
// together do not all renew at once), and at once on `renewNow()` (the node's
// role changed: the manager signs with the role it has in the store now).
// A round tries a few times with growing pauses, then waits a few minutes
// before the next round; nothing retries forever in a tight loop.
import type { Logger } from '../common/log';
import { newKeyAndCSR } from '../common/x509';
import { RenewNodeCertificate } from '../protocol/ca';
import type { NodeTls } from '../rpc/grpc';
import type { RpcChannel } from '../rpc/transport';
import { describeCert, keyMatchesCert, signedBy } from './identity';

export const RENEW_CALL_TIMEOUT_MS = 10_000;
const DEFAULT_RETRY_DELAYS_MS = [1000, 2000, 4000, 8000];
const ROUND_RETRY_MS = 5 * 60_000;
const MAX_TIMER_MS = 2 ** 31 - 1; // setTimeout's limit (about 24.8 days)

export interface CertRenewalOptions {
  identity: () => NodeTls;
  // A channel to a manager; undefined while none is reachable.
  channel: () => RpcChannel | undefined;
  // Persists the new identity and makes it the one in use (server and clients).
  save: (tls: NodeTls) => void;
  log: Logger;
  now?: () => number;
  random?: () => number;
  retryDelaysMs?: number[]; // pauses between the attempts of one round
}

// What a renewal brought: the role signed, and the node object's version the
// CA read it from (0 from a CA that does not say; node/role.ts).
export interface Renewed { role: 'manager' | 'worker'; nodeVersion: number }

export interface CertRenewal {
  renewNow(): Promise<Renewed>;
  stop(): void;
}

// When the next renewal is due, in ms from now (pure).
export function renewalDelayMs(validFrom: number, validTo: number, now: number, random: number): number {
  const span = Math.max(0, validTo - validFrom);
  const at = validFrom + span * (0.5 + 0.3 * Math.min(1, Math.max(0, random)));
  return Math.max(0, at - now);
}

export function startCertRenewal(opts: CertRenewalOptions): CertRenewal {
  const now = opts.now ?? Date.now;
  const random = opts.random ?? Math.random;
  const delays = opts.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let inFlight: Promise<Renewed> | undefined;
  let stopWait: (() => void) | undefined;

  const pause = (ms: number): Promise<void> => new Promise((resolve) => {
    const t = setTimeout(() => { stopWait = undefined; resolve(); }, ms);
    stopWait = () => { clearTimeout(t); resolve(); };
  });

  const attempt = async (): Promise<Renewed> => {
    const ch = opts.channel();
    if (!ch) throw new Error('no manager reachable');
    const current = opts.identity();
    const before = describeCert(current.certPem);
    const { keyPem, csrPem } = await newKeyAndCSR();
    const res = await ch.unary(RenewNodeCertificate, { CSR: csrPem }, { timeoutMs: RENEW_CALL_TIMEOUT_MS });
    // The roots to trust come with the certificate (a root rotation changes them).
    const next: NodeTls = { caPem: res.CACertificate ?? current.caPem, certPem: res.Certificate, keyPem };
    const after = describeCert(next.certPem);
    if (!signedBy(next.certPem, next.caPem) || !keyMatchesCert(keyPem, next.certPem) || after.nodeId !== before.nodeId || after.clusterId !== before.clusterId || after.role !== res.Role) {
      throw new Error('the renewed certificate is not for this node, its key or the swarm CA');
    }
    // Stopped meanwhile (the node switched roles or left): an answer this late must not replace the identity in use.
    if (stopped) throw new Error('certificate renewal stopped');
    opts.save(next);
    opts.log.info({ nodeId: after.nodeId, role: after.role, validTo: new Date(after.validTo).toISOString(), ...(before.role !== after.role ? { previousRole: before.role } : {}) }, 'node certificate renewed');
    return { role: res.Role, nodeVersion: res.NodeVersion ?? 0 };
  };

  // One round: a few attempts; the last error if all fail.
  const round = async (): Promise<Renewed> => {
    let last: unknown;
    for (let i = 0; i <= delays.length && !stopped; i++) {
      try { return await attempt(); } catch (err) {
        last = err;
        opts.log.warn({ err: (err as Error).message, attempt: i + 1 }, 'certificate renewal failed');
        if (i < delays.length) await pause(delays[i]);
      }
    }
    throw last ?? new Error('certificate renewal stopped');
  };

  const run = (): Promise<Renewed> => {
    if (!inFlight) {
      clearTimeout(timer);
      inFlight = round().then(
        (r) => { inFlight = undefined; schedule(); return r; },
        (err: unknown) => { inFlight = undefined; schedule(true); throw err; },
      );
    }
    return inFlight;
  };

  const schedule = (failed = false): void => {
    if (stopped) return;
    clearTimeout(timer);
    let delay: number;
    try {
      const d = describeCert(opts.identity().certPem);
      delay = renewalDelayMs(d.validFrom, d.validTo, now(), random());
      if (d.validTo <= now()) opts.log.error({ validTo: new Date(d.validTo).toISOString() }, 'node certificate has expired: renewing (a manager refuses it if it has been removed)');
    } catch (err) {
      opts.log.error({ err }, 'cannot read the node certificate\'s validity');
      delay = ROUND_RETRY_MS;
    }
    if (failed) delay = Math.max(delay, ROUND_RETRY_MS);
    timer = setTimeout(() => {
      // Long validities are waited for in steps (timer limit).
      if (delay > MAX_TIMER_MS) { schedule(); return; }
      run().catch((err: unknown) => opts.log.error({ err: (err as Error).message }, 'certificate renewal round failed; next round in a few minutes'));
    }, Math.min(delay, MAX_TIMER_MS));
    timer.unref();
  };

  schedule();
  return {
    renewNow: () => (stopped ? Promise.reject(new Error('certificate renewal stopped')) : run()),
    stop: () => { stopped = true; clearTimeout(timer); stopWait?.(); },
  };
}
