import { chmodSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import type { ServerOptions as TlsServerOptions } from 'node:https';
import { dirname } from 'node:path';
import type { Server } from 'node:http';
import Dockerode from 'dockerode';
import { createLogger, type Logger } from '../common/log';
import { createApiServer } from '../api/server';
import { registerSwarmApiRoutes } from '../api/routes/swarm-api';
import { Router } from '../api/router';
import { EngineProxy } from '../api/proxy';
import { registerPingRoutes } from '../api/routes/ping';
import { registerInfoRoute } from '../api/routes/engine-info';
import { registerEventRoutes } from '../api/routes/events';
import { registerLogRoutes } from '../api/routes/logs';
import { DockerExecutor } from '../agent/executor/docker-executor';
import { startAgent } from '../agent/agent';
import { LocalControlPlane, type PayloadSource } from '../agent/local-control-plane';
import { DEFAULT_RUN_ROOT, HostTaskFiles } from '../agent/executor/task-files';
import { startOrchestrator } from '../manager/orchestrator/loop';
import { startScheduler } from '../manager/scheduler/loop';
import type { ApiTlsOptions, DaemonOptions } from './options';
import { SwarmNode, type RunningComponents } from './swarm-node';
import { secureDataRoot } from './data-root';
import type { Store } from '../store/store';

export interface Daemon {
  swarm: SwarmNode;
  stop(): Promise<void>;
}

function dockerFor(address: string): Dockerode {
  if (address.startsWith('unix://')) return new Dockerode({ socketPath: address.slice('unix://'.length) });
  const u = new URL(address.replace(/^tcp:/, 'http:'));
  return new Dockerode({ host: u.hostname, port: Number(u.port) });
}

// One node: the API in front of the engine, the swarm membership, and while
// in a swarm the manager loops and the agent.
export async function startDaemon(opts: DaemonOptions, log: Logger = createLogger(opts.logLevel)): Promise<Daemon> {
  const tls = opts.tls ? loadTls(opts.tls) : undefined; // before anything starts: a bad path stops here
  secureDataRoot(opts.dataRoot);
  const docker = dockerFor(opts.engine);
  const executor = new DockerExecutor(docker, log.child({ component: 'executor' }));
  let engineVersion = 'unknown';
  try { engineVersion = (await docker.version()).Version; } catch (err) {
    log.warn({ err: (err as Error).message, engine: opts.engine }, 'engine not answering yet');
  }

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
    startComponents: async ({ store, nodeId }) => {
      const detach = events.attach(store);
      // The agent's secrets and configs come from this manager's control API (the dispatcher's job with more nodes).
      const payloads: PayloadSource = {
        revealSecret: (id) => swarm.control().secrets.reveal(id),
        revealConfig: (id) => swarm.control().configs.reveal(id),
      };
      const running = await startComponents(store, nodeId, executor, log, opts.hostname, payloads);
      return { stop: async () => { detach(); await running.stop(); } };
    },
    // The leader's components write through the fenced store (a deposed leader's writes are refused).
    startLeaderComponents: async ({ store }) => startLeaderComponents(store, log),
    removeTaskContainers: async (nodeId) => {
      await executor.removeNodeContainers(nodeId);
      await new HostTaskFiles(DEFAULT_RUN_ROOT, nodeId, log).releaseAll();
    },
  });

  const router = new Router();
  registerPingRoutes(router);
  registerInfoRoute(router, { engineAddress: opts.engine, swarmInfo: () => swarm.info() });
  registerSwarmApiRoutes(router, swarm);
  registerLogRoutes(router, { swarm, docker });
  // Swarm events are taken from the store while the node is in a swarm (attached in startComponents).
  const events = registerEventRoutes(router, { engineAddress: opts.engine });

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
    },
  };
}

// On the leader only (swarm-node.ts runs the election), with a fenced store.
async function startLeaderComponents(store: Store, log: Logger): Promise<RunningComponents> {
  const orchestrator = startOrchestrator({ store, log: log.child({ component: 'orchestrator' }) });
  const scheduler = startScheduler({ store, log: log.child({ component: 'scheduler' }) });
  return {
    stop: async () => {
      orchestrator.stop();
      scheduler.stop();
    },
  };
}

// On every manager: this node's agent over its local store.
async function startComponents(store: Store, nodeId: string, executor: DockerExecutor, log: Logger, hostname: string | undefined, payloads: PayloadSource): Promise<RunningComponents> {
  const agentLog = log.child({ component: 'agent' });
  const agent = startAgent({
    nodeId, hostname, controlPlane: new LocalControlPlane(store, payloads), executor, log: agentLog,
    taskFiles: new HostTaskFiles(DEFAULT_RUN_ROOT, nodeId, agentLog),
  });
  return { stop: async () => { await agent.stop(); } };
}

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
