import { chmodSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import type { ServerOptions as TlsServerOptions } from 'node:https';
import { dirname } from 'node:path';
import type { Server } from 'node:http';
import { EngineClient } from '../engine/client';
import { createLogger, type Logger } from '../common/log';
import { createApiServer } from '../api/server';
import { registerSwarmApiRoutes } from '../api/routes/swarm-api';
import { registerRecoveryRoutes } from '../api/routes/recovery';
import { Router } from '../api/router';
import { EngineProxy } from '../api/proxy';
import { registerPingRoutes } from '../api/routes/ping';
import { registerInfoRoute } from '../api/routes/engine-info';
import { registerEventRoutes } from '../api/routes/events';
import { registerLogRoutes } from '../api/routes/logs';
import { engineNetworkLookup, registerNetworkRoutes } from '../api/routes/networks';
import { DockerExecutor } from '../agent/executor/docker-executor';
import { LocalLogSource } from '../agent/log-source';
import { startLogPublisher } from '../agent/log-publisher';
import { startAgent } from '../agent/agent';
import { RemoteControlPlane } from '../agent/remote-control-plane';
import { NetworkHost } from '../agent/network/network-host';
import { NodeAttachments } from '../agent/network/attachments';
import { registerContainerRoutes, type SwarmAttacher } from '../api/routes/containers';
import { LoadBalancer } from '../agent/network/loadbalancer/load-balancer';
import { DnsServer } from '../agent/network/dns/server';
import { removeNodeNetworks } from '../agent/network/leave';
import { DEFAULT_RUN_ROOT, HostTaskFiles } from '../agent/executor/task-files';
import type { Sealer } from '../manager/ca/ca-key';
import type { LogBroker } from '../manager/logbroker';
import type { PayloadSource } from '../manager/dispatcher/dispatcher';
import type { ApiTlsOptions, DaemonOptions } from './options';
import { SwarmNode, type NodeRpc, type RunningComponents } from './swarm-node';
import { secureDataRoot } from './data-root';
import type { Store } from '../store/store';
import type { Task } from '../model/types';

export interface Daemon {
  swarm: SwarmNode;
  stop(): Promise<void>;
}

// One node: the API in front of the engine, the swarm membership, and while
// in a swarm the manager loops and the agent.
export async function startDaemon(opts: DaemonOptions, log: Logger = createLogger(opts.logLevel)): Promise<Daemon> {
  let logBroker: LogBroker | undefined; // [logs helper] this manager's log broker while in a swarm
  // This node's agent's network attachments while in a swarm (docker run --network on attachable overlays).
  const attacher: AttacherSlot = {};
  const tls = opts.tls ? loadTls(opts.tls) : undefined; // before anything starts: a bad path stops here
  secureDataRoot(opts.dataRoot);
  // One client (one keep-alive agent) for every call Shoal makes to its engine; the proxy has its own.
  const engineClient = new EngineClient(opts.engine);
  // Task containers that mount the engine's socket get this daemon's instead (its first unix listener).
  const apiSocket = opts.hosts.find((h) => h.startsWith('unix://'))?.slice('unix://'.length);
  const executor = new DockerExecutor(engineClient, log.child({ component: 'executor' }), {}, apiSocket);
  let engineVersion = 'unknown';
  try { engineVersion = (await engineClient.getJson<{ Version: string }>('/version')).Version; } catch (err) {
    log.warn({ err: (err as Error).message, engine: opts.engine }, 'engine not answering yet');
  }

  // The swarm's data key, looked up at each use: the control API has it only
  // while this node is an active manager (and answers only while etcd does).
  const sealer: Sealer = {
    seal: (plaintext, aad) => swarm.control().dataKey.seal(plaintext, aad),
    open: (sealed, aad) => swarm.control().dataKey.open(sealed, aad),
  };

  const swarm = new SwarmNode({
    dataRoot: opts.dataRoot,
    etcdBinary: opts.etcdBinary,
    etcdClientUrl: opts.etcdClientUrl,
    etcdPeerUrl: opts.etcdPeerUrl,
    hostname: opts.hostname,
    listenAddr: opts.listenAddr,
    advertiseAddr: opts.advertiseAddr,
    dataPathAddr: opts.dataPathAddr,
    log,
    describeNode: () => executor.describeNode(),
    startComponents: async ({ store, nodeId, rpc }) => {
      const manager = await managerParts();
      const detach = events.attach(store);
      // The agent's secrets and configs come from this manager's control API (the dispatcher's job with more nodes).
      const payloads: PayloadSource = {
        revealSecret: (id) => swarm.control().secrets.reveal(id),
        revealConfig: (id) => swarm.control().configs.reveal(id),
      };
      // Registry credentials are unsealed only on their way to the task's node.
      const prepareTask = (task: Task): Task => swarm.control().services.revealTask(task);
      const logs = startNodeLogs(nodeId, rpc, engineClient, log, manager.startLogBroker({ store, server: rpc.server, log: log.child({ component: 'logbroker' }) }));
      logBroker = logs.broker;
      // The encrypted overlays' keys, opened for the views of the nodes that need them.
      const keyReader = new manager.NetworkKeyReader(sealer, (tag, err) => log.error({ tag, err: err.message }, 'a network key does not open; left out'));
      const networkKeys = () => keyReader.keys(store.first('cluster'));
      const dispatcher = manager.startDispatcher({
        store, server: rpc.server, log: log.child({ component: 'dispatcher' }), payloads, prepareTask, managers: logs.rpc.managers, networkKeys,
        connect: logs.rpc.connectManager ?? logs.rpc.connect,
      });
      const running = startManagerComponents(dispatcher, nodeId, logs.rpc, executor, log, opts.hostname, attacher);
      return { setLeading: running.setLeading, registered: running.registered, stop: async () => { detach(); logBroker = undefined; await running.stop(); await logs.stop(); } };
    },
    // The leader's components write through the fenced store (a deposed leader's writes are refused).
    startLeaderComponents: async ({ store }) => (await managerParts()).startLeaderComponents(store, log, sealer),
    startWorkerComponents: async ({ nodeId, rpc }) => {
      const logs = startNodeLogs(nodeId, rpc, engineClient, log);
      const agent = startAgentWithSession(nodeId, logs.rpc, executor, log, opts.hostname, attacher, 'spread');
      return { registered: agent.registered, stop: async () => { await agent.stop(); await logs.stop(); } };
    },
    removeTaskContainers: async (nodeId) => {
      await executor.removeNodeContainers(nodeId);
      await new HostTaskFiles(DEFAULT_RUN_ROOT, nodeId, log).releaseAll();
    },
    removeNodeNetworks: (nodeId) => removeNodeNetworks({ nodeId, engine: executor.engine, log: log.child({ component: 'network' }) })
      .catch((err: unknown) => log.error({ err }, 'removing the swarm networks from this node failed')),
  });

  const router = new Router();
  registerPingRoutes(router);
  registerInfoRoute(router, { engine: engineClient, swarmInfo: () => swarm.info() });
  registerSwarmApiRoutes(router, swarm, engineNetworkLookup(engineClient));
  registerRecoveryRoutes(router, swarm);
  registerNetworkRoutes(router, { swarm, engine: engineClient, attacher: () => attacher.current });
  registerContainerRoutes(router, { engine: engineClient, attacher: () => attacher.current, engineNetwork: engineNetworkLookup(engineClient) });
  registerLogRoutes(router, { swarm, broker: () => logBroker }); // [logs helper]
  // Swarm events are taken from the store while the node is in a swarm (attached in startComponents).
  const events = registerEventRoutes(router, { engine: engineClient });

  await swarm.start();

  const engine = new EngineProxy(opts.engine);
  const servers: Server[] = [];
  for (const host of opts.hosts) {
    const tcp = host.startsWith('tcp://');
    const server = createApiServer({ router, engine, engineVersion: () => engineVersion, log: log.child({ component: 'api' }), tls: tcp ? tls : undefined });
    await listen(server, host);
    servers.push(server);
    log.info({ host, tls: tcp && !!tls, tlsverify: tcp && !!opts.tls?.verify }, 'serving the Docker API');
    // dockerd's own warning, as loud: options.ts refused plain tcp unless --insecure-tcp.
    if (tcp && !opts.tls?.verify) log.warn({ host }, 'Binding to IP address without --tlsverify is insecure and gives root access on this machine to everyone who has access to your network.');
  }

  return {
    swarm,
    stop: async () => {
      // Hijacked streams (attach, exec) are not HTTP connections the server can close: the proxy ends them.
      engine.close();
      await Promise.all(servers.map((s) => new Promise<void>((resolve) => { s.close(() => resolve()); s.closeAllConnections(); })));
      await swarm.stop();
      events.close();
      engineClient.close();
    },
  };
}

// On every manager: the dispatcher on the node-to-node channel (serving
// sessions while this manager leads, relaying them to the leader otherwise), and this
// node's agent with a session like any worker's.
// The dispatcher reads the store; it writes (node status, task status) only
// as the leader, through the fenced store of the term (setLeading).
function startManagerComponents(dispatcher: Dispatcher, nodeId: string, rpc: NodeRpc, executor: DockerExecutor, log: Logger, hostname: string | undefined, attacher: AttacherSlot): RunningComponents & { setLeading(fenced: Store | undefined): void } {
  const agent = startAgentWithSession(nodeId, rpc, executor, log, hostname, attacher, 'first');
  return {
    setLeading: (fenced) => dispatcher.setLeading(fenced),
    registered: agent.registered,
    stop: async () => { await agent.stop(); await dispatcher.stop(); },
  };
}

// The agent of this node (manager or worker): tasks from the leader's
// dispatcher through a session with any manager, over mutual TLS.
interface AttacherSlot { current?: SwarmAttacher }

// A manager's own agent starts with itself; a worker with any manager.
function startAgentWithSession(nodeId: string, rpc: Omit<NodeRpc, 'server'>, executor: DockerExecutor, log: Logger, hostname: string | undefined, attacher: AttacherSlot, firstManager: 'first' | 'spread'): RunningComponents & { registered(timeoutMs: number): Promise<boolean> } {
  const agentLog = log.child({ component: 'agent' });
  // The node's network components: the overlay first, then the load balancer
  // and the DNS server, which build on its bridges.
  const networks = new NetworkHost({ nodeId, engine: executor.engine, log: log.child({ component: 'network' }) },
    (base) => [new LoadBalancer(base), new DnsServer(base)]);
  const controlPlane = new RemoteControlPlane({
    connect: rpc.connect, managers: rpc.managers().addrs, leaderAddr: rpc.managers().leaderAddr, heartbeatMs: rpc.heartbeatMs, firstManager, log: agentLog, onManagers: rpc.onManagers, onRole: rpc.onRole, onRootCA: rpc.onRootCA,
    describe: async () => ({ ...(await executor.describeNode()), ...(hostname ? { Hostname: hostname } : {}) }),
    onNetworkView: (view) => { void networks.setView(view); attachments.update(view); },
  });
  const attachments = new NodeAttachments({
    nodeId, engine: executor.engine, plane: controlPlane, ensure: (nets) => networks.overlay.ensure(nets), log: log.child({ component: 'attachments' }),
  });
  attacher.current = attachments;
  const agent = startAgent({
    nodeId, hostname, controlPlane, executor, log: agentLog,
    taskFiles: new HostTaskFiles(DEFAULT_RUN_ROOT, nodeId, agentLog),
    networks,
  });
  return {
    registered: (ms) => controlPlane.whenSession(ms),
    stop: async () => {
      if (attacher.current === attachments) delete attacher.current;
      attachments.close();
      await agent.stop(); await controlPlane.stop(); await networks.close();
    },
  };
}

// Logs across hosts (docs/ARCHITECTURE.md, "Logs"): on a manager the log
// broker serves `logs.*` on the node-to-node channel; on every node the log
// publisher keeps a subscription stream to every manager, following the
// manager list the dispatcher's session hands out. The returned `rpc` is the
// one to give the agent, so that list reaches the publisher too.
function startNodeLogs<R extends Omit<NodeRpc, 'server'>>(nodeId: string, rpc: R, engine: EngineClient, log: Logger, broker?: LogBroker): { broker?: LogBroker; rpc: R; stop(): Promise<void> } {
  const publisher = startLogPublisher({
    nodeId, source: new LocalLogSource(engine, nodeId), managers: rpc.managers().addrs, log: log.child({ component: 'log-publisher' }),
    dial: (address) => rpc.connect(address),
  });
  const withLogs: R = { ...rpc, onManagers: (addrs: string[]) => { rpc.onManagers?.(addrs); publisher.setManagers(addrs); } };
  return { broker, rpc: withLogs, stop: async () => { await publisher.stop(); await broker?.stop(); } };
}

// The manager's own components, loaded the first time this node is a manager:
// a worker never loads them (less heap on a worker, whose daemon must stay
// under 60 MB RSS idle).
type ManagerParts = typeof import('./manager-parts');
type Dispatcher = ReturnType<ManagerParts['startDispatcher']>;
const managerParts = (): Promise<ManagerParts> => import('./manager-parts');

// Certificates are read once at start: a missing or unreadable file stops the start with its path.
function loadTls(t: ApiTlsOptions): TlsServerOptions {
  const read = (flag: string, path: string): Buffer => {
    try { return readFileSync(path); } catch (err) { throw new Error(`${flag} ${path}: ${(err as Error).message}`); }
  };
  return {
    cert: read('--tlscert', t.cert),
    key: read('--tlskey', t.key),
    ...(t.verify ? { ca: read('--tlscacert', t.caCert), requestCert: true, rejectUnauthorized: true } : {}),
    minVersion: 'TLSv1.2',
  };
}

function listen(server: Server, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    if (host.startsWith('unix://')) {
      const path = host.slice('unix://'.length);
      mkdirSync(dirname(path), { recursive: true });
      rmSync(path, { force: true }); // a socket left by a daemon that was killed
      server.listen(path, () => { chmodSync(path, 0o660); resolve(); });
    } else {
      const u = new URL(host.replace(/^tcp:/, 'http:'));
      server.listen(Number(u.port), u.hostname, () => resolve());
    }
  });
}
