import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { InitRequest, Node, NodeDescription, SwarmInfo } from '../model/types';
import type { SwarmMembership } from '../api/routes/membership';
import { ALREADY_IN_SWARM, invalid, LEAVE_LAST_MANAGER, NOT_A_MANAGER, NOT_IN_SWARM, unavailable } from '../common/errors';
import { newId } from '../common/ids';
import type { Logger } from '../common/log';
import { nowIso } from '../common/time';
import { certSubjectFields, createRootCA, issueEtcdCert, issueNodeCert, newJoinToken, tlsInfo, type RootCA } from '../manager/ca/ca';
import { openCAKey, sealCAKey, withSealedCAKey } from '../manager/ca/ca-key';
import { ControlApi } from '../manager/controlapi';
import { validateInitRequest } from '../manager/controlapi/validate-swarm';
import { clusterOf, defaultSwarmSpec, mergeSwarmSpec, publicSwarm } from '../manager/controlapi/cluster';
import { loadDataKey, SecretBox, writeDataKey } from '../manager/controlapi/secret-box';
import { EtcdBackend } from '../store/etcd-backend';
import { etcdClientOptions, EtcdProcess, type EtcdTls } from '../store/etcd-process';
import type { ClusterObject } from '../store/objects';
import { Store } from '../store/store';
import { resolveAdvertiseAddr } from './address';

export interface SwarmNodeOptions {
  dataRoot: string;
  etcdBinary: string;
  etcdClientUrl: string;
  etcdPeerUrl: string;
  hostname?: string;
  log: Logger;
  // Node facts from the engine (agent/executor), and the per-node components
  // that run while this node is in a swarm (manager loops, agent).
  describeNode(): Promise<NodeDescription>;
  startComponents(ctx: { store: Store; nodeId: string; log: Logger }): Promise<RunningComponents>;
  // Removes the containers of this node's tasks (leaving a swarm does that).
  removeTaskContainers(nodeId: string): Promise<void>;
}

export interface RunningComponents { stop(): Promise<void> }

interface Active {
  nodeId: string;
  clusterId: string;
  ca: RootCA;
  addr: string;
  etcd: EtcdProcess;
  store: Store;
  control: ControlApi;
  components?: RunningComponents;
}

