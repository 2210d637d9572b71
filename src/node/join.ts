// The joining side of the CA protocol: with only a token and a manager's
// address, get the swarm's root CA (checked against the token's digest before
// anything is trusted), make a key, and have a manager sign a certificate for
// it (CN node ID, OU role, O cluster ID) over a channel that trusts that CA only.
import { invalid, isShoalError, unavailable } from '../common/errors';
import type { Logger } from '../common/log';
import { newKeyAndCSR } from '../common/x509';
import { caMismatch, IssueNodeCertificate, parseJoinToken, tokenMatchesCA, type Availability, type IssueNodeCertificateRequest } from '../protocol/ca';
import type { KnownManagers } from '../protocol/checks';
import { fetchRootCA, grpcChannel, type NodeTls } from '../rpc/grpc';
import { RpcError } from '../rpc/transport';
import { describeCert, keyMatchesCert, signedBy } from './identity';

export const DEFAULT_SWARM_PORT = 2377;

export interface MembershipRequest {
  remoteAddrs: string[];
  token: string;
  advertiseAddr?: string;
  dataPathAddr?: string;
  listenAddr?: string;
  availability?: string;
  hostname?: string;
  timeoutMs: number;
  log: Logger;
}

// managers: where the managers are and which leads, as the answering manager said (absent from an older one).
// heartbeatMs: the heartbeat interval in force, as it said (also absent from an older one).
export interface Membership { nodeId: string; clusterId: string; role: 'manager' | 'worker'; tls: NodeTls; managers?: KnownManagers; heartbeatMs?: number }

// 'host' → 'host:2377'; 'host:port' and '[v6]:port' as given.
export function withDefaultPort(addr: string): string {
  if (/^\[[^\]]+\]:\d+$/.test(addr) || /^[^:]+:\d+$/.test(addr)) return addr;
  if (/^\[[^\]]+\]$/.test(addr)) return `${addr}:${DEFAULT_SWARM_PORT}`;
  if (addr.includes(':')) return `[${addr}]:${DEFAULT_SWARM_PORT}`; // a bare IPv6 address
  return `${addr}:${DEFAULT_SWARM_PORT}`;
}

// Where a new node's agent looks for the managers: those the join's answer
// named (their advertised addresses, as every session message lists them),
// and the addresses joined through, which may be the only ones that reach a
// manager until the first session says otherwise.
export function joinedManagers(answered: string[] | undefined, joinedThrough: string[]): string[] {
  return [...new Set([...(answered ?? []), ...joinedThrough.map(withDefaultPort)])];
}

// Tries the managers in order; a refusal (wrong token, CA not the token's) is
// final, an unreachable manager moves on to the next. Bounded by timeoutMs.
export async function requestMembership(opts: MembershipRequest): Promise<Membership> {
  const parsed = parseJoinToken(opts.token); // throws Docker's "invalid join token"
  if (opts.remoteAddrs.length === 0) throw invalid('at least 1 RemoteAddr is required to join');
  let availability: Availability | undefined;
  if (opts.availability) {
    if (opts.availability !== 'active' && opts.availability !== 'pause' && opts.availability !== 'drain') throw invalid(`invalid availability ${opts.availability}`);
    availability = opts.availability;
  }
  const deadline = Date.now() + opts.timeoutMs;
  const left = (): number => Math.max(1, deadline - Date.now());
  const { keyPem, csrPem } = await newKeyAndCSR();
  let lastError: unknown;
  for (const raw of opts.remoteAddrs) {
    if (Date.now() >= deadline) break;
    const addr = withDefaultPort(raw);
    try {
      const caPem = await fetchRootCA(addr, left());
      if (!tokenMatchesCA(parsed, caPem)) throw invalid(caMismatch(parsed.rootDigest));
      const req: IssueNodeCertificateRequest = { Token: opts.token, CSR: csrPem };
      if (availability) req.Availability = availability;
      if (opts.advertiseAddr) req.AdvertiseAddr = opts.advertiseAddr;
      if (opts.dataPathAddr) req.DataPathAddr = opts.dataPathAddr;
      if (opts.listenAddr) req.ListenAddr = opts.listenAddr;
      if (opts.hostname) req.Hostname = opts.hostname;
      const ch = grpcChannel(addr, { caPem, expectRole: 'manager' }, opts.log);
      let res;
      try { res = await ch.unary(IssueNodeCertificate, req, { timeoutMs: left() }); } finally { ch.close(); }
      const tls: NodeTls = { caPem, certPem: res.Certificate, keyPem };
      checkIssued(tls, res);
      opts.log.info({ nodeId: res.NodeID, role: res.Role, clusterId: res.ClusterID, manager: addr }, 'joined the swarm: node certificate issued');
      const managers = res.Managers?.Addrs.length ? { managers: { ...(res.Managers.LeaderAddr ? { leaderAddr: res.Managers.LeaderAddr } : {}), addrs: res.Managers.Addrs } } : {};
      return { nodeId: res.NodeID, clusterId: res.ClusterID, role: res.Role, tls, ...managers, ...(res.HeartbeatMs ? { heartbeatMs: res.HeartbeatMs } : {}) };
    } catch (err) {
      lastError = err;
      if (isShoalError(err) && err.kind !== 'unavailable' && !(err instanceof RpcError && err.rpcKind === 'internal')) throw err;
      opts.log.warn({ err: (err as Error).message, manager: addr }, 'joining through this manager failed');
    }
  }
  if (lastError instanceof Error) throw isShoalError(lastError) ? lastError : unavailable(lastError.message);
  throw unavailable(`timeout joining the swarm: no manager answered within ${opts.timeoutMs} ms`);
}

// What came back must be a certificate of our CA, for our key, saying what the answer says.
function checkIssued(tls: NodeTls, res: { NodeID: string; ClusterID: string; Role: string }): void {
  const bad = (why: string): never => { throw unavailable(`the manager's answer to the join is not usable: ${why}`); };
  if (!signedBy(tls.certPem, tls.caPem)) bad('the certificate is not signed by the swarm CA');
  if (!keyMatchesCert(tls.keyPem, tls.certPem)) bad('the certificate is not for this node\'s key');
  const d = describeCert(tls.certPem);
  if (d.nodeId !== res.NodeID || d.clusterId !== res.ClusterID || d.role !== res.Role) bad('the certificate does not name the node, role and cluster the answer does');
}
