import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import type { InitRequest, Node, NodeDescription, NodeRole, SwarmInfo } from '../model/types';
import type { SwarmMembership } from '../api/routes/membership';
import { ALREADY_IN_SWARM, JOIN_TIMEOUT, SWARM_NOT_MANAGER, conflict, internal, invalid, isShoalError, LEAVE_LAST_MANAGER, NOT_A_MANAGER, NOT_IN_SWARM, unauthorized, unavailable } from '../common/errors';
import { newId } from '../common/ids';
import type { Logger } from '../common/log';
import { nowIso } from '../common/time';
import { certSubjectFields, createRootCA, issueEtcdCert, issueNodeCert, newJoinToken, tlsInfo, type RootCA } from '../manager/ca/ca';
import { openCAKey, sealCAKey, withSealedCAKey } from '../manager/ca/ca-key';
import { ControlApi } from '../manager/controlapi';
import { newIngressNetwork } from '../manager/controlapi/networks';
import { validateInitRequest } from '../manager/controlapi/validate-swarm';
import { clusterOf, defaultSwarmSpec, mergeSwarmSpec, publicSwarm } from '../manager/controlapi/cluster';
import { loadDataKey, SecretBox, writeDataKey } from '../manager/controlapi/secret-box';
import { EtcdBackend } from '../store/etcd-backend';
import { seedStore } from '../store/seed';
import { decodeBackup, encodeBackup } from '../store/backup-file';
import { etcdClientOptions, EtcdProcess, type EtcdTls } from '../store/etcd-process';
import type { ClusterObject } from '../store/objects';
import { Store, type Fence } from '../store/store';
import { resolveAdvertiseAddr } from './address';
import { EtcdBackend as EtcdAdmin } from '../store/etcd-backend';
import { GrpcServer, grpcChannel, MANAGER_CHANNEL, type NodeTls } from '../rpc/grpc';
import { registerCAServer } from '../manager/ca/ca-server';
import { intervalInForceMs } from '../manager/dispatcher/liveness';
import { registerMembershipServer } from '../manager/leader/membership-server';
import { startMemberUpkeep } from '../manager/leader/members';
import { Election, type LeaderComponents } from '../manager/leader/election';
import { JoinManager } from '../protocol/membership';
import { joinedManagers, requestMembership } from '../node/join';
import { managerList } from './manager-list';
import { peekIdentity, readIdentity, writeIdentity } from '../node/identity';
import { isKeyLockError, writeKeyFiles } from '../node/key-lock';
import { newUnlockKey, parseUnlockKey, sealUnlockKey, wantedUnlockKey } from '../manager/ca/unlock-key';
import { ManagerKeys } from './manager-keys';
import { turbofanForManager } from './tiering';
import { startCertRenewal, type CertRenewal } from '../node/renewal';
import { startTrustFollower, type TrustFollower } from '../node/trust-follower';
import { issuedByKey, pemCertificates } from '../node/identity';
import { ClusterSigner, type Signing } from '../manager/ca/signer';
import { wantedTrust } from '../manager/ca/rotation';
import { startRotationLoop } from '../manager/ca/rotation-loop';
import type { WantedTrust } from '../protocol/ca';
import type { KnownManagers } from '../protocol/checks';
import type { RoleNotice } from '../node/role';
import { RoleSwitch } from '../node/role-switch';
import { ETCD_CERT_NAME } from '../manager/ca/ca';
import { LEADER_KEY, objectKey, PRESENCE, presenceKey } from '../store/keys';
import type { ChannelKeepalive, RpcChannel, RpcServer } from '../rpc/transport';
import { INVALID_UNLOCK_KEY, LEAVE_LOCKED, SWARM_LOCKED, leaveManagerMessage, NO_LEADER, nodeAddrFromListen, parseListenAddr, readSwarmState, requestedListenAddr, writeSwarmState, type SwarmState } from './swarm-state';

// How long a starting manager waits for its store to take a write (a leader).
const ACTIVATE_STORE_WAIT_MS = 60_000;
// How long `swarm init` and `join` wait for this node's agent to register
// with the leader's dispatcher (Docker's join gives up after as long).
const REGISTER_WAIT_MS = 20_000;

// How long a demoted or leaving manager tries to remove its own etcd member.
const LEAVE_ETCD_MS = 8_000;

export interface SwarmNodeOptions {
  dataRoot: string;
  etcdBinary: string;
  etcdClientUrl: string;
  etcdPeerUrl: string;       // its port is the etcd peer port; it listens on the advertise address
  hostname?: string;
  // dockerd's --swarm-default-advertise-addr and the defaults of init/join.
  listenAddr?: string;       // default 0.0.0.0:2377
  advertiseAddr?: string;
  dataPathAddr?: string;
  // Where the clear copy of etcd's key lives while etcd runs (tmpfs; manager-keys.ts).
  runtimeRoot?: string;
  log: Logger;
  // Node facts from the engine (agent/executor), the components that run on
  // every manager (agent, event stream), and those that run on the leader
  // only, given a fenced store (orchestrators, scheduler, dispatcher).
  describeNode(): Promise<NodeDescription>;
  startComponents(ctx: { store: Store; nodeId: string; log: Logger; rpc: NodeRpc }): Promise<RunningComponents>;
  startLeaderComponents(ctx: { store: Store; nodeId: string; log: Logger }): Promise<RunningComponents>;
  // A worker: its agent only (no etcd, no store).
  startWorkerComponents(ctx: { nodeId: string; log: Logger; rpc: Omit<NodeRpc, 'server'> }): Promise<RunningComponents>;
  // Removes the containers of this node's tasks (leaving a swarm does that).
  removeTaskContainers(nodeId: string): Promise<void>;
  // Then Shoal's networking on this node: engine networks, overlay devices,
  // the nftables table, the DNS link (agent/network/leave.ts). Never throws.
  removeNodeNetworks(nodeId: string): Promise<void>;
}

export interface RunningComponents {
  stop(): Promise<void>;
  // Whether this node's agent holds a session with the leader's dispatcher
  // (its registration written) within `timeoutMs`.
  registered?(timeoutMs: number): Promise<boolean>;
  // Told when this manager starts leading (the fenced store of its term) and stops (undefined).
  setLeading?(fenced: Store | undefined): void;
}

// The node-to-node channel as the components use it.
export interface NodeRpc {
  server: RpcServer;                                       // this manager's services (dispatcher ...)
  connect(addr: string, keepalive?: ChannelKeepalive): RpcChannel; // mutual TLS with this node's certificate; keepalive: the agent's session's pings
  // Between managers (the dispatcher's relay to the leader): keepalive as lenient as a server's.
  // A leader held up for 2 s (a big batch, GC on a starved host) dropped every follower's
  // relay channel at the 2 s client keepalive, and with it every relayed node's session.
  connectManager?(addr: string): RpcChannel;
  // host:port of the managers known now. A manager's come from its store (its dispatcher
  // reads them for session messages). A worker's are its saved list and the leader the
  // join's answer named, read once as its agent starts; session messages keep both after.
  managers(): KnownManagers;
  // The heartbeat interval the join's answer named, read once as its agent starts (a session message says it after).
  heartbeatMs?: number;
  onManagers?(addrs: string[]): void;                      // the dispatcher's latest list (kept for restarts)
  onRole?(role: 'manager' | 'worker', version?: number): void; // the role the managers give this node, and the node object's version
  onRootCA?(want: WantedTrust): void;                      // the roots to trust and the CA to be certified by (root rotation)
}

interface Active {
  nodeId: string;
  clusterId: string;
  ca: RootCA;
  addr: string;
  etcd: EtcdProcess;
  store: Store;
  control: ControlApi;
  dataKey: Buffer;
  tls: NodeTls;
  admin: EtcdAdmin;          // etcd's member API (the store's backend)
  server?: GrpcServer;       // the node-to-node channel on the listen address
  election?: Election;
  components?: RunningComponents;
  renewal?: CertRenewal;
  trust?: TrustFollower;
  unwatch?: () => void;
}