// This node's membership of a swarm: init, restore after a restart, leave.
// While active it owns the local etcd member, the store, and the components.
// The node certificate on disk is what says "this node is in a swarm": it is
// written last on init, read first on start, and removed on leave.
export class SwarmNode implements SwarmMembership {
  private active?: Active;
  private busy: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: SwarmNodeOptions) {}

  private get certDir(): string { return join(this.opts.dataRoot, 'certificates'); }
  private get etcdDir(): string { return join(this.opts.dataRoot, 'etcd'); }
  private get nodeCertPath(): string { return join(this.certDir, 'swarm-node.crt'); }
  private get nodeKeyPath(): string { return join(this.certDir, 'swarm-node.key'); }
  private get caCertPath(): string { return join(this.certDir, 'swarm-root-ca.crt'); }
  // etcd's server, peer and client certificate (etcd trusts only the swarm CA).
  private get etcdTls(): EtcdTls {
    return { caFile: this.caCertPath, certFile: join(this.certDir, 'etcd.crt'), keyFile: join(this.certDir, 'etcd.key') };
  }
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
      if (!existsSync(this.nodeCertPath)) return;
      const certPem = readFileSync(this.nodeCertPath, 'utf8');
      const { cn: nodeId, o: clusterId } = certSubjectFields(certPem);
      const caPem = readFileSync(this.caCertPath, 'utf8');
      this.migrateEtcdCert();
      const dataKey = loadDataKey(this.dataKeyPath);
      const { etcd, store } = await this.openState(nodeId, clusterId);
      let ca: RootCA;
      let box: SecretBox;
      try {
        const cluster = clusterOf(store);
        if (!cluster) throw new Error(`node certificate for ${nodeId} found but the cluster state has no cluster object; remove ${this.certDir} to start over`);
        if (cluster.ID !== clusterId) throw new Error(`etcd holds cluster ${cluster.ID} but this node's certificate is for cluster ${clusterId}: refusing to use it`);
        box = new SecretBox(dataKey ?? this.firstDataKey(store.count('secrets'), cluster.SealedCAKey !== undefined));
        ca = { certPem: caPem, keyPem: openCAKey(box, cluster) };
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
      const node = store.get('nodes', nodeId);
      const addr = node?.Status.Addr ?? resolveAdvertiseAddr(undefined).ip;
      await this.activate({ nodeId, clusterId, ca, addr, etcd, store, control: this.newControl(store, nodeId, ca, box) });
      this.opts.log.info({ nodeId, clusterId }, 'swarm state restored');
    });
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
    if (existsSync(t.certFile) && existsSync(t.keyFile)) return;
    copyFileSync(this.nodeKeyPath, t.keyFile);
    copyFileSync(this.nodeCertPath, t.certFile);
    this.opts.log.info('etcd certificate made from the node certificate (etcd ran without TLS before)');
  }

  init(req: InitRequest): Promise<string> {
    return this.exclusive(async () => {
      if (this.active) throw unavailable(ALREADY_IN_SWARM);
      validateInitRequest(req); // spec checks and no autolock (controlapi/validate-swarm.ts)
      const advertise = resolveAdvertiseAddr(req.AdvertiseAddr || undefined, listenPort(req.ListenAddr));
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
      const dataKey = SecretBox.generateKey();
      const box = new SecretBox(dataKey);
      const etcdCert = await issueEtcdCert(ca, nodeId, clusterId);
      const nodeCert = await issueNodeCert(ca, nodeId, 'manager', clusterId, spec.CAConfig?.NodeCertExpiry ?? 7_776_000_000_000_000);
      const description = await this.opts.describeNode();
      if (this.opts.hostname) description.Hostname = this.opts.hostname;

      // A state directory without a node certificate is a half-made earlier
      // attempt: nothing in it was ever acknowledged as a swarm.
      rmSync(this.etcdDir, { recursive: true, force: true });
      // etcd needs its certificate to start; the data key seals the CA key.
      writeFileAtomic(this.caCertPath, ca.certPem);
      writeFileAtomic(this.etcdTls.keyFile, etcdCert.keyPem, 0o600);
      writeFileAtomic(this.etcdTls.certFile, etcdCert.certPem, 0o600);
      writeDataKey(this.dataKeyPath, dataKey);
      const { etcd, store } = await this.openState(nodeId, clusterId);
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
        await store.txn().create('cluster', cluster).create('nodes', node).commit();
        writeFileAtomic(this.nodeKeyPath, nodeCert.keyPem, 0o600);
        writeFileAtomic(this.nodeCertPath, nodeCert.certPem); // last: the commit marker
      } catch (e) {
        await store.close().catch(() => undefined);
        await etcd.stop();
        rmSync(this.etcdDir, { recursive: true, force: true });
        throw e;
      }
      await this.activate({ nodeId, clusterId, ca, addr: advertise.ip, etcd, store, control: this.newControl(store, nodeId, ca, box) });
      this.opts.log.info({ nodeId, clusterId, addr: advertise.ip }, 'swarm initialised');
      return nodeId;
    });
  }

  async join(_req: Record<string, unknown>): Promise<void> {
    if (this.active) throw unavailable(ALREADY_IN_SWARM);
    throw unavailable('joining another node is not built yet: this Shoal release runs one-node swarms');
  }

  leave(force: boolean): Promise<void> {
    return this.exclusive(async () => {
      const a = this.active;
      if (!a) throw unavailable(NOT_IN_SWARM);
      const managers = a.store.list('nodes').filter((n) => n.Spec.Role === 'manager');
      if (!force && managers.length <= 1) throw unavailable(LEAVE_LAST_MANAGER);
      await this.deactivate();
      await this.opts.removeTaskContainers(a.nodeId);
      rmSync(this.nodeCertPath, { force: true });
      rmSync(this.certDir, { recursive: true, force: true });
      rmSync(this.etcdDir, { recursive: true, force: true });
      this.opts.log.info({ nodeId: a.nodeId }, 'left the swarm');
    });
  }

  // Daemon shutdown: stop everything, keep all state.
  stop(): Promise<void> { return this.exclusive(() => this.deactivate()); }

  info(): SwarmInfo {
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
    if (!this.active) throw unavailable(NOT_A_MANAGER);
    // Fail fast while the store is down rather than let a request wait on etcd.
    const health = this.active.etcd.health();
    if (!health.ok) throw unavailable(`rpc error: code = Unavailable desc = the swarm's store is not available on this manager: ${health.reason}`);
    return this.active.control;
  }

  private newControl(store: Store, nodeId: string, ca: RootCA, dataKey: SecretBox): ControlApi {
    return new ControlApi({ store, localNodeId: nodeId, now: () => Date.now() }, () => ca, dataKey);
  }

  // Process exit after a fatal error: stop our etcd without waiting.
  killNow(): void { this.active?.etcd.killNow(); }

  private async openState(nodeId: string, clusterId: string): Promise<{ etcd: EtcdProcess; store: Store }> {
    const etcd = new EtcdProcess({
      binary: this.opts.etcdBinary,
      dataDir: this.etcdDir,
      name: nodeId,
      clientUrl: this.opts.etcdClientUrl,
      peerUrl: this.opts.etcdPeerUrl,
      tls: this.etcdTls,
      clusterToken: clusterId,
      log: this.opts.log.child({ component: 'etcd' }),
    });
    await etcd.start();
    try {
      const store = await Store.open(new EtcdBackend(etcdClientOptions(this.opts.etcdClientUrl, this.etcdTls)), this.opts.log.child({ component: 'store' }));
      return { etcd, store };
    } catch (e) {
      await etcd.stop();
      throw e;
    }
  }

  private async activate(a: Active): Promise<void> {
    this.active = a;
    // The node is ready as soon as its agent runs; refresh what the engine says of it.
    const description = await this.opts.describeNode().catch(() => undefined);
    await a.store.mutate('nodes', a.nodeId, (n) => {
      if (description) n.Description = { ...description, Hostname: this.opts.hostname ?? description.Hostname, TLSInfo: n.Description.TLSInfo };
      n.Status = { State: 'ready', Addr: n.Status.Addr };
      return n;
    });
    a.components = await this.opts.startComponents({ store: a.store, nodeId: a.nodeId, log: this.opts.log });
  }

  private async deactivate(): Promise<void> {
    const a = this.active;
    if (!a) return;
    this.active = undefined;
    await a.components?.stop().catch((err: unknown) => this.opts.log.error({ err }, 'stopping components failed'));
    await a.store.close().catch(() => undefined);
    await a.etcd.stop();
  }
}

function listenPort(listenAddr: string | undefined): number {
  const m = /:(\d+)$/.exec(listenAddr ?? '');
  return m ? Number(m[1]) : 2377;
}

function writeFileAtomic(path: string, data: string, mode = 0o644): void {
  mkdirSync(join(path, '..'), { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, data, { mode });
  renameSync(tmp, path);
}
