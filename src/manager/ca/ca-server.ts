// The CA as a service other nodes call (protocol/ca.ts): the root
// certificate for anyone, a first certificate (and the node's entry in the
// store) for a node with a valid join token, and renewals for known nodes,
// signed with the role the node has now in the store, which is how promote and
// demote reach a node's certificate.
import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import { deepEqual } from '../../common/deep-equal';
import { invalid, notFound, unavailable } from '../../common/errors';
import { newId } from '../../common/ids';
import type { Logger } from '../../common/log';
import { nowIso } from '../../common/time';
import type { Node } from '../../model/types';
import {
  GetRootCACertificate, IssueNodeCertificate, RenewNodeCertificate, WRONG_JOIN_TOKEN,
  type IssueNodeCertificateRequest, type Role,
} from '../../protocol/ca';
import { toManagerList, type KnownManagers } from '../../protocol/checks';
import type { RpcServer } from '../../rpc/transport';
import type { ClusterObject } from '../../store/objects';
import type { Store } from '../../store/store';
import { DEFAULT_NODE_CERT_EXPIRY_NS, signNodeCSR, tlsInfo, type RootCA } from './ca';
import type { Signing } from './signer';

export interface CAServerDeps {
  store: Store;
  ca: () => RootCA;
  // What to sign with (a root rotation: the new CA, with the cross-signed
  // root after each certificate; signer.ts). Without it: `ca` alone.
  signing?: () => Signing;
  log: Logger;
  now: () => number;
  // The managers (host:port) and the leader's address, told to a node that
  // joins so that its first session can go to a manager that does not lead.
  managers?: () => KnownManagers;
  // The heartbeat interval in force (ms), told to a node that joins: its first connection pings at that rate.
  heartbeatMs?: () => number;
}

const DEFAULT_PORT = 2377;

export function registerCAServer(server: RpcServer, deps: CAServerDeps): void {
  const { store, log } = deps;
  const cluster = (): ClusterObject => {
    const c = store.first('cluster');
    if (!c) throw unavailable('rpc error: code = Unavailable desc = the swarm is not initialised on this manager');
    return c;
  };

  const signing = async (): Promise<Signing> => {
    if (deps.signing) return deps.signing();
    const ca = deps.ca();
    return { root: ca, issuer: ca, chain: '', bundle: ca.certPem, tls: await tlsInfo(ca) };
  };

  server.unary(GetRootCACertificate, async () => ({ Certificate: (await signing()).root.certPem }));

  server.unary(IssueNodeCertificate, async (req, ctx) => {
    const c = cluster();
    const role = tokenRole(c, req.Token);
    if (!role) {
      log.warn({ remote: ctx.remoteAddress }, 'join refused: wrong join token');
      throw invalid(WRONG_JOIN_TOKEN);
    }
    const s = await signing();
    const now = deps.now();
    const nodeId = newId();
    // Signed before the node is stored: a bad CSR leaves nothing behind.
    const certPem = await signNodeCSR(s.issuer, req.CSR, nodeId, role, c.ID, expiryNs(c), now);
    const node = newNode(nodeId, role, req, ctx.remoteAddress, s.tls, nowIso(now));
    await store.txn().create('nodes', node).commit();
    log.info({ nodeId, role, addr: node.Status.Addr, hostname: req.Hostname }, 'node joined');
    // The root the token names; during a root rotation the node learns both roots from its first renewal.
    const m = deps.managers?.();
    const managers = m && m.addrs.length ? { Managers: toManagerList(m) } : {};
    const heartbeat = deps.heartbeatMs ? { HeartbeatMs: deps.heartbeatMs() } : {};
    return { NodeID: nodeId, Role: role, ClusterID: c.ID, Certificate: certPem + s.chain, CACertificate: s.root.certPem, ...managers, ...heartbeat };
  });

  server.unary(RenewNodeCertificate, async (req, ctx) => {
    const c = cluster();
    const nodeId = ctx.peer!.nodeId; // 'node' access: a verified certificate of this cluster
    const node = store.get('nodes', nodeId);
    if (!node) throw notFound(`rpc error: code = NotFound desc = node ${nodeId} not found when attempting to renew certificate`);
    const role: Role = node.Spec.Role === 'manager' ? 'manager' : 'worker';
    const s = await signing();
    const certPem = await signNodeCSR(s.issuer, req.CSR, nodeId, role, c.ID, expiryNs(c), deps.now());
    if (role !== ctx.peer!.role) log.info({ nodeId, from: ctx.peer!.role, to: role }, 'node certificate renewed with a new role');
    // What the node holds from now on (its certificate's CA, the roots it
    // trusts): a root rotation's leader counts on it (rotation.ts).
    if (!deepEqual(node.Description.TLSInfo, s.tls)) {
      await store.mutate('nodes', nodeId, (n) => {
        if (deepEqual(n.Description.TLSInfo, s.tls)) return undefined;
        n.Description = { ...n.Description, TLSInfo: s.tls };
        return n;
      });
    }
    // The version the role was read from: a node ignores a certificate older than the role it last heard of.
    return { Certificate: certPem + s.chain, Role: role, NodeVersion: node.Version.Index, CACertificate: s.bundle };
  });
}

// Which token it is, compared in constant time (hashes of equal length, so
// neither the secret nor its length leaks through timing).
function tokenRole(c: ClusterObject, token: string): Role | undefined {
  const h = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();
  const given = h(token);
  const isManager = timingSafeEqual(given, h(c.JoinTokens.Manager));
  const isWorker = timingSafeEqual(given, h(c.JoinTokens.Worker));
  return isManager ? 'manager' : isWorker ? 'worker' : undefined;
}

function expiryNs(c: ClusterObject): number {
  return c.Spec.CAConfig?.NodeCertExpiry || DEFAULT_NODE_CERT_EXPIRY_NS;
}

// 'ip', 'ip:port', '[ipv6]:port' → { ip, port } when it is an address, else undefined.
export function splitAddr(addr: string | undefined): { ip: string; port?: number } | undefined {
  if (!addr) return undefined;
  const br = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(addr);
  if (br) return isIP(br[1]) ? { ip: br[1], port: br[2] ? Number(br[2]) : undefined } : undefined;
  if (isIP(addr)) return { ip: addr };
  const m = /^([^:]+):(\d{1,5})$/.exec(addr);
  if (m && isIP(m[1])) return { ip: m[1], port: Number(m[2]) };
  return undefined;
}

function newNode(id: string, role: Role, req: IssueNodeCertificateRequest, remote: string | undefined, tls: Node['Description']['TLSInfo'], now: string): Node {
  const advertise = splitAddr(req.AdvertiseAddr);
  const addr = advertise?.ip ?? remote ?? '';
  const port = advertise?.port ?? splitAddr(req.ListenAddr)?.port ?? /:(\d{1,5})$/.exec(req.ListenAddr ?? '')?.[1];
  const node: Node = {
    ID: id,
    Version: { Index: 0 },
    CreatedAt: now,
    UpdatedAt: now,
    Spec: { Labels: {}, Role: role, Availability: req.Availability ?? 'active' },
    // The rest of the description comes with the node's first registration.
    Description: {
      Hostname: req.Hostname ?? '',
      Platform: { Architecture: '', OS: '' },
      Resources: {},
      Engine: { EngineVersion: '', Plugins: [] },
      TLSInfo: tls,
    },
    Status: { State: 'unknown', Addr: addr },
  };
  if (role === 'manager') node.ManagerStatus = { Reachability: 'unknown', Addr: `${addr.includes(':') ? `[${addr}]` : addr}:${port ?? DEFAULT_PORT}` };
  return node;
}