// This node's membership of a swarm: init, restore after a restart, leave.
// While active it owns the local etcd member, the store, and the components.
// The node certificate on disk is what says "this node is in a swarm": it is
// written last on init, read first on start, and removed on leave.
export class SwarmNode implements SwarmMembership {
  private active?: Active;
  // A worker's membership (its identity on disk); no store, no etcd.
  private worker?: { nodeId: string; clusterId: string; tls: NodeTls; state?: SwarmState; components?: RunningComponents; renewal?: CertRenewal; trust?: TrustFollower };
  // Opens the cluster's CA keys (current root, a rotation's new root) with this manager's data key.
  private signer?: { dataKey: Buffer; signer: ClusterSigner };
  private busy: Promise<unknown> = Promise.resolve();
  // Autolock: the unlock key this manager's key files are wrapped under now
  // (undefined: in clear), and, while nothing runs until `swarm unlock`, who this node is.
  private kek?: Buffer;
  private locked?: { nodeId: string; clusterId: string; state?: SwarmState };
  private readonly keys: ManagerKeys;

  constructor(private readonly opts: SwarmNodeOptions) {
    this.keys = new ManagerKeys(opts.dataRoot, opts.runtimeRoot);
    this.roles = new RoleSwitch({
      running: () => (this.worker ? 'worker' : this.active ? 'manager' : undefined),
      renew: async () => {
        const renewal = this.worker?.renewal ?? this.active?.renewal;
        if (!renewal) throw new Error('not in a swarm');
        const r = await renewal.renewNow();
        return { role: r.role, version: r.nodeVersion };
      },
      become: (role) => this.exclusive(() => this.becomeRole(role)),
      log: opts.log.child({ component: 'role' }),
    });
  }

  private get certDir(): string { return join(this.opts.dataRoot, 'certificates'); }
  private get etcdDir(): string { return join(this.opts.dataRoot, 'etcd'); }
  private get nodeCertPath(): string { return join(this.certDir, 'swarm-node.crt'); }
  private get nodeKeyPath(): string { return join(this.certDir, 'swarm-node.key'); }
  private get caCertPath(): string { return join(this.certDir, 'swarm-root-ca.crt'); }
  // etcd's server, peer and client certificate (etcd trusts only the swarm CA).
  // Its key: the clear copy on tmpfs (manager-keys.ts), as certificates/etcd.key may be wrapped.
  // Its trusted roots: a file of its own (etcd-ca.crt), written from the
  // node's roots when etcd starts and only added to while it runs, so that the
  // daemon's etcd client, whose certificate is read once when the store opens,
  // is still trusted by an etcd that restarts after a root rotation ended.
  private get etcdTls(): EtcdTls {
    return { caFile: join(this.certDir, 'etcd-ca.crt'), certFile: join(this.certDir, 'etcd.crt'), keyFile: this.keys.runtimeEtcdKey };
  }
  private get etcdKeyPath(): string { return this.keys.etcdKey; }
  // The key that seals secret values in etcd (secret-box.ts); never in etcd itself.
  private get dataKeyPath(): string { return join(this.certDir, 'swarm-secrets.key'); }

  get nodeId(): string | undefined { return this.active?.nodeId; }
  get store(): Store | undefined { return this.active?.store; }

