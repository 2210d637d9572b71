import type { Logger } from '../common/log';
import { requestMembership } from '../node/join';
import { grpcChannel } from '../rpc/grpc';
import { RemoteControlPlane } from '../agent/remote-control-plane';
import { startAgent, type RunningAgent } from '../agent/agent';
import { SimExecutor } from './sim-executor';

// Many simulated nodes in one process (issue 10's scale figures). Each is a
// real node to the managers: it joins with the worker token (its own key and
// certificate), keeps its own session with the leader's dispatcher over
// mutual TLS, heartbeats, and reports its tasks through the real agent; only
// the containers are pretend (SimExecutor).

export interface FleetOptions {
  managers: string[];       // host:port of the swarm's managers
  token: string;            // the worker join token
  count: number;
  prefix: string;           // hostnames <prefix>-00001, ...
  joinConcurrency: number;  // joins in flight at once (each makes a key and asks a manager to sign)
  joinTimeoutMs: number;
  nanoCPUs: number;
  memoryBytes: number;
  log: Logger;              // the fleet's own progress
  nodeLog: Logger;          // every node's agent (quiet by default: thousands of them)
  pingMs?: number;          // a fixed ping interval instead of a real node's (to compare rates)
}

// A simulated node pings as often as a real one (agent/keepalive.ts), so the
// managers answer as many pings as they would for real nodes. But it allows a
// minute for the answer: one process holds thousands of nodes' connections,
// and a pause of its event loop must not drop them all (a real node's daemon
// answers its one connection's pings at once). With 10 s to answer, the
// simulators (held up 3-6 s at a time on two loaded cores) lost 2,240
// connections in 40 s at 5,000 nodes, and the reconnections (TLS handshakes to
// busy managers) never caught up. A lost manager still shows as failed heartbeats.
const SIM_PING_TIMEOUT_MS = 60_000;

interface SimNode { nodeId: string; hostname: string; executor: SimExecutor; controlPlane: RemoteControlPlane; agent: RunningAgent }

// sessionMessages, tasksInMessages: what the nodes' sessions delivered so far, summed.
export interface FleetStats { joined: number; failed: number; sessions: number; containersRunning: number; sessionMessages: number; tasksInMessages: number }

export class Fleet {
  private readonly nodes: SimNode[] = [];
  private failed = 0;
  private stopping = false;

  constructor(private readonly opts: FleetOptions) {}

  stats(): FleetStats {
    let sessions = 0;
    let containersRunning = 0;
    let sessionMessages = 0;
    let tasksInMessages = 0;
    for (const n of this.nodes) {
      if (n.controlPlane.connectedTo) sessions++;
      containersRunning += n.executor.running;
      const r = n.controlPlane.received;
      sessionMessages += r.messages;
      tasksInMessages += r.tasks;
    }
    return { joined: this.nodes.length, failed: this.failed, sessions, containersRunning, sessionMessages, tasksInMessages };
  }

  // Joins every node (bounded concurrency); a node that cannot join is
  // counted and logged, the others go on. Resolves when all were tried.
  async start(): Promise<void> {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (!this.stopping && next < this.opts.count) {
        const i = ++next;
        const hostname = `${this.opts.prefix}-${String(i).padStart(5, '0')}`;
        try {
          this.nodes.push(await this.startNode(hostname));
        } catch (err) {
          this.failed++;
          this.opts.log.warn({ node: hostname, err: (err as Error).message }, 'simulated node could not join');
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, this.opts.joinConcurrency) }, worker));
  }

  private async startNode(hostname: string): Promise<SimNode> {
    const { opts } = this;
    const m = await requestMembership({ remoteAddrs: opts.managers, token: opts.token, hostname, timeoutMs: opts.joinTimeoutMs, log: opts.nodeLog });
    if (m.role !== 'worker') throw new Error(`joined as a ${m.role}: simulated nodes join with the worker token`);
    const log = opts.nodeLog.child({ node: hostname });
    const executor = new SimExecutor({ hostname, nanoCPUs: opts.nanoCPUs, memoryBytes: opts.memoryBytes });
    const controlPlane = new RemoteControlPlane({
      connect: (addr, keepalive) => grpcChannel(addr, m.tls, log, { keepalive: { timeMs: opts.pingMs ?? keepalive.timeMs, timeoutMs: SIM_PING_TIMEOUT_MS } }), managers: m.managers?.addrs ?? opts.managers, leaderAddr: m.managers?.leaderAddr, heartbeatMs: m.heartbeatMs, log,
      describe: () => executor.describeNode(),
    });
    const agent = startAgent({ nodeId: m.nodeId, controlPlane, executor, log, hostname });
    return { nodeId: m.nodeId, hostname, executor, controlPlane, agent };
  }

  // Ends every session (the nodes stay in the swarm and go Down, as a powered-off host).
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.nodes.map(async (n) => { await n.agent.stop(); await n.controlPlane.stop(); }));
  }
}