  // Serialises init/leave/start/stop: one membership change at a time.
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.busy.then(fn, fn);
    this.busy = run.catch(() => undefined);
    return run;
  }

  start(): Promise<void> {
    return this.exclusive(async () => {
      const peek = peekIdentity(this.opts.dataRoot);
      if (!peek) return;
      if (peek.keyLocked && !this.kek) {
        // Autolock: no etcd, no store, no agent until `docker swarm unlock`.
        this.locked = { nodeId: peek.nodeId, clusterId: peek.clusterId, state: readSwarmState(this.opts.dataRoot) };
        this.opts.log.warn({ nodeId: peek.nodeId }, 'swarm manager is locked: run "docker swarm unlock" with the unlock key');
        return;
      }
      await this.restoreMembership();
    });
  }

  // docker swarm unlock: the key must open every key file before anything
  // starts (a wrong key changes nothing and the node stays locked).
  unlock(keyText: string): Promise<void> {
    return this.exclusive(async () => {
      const locked = this.locked;
      if (!locked) {
        if (this.active) throw conflict('swarm is not locked');
        throw unavailable(NOT_A_MANAGER);
      }
      const key = parseUnlockKey(keyText);
      try {
        this.keys.verify(key);
      } catch (err) {
        if (isKeyLockError(err, 'wrong-key')) throw unauthorized(INVALID_UNLOCK_KEY);
        throw internal(`swarm component could not be started: ${(err as Error).message}`);
      }
      this.kek = key;
      this.locked = undefined;
      try {
        await this.restoreMembership();
      } catch (err) {
        this.kek = undefined;
        this.locked = locked;
        throw internal(`swarm component could not be started: ${(err as Error).message}`);
      }
      this.opts.log.info({ nodeId: locked.nodeId }, 'swarm manager unlocked');
    });
  }

  // The membership on disk started again (daemon start, or unlock).
  private async restoreMembership(): Promise<void> {
    {
      const identity = readIdentity(this.opts.dataRoot, this.kek);
      if (!identity) return;
      const { nodeId, clusterId } = identity;
      if (identity.role === 'worker') {
        // Workers are never locked (a demotion interrupted before its keys went back to clear).
        if (this.kek) { this.keys.rewrap(this.kek, undefined); this.kek = undefined; }
        await this.activateWorker(nodeId, clusterId, identity.tls, readSwarmState(this.opts.dataRoot));
        this.opts.log.info({ nodeId, clusterId }, 'swarm worker restored');
        return;
      }
      const caPem = readFileSync(this.caCertPath, 'utf8');
      this.migrateEtcdCert();
      const dataKey = loadDataKey(this.dataKeyPath, this.kek);
      const state = readSwarmState(this.opts.dataRoot);
      const advertiseIp = state?.advertiseAddr ? nodeAddrFromListen(state.advertiseAddr) : resolveAdvertiseAddr(this.opts.advertiseAddr).ip;
      const { etcd, store, admin } = await this.openState(nodeId, clusterId, advertiseIp);
      let ca: RootCA;
      let box: SecretBox;
      let key: Buffer;
      try {
        const cluster = clusterOf(store);
        if (!cluster) throw new Error(`node certificate for ${nodeId} found but the cluster state has no cluster object; remove ${this.certDir} to start over`);
        if (cluster.ID !== clusterId) throw new Error(`etcd holds cluster ${cluster.ID} but this node's certificate is for cluster ${clusterId}: refusing to use it`);
        key = dataKey ?? this.firstDataKey(store.count('secrets'), cluster.SealedCAKey !== undefined);
        box = new SecretBox(key);
        // The root the cluster names (the file holds both roots during a root rotation).
        ca = { certPem: cluster.TLSInfo.TrustRoot || caPem, keyPem: openCAKey(box, cluster) };
        // A swarm made by an earlier release kept the CA key in clear.
        const sealed = withSealedCAKey(box, cluster);
        if (sealed) {
          await store.txn().update('cluster', sealed, cluster).commit();
          this.opts.log.info({ clusterId }, 'CA key sealed with the data key (was in clear)');
        }
      } catch (e) {
        await store.close().catch(() => undefined);
        await etcd.stop();
        throw e;
      }
      let opened = { etcd, store, admin };
      // An etcd certificate of an earlier release (no swarm-etcd name, no
      // advertise IP) would refuse every peer: remade once, etcd restarted.
      if (!etcdCertFits(readFileSync(this.etcdTls.certFile, 'utf8'), advertiseIp)) {
        await store.close().catch(() => undefined);
        await etcd.stop();
        const cert = await issueEtcdCert(ca, nodeId, clusterId, Date.now(), [advertiseIp]);
        writeKeyFiles([{ path: this.etcdKeyPath, clear: Buffer.from(cert.keyPem) }], this.kek);
        writeFileAtomic(this.etcdTls.certFile, cert.certPem, 0o600);
        this.opts.log.info({ advertiseIp }, 'etcd certificate remade for peers (swarm-etcd name, advertise address)');
        opened = await this.openState(nodeId, clusterId, advertiseIp);
      }
      await this.activate({ nodeId, clusterId, ca, addr: advertiseIp, ...opened, dataKey: key, tls: identity.tls, control: this.newControl(opened.store, opened.admin, nodeId, ca, box) }, state);
      this.opts.log.info({ nodeId, clusterId }, 'swarm state restored');
    }
  }

  // A swarm made before secrets existed has no data key, and nothing sealed:
  // make one. Anything sealed means the key was lost: never make a new one.
  private firstDataKey(secrets: number, caKeySealed: boolean): Buffer {
    if (secrets > 0 || caKeySealed) {
      const what = [caKeySealed ? 'the CA key' : '', secrets > 0 ? `${secrets} secret(s)` : ''].filter(Boolean).join(' and ');
      throw new Error(`the swarm's data key ${this.dataKeyPath} is missing but ${what} in etcd are sealed with it: restore that file (it is never made again, that would lose them)`);
    }
    const key = SecretBox.generateKey();
    writeDataKey(this.dataKeyPath, key);
    this.opts.log.info({ path: this.dataKeyPath }, 'data key made (swarm from before secrets)');
    return key;
  }

  // An earlier release ran etcd without TLS and had no etcd certificate; the
  // node certificate (same CA, loopback IP, server and client use) serves.
  private migrateEtcdCert(): void {
    const t = this.etcdTls;
    if (existsSync(t.certFile) && existsSync(this.etcdKeyPath)) return;
    copyFileSync(this.nodeKeyPath, this.etcdKeyPath);
    copyFileSync(this.nodeCertPath, t.certFile);
    this.opts.log.info('etcd certificate made from the node certificate (etcd ran without TLS before)');
  }

  init(req: InitRequest): Promise<string> {
    return this.exclusive(async () => {
      // --force-new-cluster on a manager: a one-manager swarm from this member's data
      // (moby's Init: a worker is refused; a node not in a swarm gets a plain init).
      if (req.ForceNewCluster && this.worker) throw unavailable(SWARM_NOT_MANAGER);
      if (req.ForceNewCluster && this.active) return this.forceNewCluster(this.active, req);
      if (this.active || this.worker || this.locked) throw unavailable(ALREADY_IN_SWARM);
      validateInitRequest(req); // spec checks (controlapi/validate-swarm.ts)
      const reqListen = requestedListenAddr(req.ListenAddr);
      const listen = parseListenAddr(reqListen || this.opts.listenAddr);
      const advertise = resolveAdvertiseAddr(req.AdvertiseAddr || this.opts.advertiseAddr || undefined, listen.port);
      const pool = req.DefaultAddrPool?.length ? req.DefaultAddrPool : ['10.0.0.0/8'];
      for (const p of pool) if (!/^\d+\.\d+\.\d+\.\d+\/\d+$/.test(p)) throw invalid(`invalid default address pool ${p}`);
      const subnetSize = req.SubnetSize || 24;
      if (subnetSize < 1 || subnetSize > 32) throw invalid(`invalid subnet size ${subnetSize}`);
      const availability = req.Availability || 'active';
      if (!['active', 'pause', 'drain'].includes(availability)) throw invalid(`invalid availability ${availability}`);

      const nodeId = newId();
      const clusterId = newId();
      const ca = await createRootCA();
      const spec = mergeSwarmSpec(defaultSwarmSpec(), req.Spec);
      // --autolock: the keys are wrapped from the first write on.
      const autolock = !!(req.AutoLockManagers || spec.EncryptionConfig?.AutoLockManagers);
      spec.EncryptionConfig = { ...spec.EncryptionConfig, AutoLockManagers: autolock };
      const unlockKey = autolock ? newUnlockKey() : undefined;
      const dataKey = SecretBox.generateKey();
      const box = new SecretBox(dataKey);
      const etcdCert = await issueEtcdCert(ca, nodeId, clusterId, Date.now(), [advertise.ip]);
      const nodeCert = await issueNodeCert(ca, nodeId, 'manager', clusterId, spec.CAConfig?.NodeCertExpiry ?? 7_776_000_000_000_000);
      const description = await this.opts.describeNode();
      if (this.opts.hostname) description.Hostname = this.opts.hostname;

      // A state directory without a node certificate is a half-made earlier
      // attempt: nothing in it was ever acknowledged as a swarm.
      rmSync(this.etcdDir, { recursive: true, force: true });
      // etcd needs its certificate to start; the data key seals the CA key.
      writeFileAtomic(this.caCertPath, ca.certPem);
      this.kek = unlockKey;
      writeKeyFiles([{ path: this.etcdKeyPath, clear: Buffer.from(etcdCert.keyPem) }], unlockKey);
      writeFileAtomic(this.etcdTls.certFile, etcdCert.certPem, 0o600);
      writeDataKey(this.dataKeyPath, dataKey, unlockKey);
      const state: SwarmState = { listenAddr: `${listen.host}:${listen.port}`, listenExplicit: !!(reqListen || this.opts.listenAddr), advertiseAddr: `${advertise.ip}:${advertise.port}`, dataPathAddr: req.DataPathAddr || this.opts.dataPathAddr || undefined };
      writeSwarmState(this.opts.dataRoot, state);
      const { etcd, store, admin } = await this.openState(nodeId, clusterId, advertise.ip);
      try {
        const now = nowIso();
        const cluster: ClusterObject = {
          ID: clusterId,
          Version: { Index: 0 },
          CreatedAt: now,
          UpdatedAt: now,
          Spec: spec,
          TLSInfo: await tlsInfo(ca),
          RootRotationInProgress: false,
          DefaultAddrPool: pool,
          SubnetSize: subnetSize,
          DataPathPort: req.DataPathPort || 4789,
          JoinTokens: { Worker: newJoinToken(ca), Manager: newJoinToken(ca) },
          SealedCAKey: sealCAKey(box, clusterId, ca.keyPem),
          ...(unlockKey ? { SealedUnlockKey: sealUnlockKey(box, clusterId, unlockKey) } : {}),
        };
        const node: Node = {
          ID: nodeId,
          Version: { Index: 0 },
          CreatedAt: now,
          UpdatedAt: now,
          Spec: { Labels: {}, Role: 'manager', Availability: availability },
          Description: { ...description, TLSInfo: await tlsInfo(ca) },
          Status: { State: 'ready', Addr: advertise.ip },
          ManagerStatus: { Leader: true, Reachability: 'reachable', Addr: `${advertise.ip}:${advertise.port}` },
        };
        // The routing mesh's network comes with the swarm, as Docker's.
        await store.txn().create('cluster', cluster).create('nodes', node).create('networks', newIngressNetwork(cluster, now)).commit();
        writeKeyFiles([{ path: this.nodeKeyPath, clear: Buffer.from(nodeCert.keyPem) }], unlockKey);
        writeFileAtomic(this.nodeCertPath, nodeCert.certPem); // last: the commit marker
      } catch (e) {
        await store.close().catch(() => undefined);
        await etcd.stop();
        this.keys.dropRuntime();
        this.kek = undefined;
        rmSync(this.etcdDir, { recursive: true, force: true });
        throw e;
      }
      await this.activate({ nodeId, clusterId, ca, addr: advertise.ip, etcd, store, admin, dataKey, tls: { caPem: ca.certPem, certPem: nodeCert.certPem, keyPem: nodeCert.keyPem }, control: this.newControl(store, admin, nodeId, ca, box) }, state);
      await this.awaitRegistered('init');
      this.opts.log.info({ nodeId, clusterId, addr: advertise.ip }, 'swarm initialised');
      return nodeId;
    });
  }

  // `swarm init --force-new-cluster` on a manager that lost its quorum (the
  // others dead for good): etcd restarts once with --force-new-cluster (same
  // cluster and member IDs, the other members dropped, all data kept), then
  // this manager runs as before and wins the election alone. The lost
  // managers stay in the store as managers, unreachable (Docker lists them
  // so too): `node demote` then `node rm` clears them; new managers join with
  // the manager token. The request's spec is not applied (the cluster's is kept).
  private async forceNewCluster(a: Active, req: InitRequest): Promise<string> {
    validateInitRequest(req);
    const { nodeId, clusterId, ca, dataKey, tls } = a;
    const state = readSwarmState(this.opts.dataRoot);
    this.opts.log.warn({ nodeId, clusterId }, 'force-new-cluster: restarting etcd as a one-member cluster from this member\'s data');
    await this.deactivate();
    const opened = await this.openState(nodeId, clusterId, a.addr, { forceNewCluster: true });
    const cluster = clusterOf(opened.store);
    if (!cluster || cluster.ID !== clusterId) {
      await opened.store.close().catch(() => undefined);
      await opened.etcd.stop();
      throw unavailable(`force-new-cluster: etcd holds ${cluster ? `cluster ${cluster.ID}` : 'no cluster object'}, this node's certificate is for cluster ${clusterId}`);
    }
    // The lost managers' leader and presence keys would outlive them until
    // their leases expire (etcd restarts every lease's time-to-live with the
    // new cluster): removed, so this node leads at once and the others show Unreachable.
    try {
      const stale = (await opened.admin.range(PRESENCE)).kvs.map((kv) => kv.key).filter((k) => k !== presenceKey(nodeId));
      await opened.admin.txn([], [{ del: LEADER_KEY }, ...stale.map((k) => ({ del: k }))], { timeoutMs: 10_000 });
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message }, 'force-new-cluster: the lost managers\' leases could not be removed; they expire by themselves');
    }
    await this.activate({ nodeId, clusterId, ca, addr: a.addr, ...opened, dataKey, tls, control: this.newControl(opened.store, opened.admin, nodeId, ca, new SecretBox(dataKey)) }, state);
    await this.awaitRegistered('init');
    this.opts.log.info({ nodeId, clusterId }, 'force-new-cluster: this manager is now the only etcd member');
    return nodeId;
  }

  // `shoal backup`: the store's keys read at one etcd revision, with the CA
  // certificate and the data key (which opens the sealed CA key and the
  // secrets), as one file (store/backup-file.ts). Needs a quorum (the read is linearizable).
  async backup(): Promise<Buffer> {
    this.control(); // 503 with Docker's text when not a manager or the store is down
    const a = this.active!;
    const { kvs, revision } = await a.store.snapshot();
    this.opts.log.info({ keys: kvs.length, revision }, 'backup taken');
    return encodeBackup({ clusterId: a.clusterId, createdAt: nowIso(), revision, caCertPem: a.ca.certPem, dataKey: a.dataKey.toString('base64'), kvs });
  }

  // `shoal restore`: on a host in no swarm, a one-manager swarm from a backup:
  // same cluster ID, CA, join tokens and objects. This host is a new node (new
  // ID, certificate from the restored CA); the backed-up managers stay in the
  // store as unreachable managers (as after force-new-cluster), their tasks
  // are rescheduled once their nodes are marked down. Everything is checked
  // before anything is written; a failure after that erases what was written.
  restore(file: Buffer): Promise<string> {
    return this.exclusive(async () => {
      if (this.active || this.worker || this.locked) throw unavailable(ALREADY_IN_SWARM);
      const b = decodeBackup(file);
      const { clusterId } = b;
      const dataKey = Buffer.from(b.dataKey, 'base64');
      const box = new SecretBox(dataKey);
      const clusterJson = b.kvs.find(([k]) => k === objectKey('cluster', clusterId))?.[1];
      if (!clusterJson) throw invalid(`invalid backup file: it holds no cluster object for cluster ${clusterId}`);
      let cluster: ClusterObject;
      let ca: RootCA;
      try {
        cluster = { ...JSON.parse(clusterJson) as ClusterObject, Version: { Index: 0 } };
        if (cluster.ID !== clusterId) throw new Error(`its cluster object is for ${String(cluster.ID)}`);
        ca = { certPem: b.caCertPem, keyPem: openCAKey(box, cluster) };
        if (!new X509Certificate(ca.certPem).checkPrivateKey(createPrivateKey(ca.keyPem))) throw new Error('its CA key does not match its CA certificate');
      } catch (e) {
        throw invalid(`invalid backup file: ${(e as Error).message}`);
      }
      const listen = parseListenAddr(this.opts.listenAddr);
      const advertise = resolveAdvertiseAddr(this.opts.advertiseAddr || undefined, listen.port);
      const nodeId = newId();
      const etcdCert = await issueEtcdCert(ca, nodeId, clusterId, Date.now(), [advertise.ip]);
      const nodeCert = await issueNodeCert(ca, nodeId, 'manager', clusterId, cluster.Spec.CAConfig?.NodeCertExpiry ?? 7_776_000_000_000_000);
      const description = await this.opts.describeNode();
      if (this.opts.hostname) description.Hostname = this.opts.hostname;
      const state: SwarmState = { listenAddr: `${listen.host}:${listen.port}`, listenExplicit: !!this.opts.listenAddr, advertiseAddr: `${advertise.ip}:${advertise.port}`, dataPathAddr: this.opts.dataPathAddr || undefined };
      rmSync(this.etcdDir, { recursive: true, force: true });
      let opened: { etcd: EtcdProcess; store: Store; admin: EtcdAdmin } | undefined;
      try {
        writeFileAtomic(this.caCertPath, ca.certPem);
        // Where the key store reads it (etcd itself gets a copy on tmpfs: manager-keys.ts).
        writeKeyFiles([{ path: this.etcdKeyPath, clear: Buffer.from(etcdCert.keyPem) }], undefined);
        writeFileAtomic(this.etcdTls.certFile, etcdCert.certPem, 0o600);
        writeDataKey(this.dataKeyPath, dataKey);
        writeSwarmState(this.opts.dataRoot, state);
        opened = await this.openState(nodeId, clusterId, advertise.ip, { seed: b.kvs });
        const now = nowIso();
        const node: Node = {
          ID: nodeId, Version: { Index: 0 }, CreatedAt: now, UpdatedAt: now,
          Spec: { Labels: {}, Role: 'manager', Availability: 'active' },
          Description: { ...description, TLSInfo: await tlsInfo(ca) },
          Status: { State: 'ready', Addr: advertise.ip },
          ManagerStatus: { Leader: true, Reachability: 'reachable', Addr: `${advertise.ip}:${advertise.port}` },
        };
        await opened.store.txn().create('nodes', node).commit();
        writeFileAtomic(this.nodeKeyPath, nodeCert.keyPem, 0o600);
        writeFileAtomic(this.nodeCertPath, nodeCert.certPem); // last: the commit marker
      } catch (e) {
        await opened?.store.close().catch(() => undefined);
        await opened?.etcd.stop();
        this.eraseState();
        throw e;
      }
      const tls = { caPem: ca.certPem, certPem: nodeCert.certPem, keyPem: nodeCert.keyPem };
      await this.activate({ nodeId, clusterId, ca, addr: advertise.ip, ...opened, dataKey, tls, control: this.newControl(opened.store, opened.admin, nodeId, ca, box) }, state);
      await this.awaitRegistered('init');
      this.opts.log.info({ nodeId, clusterId, revision: b.revision, keys: b.kvs.length }, 'swarm restored from a backup');
      return nodeId;
    });
  }

  // docker swarm join: a certificate from a manager (CA protocol, with the
  // token), then for a manager an etcd member (membership.JoinManager), the
  // store, the API and the election; for a worker its identity and agent.
  // Either returns once its agent has registered with the leader.
  join(req: Record<string, unknown>): Promise<void> {
    return this.exclusive(async () => {
      if (this.active || this.worker || this.locked) throw unavailable(ALREADY_IN_SWARM);
      const str = (k: string): string => (typeof req[k] === 'string' ? req[k] as string : '');
      const remoteAddrs = Array.isArray(req.RemoteAddrs) ? (req.RemoteAddrs as unknown[]).filter((a): a is string => typeof a === 'string' && a !== '') : [];
      const reqListen = requestedListenAddr(str('ListenAddr'));
      const listen = parseListenAddr(reqListen || this.opts.listenAddr);
      const advertise = resolveAdvertiseAddr(str('AdvertiseAddr') || this.opts.advertiseAddr || undefined, listen.port);
      const dataPathAddr = str('DataPathAddr') || this.opts.dataPathAddr || undefined;
      const membership = await requestMembership({
        remoteAddrs, token: str('JoinToken'), advertiseAddr: `${advertise.ip}:${advertise.port}`, listenAddr: `${listen.host}:${listen.port}`,
        dataPathAddr, availability: str('Availability') || undefined, hostname: this.opts.hostname, timeoutMs: 20_000, log: this.opts.log,
      });
      const state: SwarmState = { listenAddr: `${listen.host}:${listen.port}`, listenExplicit: !!(reqListen || this.opts.listenAddr), advertiseAddr: `${advertise.ip}:${advertise.port}`, dataPathAddr, remoteManagers: joinedManagers(membership.managers?.addrs, remoteAddrs) };
      rmSync(this.etcdDir, { recursive: true, force: true });
      if (membership.role === 'worker') {
        writeSwarmState(this.opts.dataRoot, state);
        writeIdentity(this.opts.dataRoot, membership.tls);
        await this.activateWorker(membership.nodeId, membership.clusterId, membership.tls, state, membership.managers?.leaderAddr, membership.heartbeatMs);
        await this.awaitRegistered('join');
        this.opts.log.info({ nodeId: membership.nodeId }, 'joined the swarm as a worker');
        return;
      }
      // A manager: an etcd member, then everything a manager runs.
      await this.becomeManager(membership.nodeId, membership.clusterId, membership.tls, state);
      await this.awaitRegistered('join');
      this.opts.log.info({ nodeId: membership.nodeId, clusterId: membership.clusterId, addr: advertise.ip }, 'joined the swarm as a manager');
    });
  }

  // Docker's init and join return once the node's agent has registered (its
  // node then ready and written); a script's next `node update` must not race
  // that write. A join not registered in time fails as dockerd's does, and
  // goes on in the background; an init only says so in the log.
  private async awaitRegistered(op: 'init' | 'join'): Promise<void> {
    const components = this.active?.components ?? this.worker?.components;
    if (!components?.registered || await components.registered(REGISTER_WAIT_MS)) return;
    this.opts.log.warn({ waitedMs: REGISTER_WAIT_MS }, `the agent has not registered with the leader; ${op} goes on in the background`);
    if (op === 'join') throw unavailable(JOIN_TIMEOUT);
  }

  // A worker runs its agent only: a session with the leader's dispatcher through any manager.
  // `leaderAddr`: the leader as the join's answer named it (the first session goes elsewhere if it can).
  private async activateWorker(nodeId: string, clusterId: string, tls: NodeTls, state: SwarmState | undefined, leaderAddr?: string, heartbeatMs?: number): Promise<void> {
    const w: NonNullable<SwarmNode['worker']> = { nodeId, clusterId, tls, state };
    this.worker = w;
    const log = this.opts.log;
    w.renewal = this.startRenewal(() => w.tls, (t) => { w.tls = t; }, () => w.state?.remoteManagers ?? []);
    const renewal = w.renewal;
    w.trust = startTrustFollower({ held: () => w.tls, renew: () => renewal.renewNow(), log: log.child({ component: 'root-ca' }) });
    w.components = await this.opts.startWorkerComponents({
      nodeId, log,
      rpc: {
        connect: (addr, keepalive) => grpcChannel(addr, w.tls, log, { keepalive }),
        // Promoted: a manager's certificate first (signed with the role in the store), then etcd.
        onRole: (role, version) => this.noteRole({ role, version: version ?? 0 }),
        onRootCA: (want) => w.trust?.note(want),
        managers: () => ({ ...(leaderAddr ? { leaderAddr } : {}), addrs: w.state?.remoteManagers ?? [] }),
        ...(heartbeatMs ? { heartbeatMs } : {}),
        onManagers: (addrs) => {
          if (!w.state || !addrs.length || addrs.join() === (w.state.remoteManagers ?? []).join()) return;
          w.state = { ...w.state, remoteManagers: addrs };
          try { writeSwarmState(this.opts.dataRoot, w.state); } catch (err) { log.warn({ err: (err as Error).message }, 'could not save the managers list'); }
        },
      },
    });
  }

  // Certificate renewal before expiry (node/renewal.ts), through any manager;
  // a renewal that changes the role (promotion, demotion) switches this node.
  private startRenewal(get: () => NodeTls, set: (t: NodeTls) => void, managers: () => string[]): CertRenewal {
    let i = 0;
    return startCertRenewal({
      identity: get,
      channel: () => { const list = managers(); return list.length ? grpcChannel(list[i++ % list.length]!, get(), this.opts.log) : undefined; },
      save: (t) => { writeIdentity(this.opts.dataRoot, t, this.kek); set(t); },
      log: this.opts.log.child({ component: 'cert-renewal' }),
    });
  }

  // Promotion and demotion: role notices (mirror, session, renewal) ordered by
  // the node object's version, and one loop bringing the node to the newest
  // (node/role-switch.ts); `becomeRole` below is one switch.
  private readonly roles: RoleSwitch;

  private noteRole(notice: RoleNotice): void { this.roles.note(notice); }

  // One switch, with the certificate on disk for the new role (the loop above renewed it).
  private async becomeRole(want: NodeRole): Promise<void> {
    const identity = readIdentity(this.opts.dataRoot, this.kek);
    if (!identity || identity.role !== want) return;
    if (want === 'manager' && this.worker) {
      const w = this.worker;
      this.worker = undefined;
      w.renewal?.stop();
      w.trust?.stop();
      await w.components?.stop().catch((err: unknown) => this.opts.log.error({ err }, 'stopping the agent failed'));
      try {
        await this.becomeManager(w.nodeId, w.clusterId, identity.tls, w.state!);
      } catch (err) {
        // Back to a worker's agent: the loop tries again shortly.
        await this.activateWorker(w.nodeId, w.clusterId, identity.tls, w.state);
        throw err;
      }
      this.opts.log.info({ nodeId: w.nodeId }, 'promoted: this node is now a manager');
    } else if (want === 'worker' && this.active) {
      const a = this.active;
      const others = a.store.list('nodes').filter((n) => n.Spec.Role === 'manager' && n.ID !== a.nodeId && n.ManagerStatus?.Addr).map((n) => n.ManagerStatus!.Addr);
      // Leave etcd while quorum is there (the leader's upkeep removes the member otherwise, later).
      await a.election?.handOver().catch(() => undefined);
      await this.leaveEtcd(a);
      await this.deactivate();
      // Workers are never locked: the keys go back to clear.
      if (this.kek) { this.keys.rewrap(this.kek, undefined); this.kek = undefined; }
      // A removed member's data must never start again: the next promotion starts from an empty directory.
      rmSync(this.etcdDir, { recursive: true, force: true });
      const prev = readSwarmState(this.opts.dataRoot);
      const state: SwarmState = { listenAddr: prev?.listenAddr ?? '0.0.0.0:2377', listenExplicit: prev?.listenExplicit, advertiseAddr: prev?.advertiseAddr ?? `${a.addr}:2377`, dataPathAddr: prev?.dataPathAddr, remoteManagers: others };
      writeSwarmState(this.opts.dataRoot, state);
      await this.activateWorker(a.nodeId, a.clusterId, identity.tls, state);
      this.opts.log.info({ nodeId: a.nodeId }, 'demoted: this node is now a worker');
    }
  }

  // Removes this node's own etcd member. etcd refuses while a member has
  // been connected for less than 5 s ("unhealthy cluster", e.g. right after
  // a manager came back): retried within a bound, then left to the leader.
  private async leaveEtcd(a: Active): Promise<void> {
    const deadline = Date.now() + LEAVE_ETCD_MS;
    for (let delay = 200; ; delay = Math.min(1000, delay * 2)) {
      let removing = false;
      try {
        const self = (await a.admin.memberList()).find((m) => m.name === a.nodeId);
        removing = self !== undefined;
        if (self) await a.admin.memberRemove(self.id);
        return;
      } catch (err) {
        // Removed, this etcd stops at once and the answer can be lost: only a refusal is retried.
        if (removing && !/unhealthy cluster/i.test((err as Error).message)) {
          this.opts.log.info({ err: (err as Error).message }, 'etcd member removal sent; its answer was lost (the leader removes the member if it was not)');
          return;
        }
        if (Date.now() + delay > deadline) {
          this.opts.log.warn({ err: (err as Error).message }, 'could not leave etcd; the leader will remove this member');
          return;
        }
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  private peerUrlFor(ip: string): string {
    const port = new URL(this.opts.etcdPeerUrl).port;
    return `https://${ip.includes(':') ? `[${ip}]` : ip}:${port}`;
  }

  // A node with a manager certificate (joined with the manager token, or
  // promoted): an etcd member through JoinManager, the store, then activate.
  private async becomeManager(nodeId: string, clusterId: string, tls: NodeTls, state: SwarmState): Promise<void> {
    const advertiseIp = nodeAddrFromListen(state.advertiseAddr);
    const peerUrl = this.peerUrlFor(advertiseIp);
    const joined = await this.joinManager(state.remoteManagers ?? [], tls, peerUrl);
    const ca: RootCA = { certPem: tls.caPem, keyPem: joined.CAKey };
    const dataKey = Buffer.from(joined.DataKey, 'base64');
    const etcdCert = await issueEtcdCert(ca, nodeId, clusterId, Date.now(), [advertiseIp]);
    rmSync(this.etcdDir, { recursive: true, force: true });
    writeFileAtomic(this.caCertPath, ca.certPem);
    // In clear until activation: the cluster says whether autolock wraps them (syncKeyLock).
    this.kek = undefined;
    writeKeyFiles([{ path: this.etcdKeyPath, clear: Buffer.from(etcdCert.keyPem) }], undefined);
    writeFileAtomic(this.etcdTls.certFile, etcdCert.certPem, 0o600);
    writeDataKey(this.dataKeyPath, dataKey);
    writeSwarmState(this.opts.dataRoot, state);
    const { etcd, store, admin } = await this.openState(nodeId, clusterId, advertiseIp, { joinCluster: joined.InitialCluster });
    // Written last: the node certificate marks membership (a crash before leaves nothing that claims a swarm).
    writeIdentity(this.opts.dataRoot, tls);
    const box = new SecretBox(dataKey);
    await this.activate({ nodeId, clusterId, ca, addr: advertiseIp, etcd, store, admin, dataKey, tls, control: this.newControl(store, admin, nodeId, ca, box) }, state);
  }

  // Any manager will do; one that is unreachable moves on to the next.
  private async joinManager(managers: string[], tls: NodeTls, peerUrl: string): Promise<{ InitialCluster: string; CAKey: string; DataKey: string }> {
    let last: unknown;
    for (const addr of managers) {
      const ch = grpcChannel(addr, tls, this.opts.log);
      try {
        return await ch.unary(JoinManager, { PeerURL: peerUrl }, { timeoutMs: 30_000 });
      } catch (err) {
        last = err;
        if (isShoalError(err) && err.kind !== 'unavailable') throw err;
        this.opts.log.warn({ err: (err as Error).message, manager: addr }, 'joining etcd through this manager failed');
      } finally { ch.close(); }
    }
    throw last instanceof Error ? (isShoalError(last) ? last : unavailable(last.message)) : unavailable('no manager answered');
  }

  leave(force: boolean): Promise<void> {
    return this.exclusive(async () => {
      if (this.locked) {
        if (!force) throw unavailable(LEAVE_LOCKED);
        const { nodeId } = this.locked;
        this.locked = undefined;
        await this.opts.removeTaskContainers(nodeId);
        await this.opts.removeNodeNetworks(nodeId);
        this.eraseState();
        this.opts.log.info({ nodeId }, 'left the swarm (while locked)');
        return;
      }
      if (this.worker) {
        const w = this.worker;
        this.worker = undefined;
        w.renewal?.stop();
        w.trust?.stop();
        await w.components?.stop().catch((err: unknown) => this.opts.log.error({ err }, 'stopping the agent failed'));
        await this.opts.removeTaskContainers(w.nodeId);
        await this.opts.removeNodeNetworks(w.nodeId);
        this.eraseState();
        this.opts.log.info({ nodeId: w.nodeId }, 'left the swarm');
        return;
      }
      const a = this.active;
      if (!a) throw unavailable(NOT_IN_SWARM);
      const managers = a.store.list('nodes').filter((n) => n.Spec.Role === 'manager');
      if (!force) {
        // Docker refuses a manager's leave without --force, saying what it would cost.
        const reachable = managers.filter((n) => n.ID === a.nodeId || a.store.meta(presenceKey(n.ID))).length;
        throw unavailable(leaveManagerMessage(reachable, managers.length - reachable));
      }
      // Hand leadership over, then leave etcd (while quorum allows), then stop.
      await a.election?.handOver().catch(() => undefined);
      if (managers.length > 1) await this.leaveEtcd(a);
      await this.deactivate();
      await this.opts.removeTaskContainers(a.nodeId);
      await this.opts.removeNodeNetworks(a.nodeId);
      this.eraseState();
      this.opts.log.info({ nodeId: a.nodeId }, 'left the swarm');
    });
  }

  private eraseState(): void {
    // Role notices were about this membership's node object.
    this.roles.reset();
    rmSync(this.nodeCertPath, { force: true });
    rmSync(this.certDir, { recursive: true, force: true });
    rmSync(this.etcdDir, { recursive: true, force: true });
    rmSync(join(this.opts.dataRoot, 'swarm-state.json'), { force: true });
    this.keys.dropRuntime();
    this.kek = undefined;
  }

  // Daemon shutdown: stop everything, keep all state.
  stop(): Promise<void> {
    return this.exclusive(async () => {
      this.roles.stop();
      const w = this.worker;
      this.worker = undefined;
      w?.renewal?.stop();
      w?.trust?.stop();
      await w?.components?.stop().catch((err: unknown) => this.opts.log.error({ err }, 'stopping the agent failed'));
      await this.deactivate();
      this.locked = undefined;
      this.kek = undefined; // a start after this stop is locked again, as after a restart
    });
  }

  info(): SwarmInfo {
    const w = this.worker;
    if (w) {
      return {
        NodeID: w.nodeId, NodeAddr: w.state?.advertiseAddr ? nodeAddrFromListen(w.state.advertiseAddr) : '', LocalNodeState: 'active',
        ControlAvailable: false, Error: '', RemoteManagers: (w.state?.remoteManagers ?? []).map((Addr) => ({ NodeID: '', Addr })),
      };
    }
    const l = this.locked;
    if (l) {
      // As Docker's: locked, the reason in Error, no node ID (nothing of the swarm runs).
      return { NodeID: '', NodeAddr: l.state?.advertiseAddr ? nodeAddrFromListen(l.state.advertiseAddr) : '', LocalNodeState: 'locked', ControlAvailable: false, Error: SWARM_LOCKED, RemoteManagers: null };
    }
    const a = this.active;
    if (!a) return { NodeID: '', NodeAddr: '', LocalNodeState: 'inactive', ControlAvailable: false, Error: '', RemoteManagers: null };
    const health = a.etcd.health();
    const nodes = a.store.list('nodes');
    const managers = nodes.filter((n) => n.Spec.Role === 'manager');
    const cluster = clusterOf(a.store);
    let clusterInfo;
    if (cluster) { const { JoinTokens: _t, ...rest } = publicSwarm(cluster); clusterInfo = rest; }
    return {
      NodeID: a.nodeId,
      NodeAddr: a.addr,
      LocalNodeState: 'active',
      ControlAvailable: health.ok,
      Error: health.ok ? '' : health.reason,
      RemoteManagers: managers.map((n) => ({ NodeID: n.ID, Addr: n.ManagerStatus?.Addr ?? '' })),
      Nodes: nodes.length,
      Managers: managers.length,
      Cluster: clusterInfo,
    };
  }

  control(): ControlApi {
    if (this.locked) throw unavailable(SWARM_LOCKED);
    if (!this.active) throw unavailable(NOT_A_MANAGER);
    // Fail fast while the store is down rather than let a request wait on etcd.
    const health = this.active.etcd.health();
    if (!health.ok && /no leader|does not answer/.test(health.reason)) throw unavailable(NO_LEADER);
    if (!health.ok) throw unavailable(`rpc error: code = Unavailable desc = the swarm's store is not available on this manager: ${health.reason}`);
    return this.active.control;
  }

  private newControl(store: Store, admin: EtcdAdmin, nodeId: string, ca: RootCA, dataKey: SecretBox): ControlApi {
    const etcdMembers = async (): Promise<string[]> => (await admin.memberList()).filter((m) => !m.learner && m.name).map((m) => m.name);
    // The current root (a root rotation's end changes it: syncRootCA).
    return new ControlApi({ store, localNodeId: nodeId, now: () => Date.now(), etcdMembers }, () => (this.active?.nodeId === nodeId ? this.active.ca : ca), dataKey);
  }

  // Process exit after a fatal error: stop our etcd without waiting.
  killNow(): void { this.active?.etcd.killNow(); }

  // joinCluster: a joining manager's initial cluster; forceNewCluster: see
  // forceNewCluster(); seed: keys written into the new etcd before the store opens (restore).
  private async openState(nodeId: string, clusterId: string, advertiseIp: string, o: { joinCluster?: string; forceNewCluster?: boolean; seed?: Array<[string, string]> } = {}): Promise<{ etcd: EtcdProcess; store: Store; admin: EtcdAdmin }> {
    const { joinCluster, forceNewCluster = false } = o;
    turbofanForManager(this.opts.log.child({ component: 'tiering' })); // a manager may get busy at any time (tiering.ts)
    this.keys.stageEtcdKey(this.kek);
    writeFileAtomic(this.etcdTls.caFile, readFileSync(this.caCertPath, 'utf8'));
    const etcd = new EtcdProcess({
      binary: this.opts.etcdBinary,
      dataDir: this.etcdDir,
      name: nodeId,
      clientUrl: this.opts.etcdClientUrl,
      peerUrl: this.peerUrlFor(advertiseIp),
      tls: this.etcdTls,
      clusterToken: clusterId,
      allowedHostname: ETCD_CERT_NAME,
      ...(joinCluster ? { initialCluster: joinCluster, clusterState: 'existing' as const } : {}),
      forceNewCluster,
      log: this.opts.log.child({ component: 'etcd' }),
    });
    await etcd.start();
    try {
      // A member that just joined is a learner: etcd serves it no reads until
      // the leader has promoted it (members.ts), so opening is retried.
      const deadline = Date.now() + (joinCluster ? 90_000 : 0);
      for (;;) {
        const admin = new EtcdAdmin(etcdClientOptions(this.opts.etcdClientUrl, this.etcdTls));
        try {
          if (o.seed) {
            const n = await seedStore(admin, o.seed);
            this.opts.log.info({ keys: n }, 'restore: keys written into the new etcd');
          }
          const store = await Store.open(admin, this.opts.log.child({ component: 'store' }), {
            outage: () => { const h = etcd.health(); return !h.ok && /no leader|does not answer/.test(h.reason) ? NO_LEADER : undefined; },
          });
          return { etcd, store, admin };
        } catch (e) {
          await admin.close().catch(() => undefined);
          if (Date.now() > deadline) throw e;
          this.opts.log.info({ err: (e as Error).message }, 'waiting for this etcd member to be promoted');
          await new Promise((r) => setTimeout(r, 500));
        }
      }
    } catch (e) {
      await etcd.stop();
      this.keys.dropRuntime();
      throw e;
    }
  }

  // Autolock: this manager's key files follow the cluster (wrapped under the
  // current unlock key while autolock is on, in clear otherwise). A manager
  // that was down during a rotation still opens with the old key, then
  // re-wraps here with the new one, as Docker's.
  private syncKeyLock(a: Active): void {
    if (this.active !== a) return;
    const cluster = clusterOf(a.store);
    if (!cluster) return;
    let want: Buffer | undefined;
    try {
      want = wantedUnlockKey(new SecretBox(a.dataKey), cluster);
    } catch (err) {
      this.opts.log.error({ err: (err as Error).message }, 'the cluster\'s unlock key does not open with this manager\'s data key; key files left as they are');
      return;
    }
    if (want === this.kek || (want && this.kek && want.equals(this.kek))) return;
    try {
      this.keys.rewrap(this.kek, want);
      this.kek = want;
      this.opts.log.info(want ? 'keys at rest wrapped under the swarm\'s unlock key' : 'keys at rest in clear (autolock off)');
    } catch (err) {
      this.opts.log.error({ err: (err as Error).message }, 're-wrapping the keys at rest failed; retried on the next cluster change');
    }
  }

  // What this manager's CA signs with now (signer.ts), from the cluster object.
  private signingOf(a: Active): Signing {
    const cluster = clusterOf(a.store);
    if (!cluster?.TLSInfo.TrustRoot) return { root: a.ca, issuer: a.ca, chain: '', bundle: a.ca.certPem, tls: {} };
    if (!this.signer || !this.signer.dataKey.equals(a.dataKey)) this.signer = { dataKey: a.dataKey, signer: new ClusterSigner(new SecretBox(a.dataKey)) };
    return this.signer.signer.of(cluster);
  }

  // A root CA rotation, on this manager: the CA signs with what the cluster
  // says, this node renews until it holds what is wanted (trust-follower.ts),
  // and its etcd member trusts both roots and gets a certificate of the new CA.
  private syncRootCA(a: Active): void {
    if (this.active !== a) return;
    const cluster = clusterOf(a.store);
    if (!cluster?.TLSInfo.TrustRoot) return;
    let signing: Signing;
    try {
      signing = this.signingOf(a);
    } catch (err) {
      this.opts.log.error({ err: (err as Error).message }, 'the cluster\'s CA keys do not open with this manager\'s data key; signing with the CA it had');
      return;
    }
    a.ca = signing.root;
    a.trust?.note(wantedTrust(cluster));
    try {
      this.syncEtcdTrust(a, signing);
    } catch (err) {
      this.opts.log.error({ err: (err as Error).message }, 'updating etcd\'s certificate for the root CA failed; retried on the next cluster change');
    }
  }

  // etcd's roots (etcd-ca.crt) gain the new root (read by etcd when it next
  // starts; nothing is removed while this daemon runs, see etcdTls), and its
  // certificate comes from the signing CA, followed by the cross-signed root:
  // etcd reads its certificate at every handshake, so peers and the daemon's
  // client, which still trust the old root only, verify it through the cross,
  // and no etcd member is restarted for the rotation. A member restarted later
  // reads the roots then on disk (the new one only, once the rotation is over).
  private syncEtcdTrust(a: Active, signing: Signing): void {
    const caFile = this.etcdTls.caFile;
    const have = existsSync(caFile) ? readFileSync(caFile, 'utf8') : '';
    const missing = pemCertificates(signing.bundle).filter((c) => !have.includes(c));
    if (missing.length) writeFileAtomic(caFile, have.trim() + '\n' + missing.join('\n') + '\n');
    const certFile = this.etcdTls.certFile;
    const issuerKey = signing.tls.CertIssuerPublicKey;
    const current = readFileSync(certFile, 'utf8');
    if (!issuerKey || issuedByKey(current, issuerKey)) return;
    // The cross-signed roots of earlier rotations stay after the new one: an
    // etcd member that has not restarted since still trusts only the root it started with.
    const chain = [...pemCertificates(signing.chain), ...pemCertificates(current).slice(1)].filter((c, i, all) => all.indexOf(c) === i);
    void issueEtcdCert(signing.issuer, a.nodeId, a.clusterId, Date.now(), [a.addr]).then((cert) => {
      if (this.active !== a) return;
      const clear = Buffer.from(cert.keyPem);
      writeKeyFiles([{ path: this.etcdKeyPath, clear }], this.kek);
      writeKeyFiles([{ path: this.keys.runtimeEtcdKey, clear }], undefined);
      writeFileAtomic(certFile, cert.certPem + chain.map((c) => c + '\n').join(''), 0o600);
      this.opts.log.info('etcd certificate renewed from the swarm\'s new root CA');
    }).catch((err: unknown) => this.opts.log.error({ err: (err as Error).message }, 'renewing etcd\'s certificate for the new root CA failed'));
  }

  private async activate(a: Active, state?: SwarmState): Promise<void> {
    this.active = a;
    // The node is ready as soon as its agent runs; refresh what the engine says of it.
    const description = await this.opts.describeNode().catch(() => undefined);
    // A manager restarted while the swarm briefly has no leader (its etcd just
    // started, peers busy) waits for one, bounded, rather than exit: the fault
    // test's kill -9 of a daemon saw it die on this write.
    const deadline = Date.now() + ACTIVATE_STORE_WAIT_MS;
    for (;;) {
      try {
        await a.store.mutate('nodes', a.nodeId, (n) => {
          if (description) n.Description = { ...description, Hostname: this.opts.hostname ?? description.Hostname, TLSInfo: n.Description.TLSInfo };
          n.Status = { State: 'ready', Addr: n.Status.Addr || a.addr };
          return n;
        });
        break;
      } catch (err) {
        if (!(isShoalError(err) && err.kind === 'unavailable') || Date.now() > deadline) throw err;
        this.opts.log.warn({ err: err.message }, 'store unavailable at start; retrying');
        await new Promise((r) => setTimeout(r, 1_000));
      }
    }
    // Worked out once per store revision: a follower's relay asks on every
    // call it relays (1,000 heartbeats a second at 5,000 nodes), and the
    // answer means a walk over every node.
    let known: KnownManagers & { revision: number } | undefined;
    const managers = (): KnownManagers => {
      if (known?.revision !== a.store.revision) {
        known = { revision: a.store.revision, ...managerList(a.store.list('nodes'), a.store.meta(LEADER_KEY)?.value, a.nodeId) };
      }
      return { leaderAddr: known.leaderAddr, addrs: [...known.addrs] };
    };
    // The node-to-node channel: the CA and membership services on the listen address.
    const listen = parseListenAddr(state?.listenAddr ?? this.opts.listenAddr);
    const newServer = (): GrpcServer => {
      const srv = new GrpcServer({ tls: () => a.tls, clusterId: () => a.clusterId, log: this.opts.log.child({ component: 'rpc' }) });
      registerCAServer(srv, { store: a.store, ca: () => a.ca, signing: () => this.signingOf(a), log: this.opts.log.child({ component: 'ca' }), now: () => Date.now(), managers,
        heartbeatMs: () => intervalInForceMs(a.store.first('cluster')?.Spec.Dispatcher?.HeartbeatPeriod, a.store.count('nodes')) });
      registerMembershipServer(srv, {
        store: () => this.active?.store, members: () => this.active?.admin,
        caKeyPem: () => this.signingOf(a).root.keyPem, dataKey: () => a.dataKey, log: this.opts.log.child({ component: 'membership' }),
      });
      return srv;
    };
    let server = newServer();
    let bound: number;
    try {
      bound = await server.listen(listen.host, listen.port);
    } catch (err) {
      await server.close();
      // Several one-node swarms on one machine (tests): without an explicit
      // --listen-addr, a busy default port falls back to a free one.
      if (state?.listenExplicit || !/EADDRINUSE|address already in use/i.test((err as Error).message)) {
        await this.deactivate();
        throw unavailable(`listen tcp ${listen.host}:${listen.port}: ${(err as Error).message}`);
      }
      this.opts.log.warn({ port: listen.port }, 'the swarm port is in use; listening on a free port instead (give --listen-addr to choose)');
      server = newServer();
      bound = await server.listen(listen.host, 0);
      await a.store.mutate('nodes', a.nodeId, (n) => {
        if (!n.ManagerStatus) return undefined;
        n.ManagerStatus = { ...n.ManagerStatus, Addr: `${a.addr.includes(':') ? `[${a.addr}]` : a.addr}:${bound}` };
        return n;
      });
    }
    a.server = server;
    const log = this.opts.log;
    a.components = await this.opts.startComponents({
      store: a.store, nodeId: a.nodeId, log,
      rpc: {
        server, connect: (addr, keepalive) => grpcChannel(addr, a.tls, log, { keepalive }), managers,
        connectManager: (addr) => grpcChannel(addr, a.tls, log, MANAGER_CHANNEL),
        // The session also tells of a demotion (this manager's mirror may have missed it, e.g. its
        // etcd member is gone); the version keeps an older session message from undoing a promotion.
        onRole: (role, version) => this.noteRole({ role, version: version ?? 0 }),
      },
    });
    // Renewal through the managers (this one included); every version of this node's object is a role notice.
    a.renewal = this.startRenewal(() => a.tls, (t) => { a.tls = t; }, () => managers().addrs);
    const renewal = a.renewal;
    a.trust = startTrustFollower({ held: () => a.tls, renew: () => renewal.renewNow(), log: this.opts.log.child({ component: 'root-ca' }) });
    this.syncKeyLock(a);
    this.syncRootCA(a);
    const noteRole = (n: Node): void => this.noteRole({ role: n.Spec.Role === 'manager' ? 'manager' : 'worker', version: n.Version.Index });
    a.unwatch = a.store.subscribe((events) => {
      if (events.some((e) => e.kind === 'cluster')) { this.syncKeyLock(a); this.syncRootCA(a); }
      for (const e of events) {
        if (e.kind === 'nodes' && e.id === a.nodeId && e.object) noteRole(e.object as Node);
      }
    });
    // What the mirror says now (a demotion while this daemon was down, or newer than the notice that promoted it).
    const self = a.store.get('nodes', a.nodeId);
    if (self) noteRole(self);
    a.election = new Election({
      store: a.store, nodeId: a.nodeId, log: this.opts.log.child({ component: 'election' }),
      lead: async (fence) => this.lead(a, fence),
    });
    a.election.start();
  }

  // Leader-only: the components with a fenced store, and etcd member upkeep.
  private async lead(a: Active, fence: Fence): Promise<LeaderComponents> {
    const store = a.store.fenced(fence);
    const upkeep = startMemberUpkeep({ store, etcd: a.admin, selfId: a.nodeId, log: this.opts.log.child({ component: 'members' }) });
    const rotation = startRotationLoop({ store, log: this.opts.log.child({ component: 'root-rotation' }) });
    const running = await this.opts.startLeaderComponents({ store, nodeId: a.nodeId, log: this.opts.log });
    a.components?.setLeading?.(store);
    return { stop: async () => { a.components?.setLeading?.(undefined); rotation.stop(); upkeep.stop(); await running.stop(); } };
  }

  private async deactivate(): Promise<void> {
    const a = this.active;
    if (!a) return;
    this.active = undefined;
    a.unwatch?.();
    a.renewal?.stop();
    a.trust?.stop();
    await a.election?.stop().catch((err: unknown) => this.opts.log.error({ err }, 'leaving the election failed'));
    await a.server?.close();
    await a.components?.stop().catch((err: unknown) => this.opts.log.error({ err }, 'stopping components failed'));
    await a.store.close().catch(() => undefined);
    await a.etcd.stop();
    this.keys.dropRuntime();
  }
}

// Does this etcd certificate carry what peers check (the etcd name, the advertise IP)?
function etcdCertFits(certPem: string, ip: string): boolean {
  const san = new X509Certificate(certPem).subjectAltName ?? '';
  return san.includes(`DNS:${ETCD_CERT_NAME}`) && san.includes(`IP Address:${ip}`);
}

function writeFileAtomic(path: string, data: string, mode = 0o644): void {
  mkdirSync(join(path, '..'), { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, data, { mode });
  renameSync(tmp, path);
}
