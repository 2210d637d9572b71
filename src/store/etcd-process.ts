import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, fchmodSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { connect } from 'node:net';
import { join } from 'node:path';
import { getPriority, setPriority } from 'node:os';
import type { IOptions } from 'etcd3';
import type { Logger } from '../common/log';
import { allPids, alive, cmdlineArgs } from '../common/proc';
import { DEFAULT_RESTART_POLICY, nextRestart, type RestartPolicy } from './etcd-restart';

// The files etcd and its only client (this daemon) use for mutual TLS: the
// swarm's root CA, and one certificate and key signed by it.
export interface EtcdTls {
  caFile: string;
  certFile: string;
  keyFile: string;
}

export interface EtcdProcessOptions {
  binary: string;        // etcd executable (Debian: /usr/bin/etcd)
  dataDir: string;       // under Shoal's --data-root
  name: string;          // member name (the node ID)
  clientUrl: string;     // https://127.0.0.1:4379 (https only: client-certificate auth)
  peerUrl: string;       // https://127.0.0.1:4380
  tls: EtcdTls;
  clusterToken?: string; // --initial-cluster-token when the member is made (the swarm's cluster ID)
  // How the member is made the first time (ignored by etcd once its data exists):
  // 'new' with only itself (swarm init), or 'existing' with the cluster's
  // members as a joining manager got them (name=peerUrl,...).
  initialCluster?: string;
  clusterState?: 'new' | 'existing';
  // Peer URL to listen on when it differs from the advertised one (0.0.0.0 ...).
  listenPeerUrl?: string;
  // Only certificates valid for this DNS name may connect as a peer
  // (etcd's --peer-cert-allowed-hostname): etcd members' certificates carry
  // it, node certificates never do.
  allowedHostname?: string;
  // Raft timing (ms). The defaults suit hosts on one LAN (a lab: sub-ms RTT).
  heartbeatMs?: number;
  electionMs?: number;
  restartPolicy?: RestartPolicy;
  // `swarm init --force-new-cluster`: the first start makes this member a
  // one-member cluster from its own data (etcd's --force-new-cluster: same
  // cluster and member IDs, every other member dropped); restarts are normal.
  forceNewCluster?: boolean;
  log: Logger;
}

export interface EtcdHealth {
  ok: boolean;
  reason: string;        // why not, when not ok
}

// What the etcd3 client needs to reach this member (hosts and credentials).
export function etcdClientOptions(clientUrl: string, tls: EtcdTls): IOptions {
  return {
    hosts: clientUrl,
    credentials: { rootCertificate: readFileSync(tls.caFile), certChain: readFileSync(tls.certFile), privateKey: readFileSync(tls.keyFile) },
  };
}

// etcd's environment: the daemon's, with Go's GC at GOGC=25 unless GOGC is
// set. An idle member's heap is mostly garbage from heartbeats (every 50 ms to
// each peer) and probes: Go's default (GOGC=100, collect when the heap has
// doubled) left a three-member etcd at 43-46 MB RSS idle, 25 at 32-34 MB, 10
// at 31-32 MB (five-host lab); collecting more often costs little CPU on a
// heap this small.
// No GOMEMLIMIT by default: at 24 MiB an idle member was 3-5 MB smaller, but
// with 1,000 nodes joined (bench/scale.ts) each member's heap passed the limit
// and Go collected back to back, up to its 50% GC CPU cap: three etcds took
// 1.2 of the two cores doing some 10 writes a second. GOGC or GOMEMLIMIT in
// the daemon's environment are passed on.
export const ETCD_GOGC = '25';
// etcd runs this much nicer than its daemon (lower: scheduled first). On a
// host whose cores the daemon and its agents keep busy, etcd waited for the
// CPU: at 5,000 nodes the etcd leader logged 844 heartbeats sent late in
// 12 minutes, its clients' calls and lease renewals timed out, and the
// manager's lease lapsed though the manager was renewing it
// (bench/scale.ts). etcd's own use is a fraction of the daemon's, so going
// first costs the daemon little.
export const ETCD_NICE_BELOW_DAEMON = 5;

// Gives etcd `ETCD_NICE_BELOW_DAEMON` over the daemon's own priority; the nice
// value set, or undefined when the daemon may not (not root): etcd then
// runs as the daemon does.
function favour(pid: number): number | undefined {
  try {
    const nice = Math.max(-20, getPriority() - ETCD_NICE_BELOW_DAEMON);
    setPriority(pid, nice);
    return nice;
  } catch {
    return undefined;
  }
}
export const ETCD_SNAPSHOT_COUNT = 2000;
export function etcdEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { ...env, GOGC: env.GOGC ?? ETCD_GOGC };
}

// Every second: losing the etcd leader (quorum) shows in /info and in write errors within about 2 s.
const PROBE_INTERVAL_MS = 1_000;
const PROBE_TIMEOUT_MS = 1_500;
const PROBE_FAILURES_DOWN = 2;  // a single slow answer on a busy host is not an outage
const START_TIMEOUT_MS = 30_000;
// etcd's defaults are 100/1000 ms for WANs. Our members talk over a LAN:
// a follower that misses 10 heartbeats (500 ms) starts an election, so a dead
// etcd leader is replaced in about 0.5-1 s (election timeouts are randomised
// over [T, 2T)). A spurious election costs a short pause, never safety.
export const ETCD_HEARTBEAT_MS = 50;
export const ETCD_ELECTION_MS = 500;

interface EtcdIdentity { clusterId: string; memberId: string }

// Runs the local etcd member as a child process and keeps it running: if it
// dies, it is started again with the same data directory, so acknowledged
// writes (fsynced by etcd before it answers) survive; many exits in a short
// time are a crash loop, retried slowly and reported by health(). etcd accepts
// only clients with a certificate from the swarm CA (this daemon), on its
// client and peer URLs alike. It is stopped with Shoal.
export class EtcdProcess {
  private child?: ChildProcess;
  private logFd?: number;
  private stopping = false;
  private exits: number[] = [];
  private state: EtcdHealth = { ok: false, reason: 'etcd is starting' };
  private startupExit?: (why: string) => void;
  private restartTimer?: NodeJS.Timeout;
  private probeTimer?: NodeJS.Timeout;
  private probeFailures = 0;
  private recovering = false; // start-up or restart: waiting for etcd to answer
  private probing = false;
  // The probe's one kept-alive TLS connection to etcd (see call()).
  private agent?: Agent;
  private forceOnce: boolean;

  constructor(private readonly opts: EtcdProcessOptions) { this.forceOnce = opts.forceNewCluster === true; }

  get pid(): number | undefined { return this.child?.pid; }
  health(): EtcdHealth { return { ...this.state }; }

  private get pidFile(): string { return join(this.opts.dataDir, 'etcd.pid'); }
  private get memberDir(): string { return join(this.opts.dataDir, 'member-data'); }
  private get identityFile(): string { return join(this.opts.dataDir, 'identity.json'); }
  get logPath(): string { return join(this.opts.dataDir, '..', 'etcd.log'); }

  async start(): Promise<void> {
    const o = this.opts;
    for (const url of [o.clientUrl, o.peerUrl, o.listenPeerUrl ?? o.peerUrl]) {
      if (!/^https:\/\/[^/]+:\d+$/.test(url)) throw new Error(`etcd URL ${url}: expected https://HOST:PORT (etcd is reached only over mutual TLS)`);
    }
    mkdirSync(o.dataDir, { recursive: true, mode: 0o700 });
    chmodSync(o.dataDir, 0o700);
    this.openLog();
    await this.stopLeftovers();
    await assertPortFree(o.clientUrl, 'client');
    await assertPortFree(o.listenPeerUrl ?? o.peerUrl, 'peer');

    const exited = new Promise<never>((_, reject) => {
      this.startupExit = (why) => reject(new Error(`etcd exited while starting (${why}); last lines of ${this.logPath}:\n${this.logTail()}`));
    });
    exited.catch(() => undefined);
    this.recovering = true;
    try {
      this.spawnChild();
      await Promise.race([this.waitHealthy(START_TIMEOUT_MS), exited]);
      await this.checkIdentity();
      await this.fixPeerUrl();
    } catch (e) {
      this.startupExit = undefined;
      await this.stop();
      throw e;
    } finally { this.recovering = false; }
    this.startupExit = undefined;
    this.state = { ok: true, reason: '' };
    this.probeTimer = setInterval(() => { void this.probe(); }, PROBE_INTERVAL_MS);
    this.probeTimer.unref();
  }

  // One log file for every incarnation of the child, readable by root only.
  private openLog(): void {
    if (this.logFd !== undefined) return;
    this.logFd = openSync(this.logPath, 'a', 0o600);
    fchmodSync(this.logFd, 0o600);
  }

  private spawnChild(): ChildProcess {
    const o = this.opts;
    const t = o.tls;
    const args = [
      '--name', o.name,
      '--data-dir', this.memberDir,
      '--listen-client-urls', o.clientUrl,
      '--advertise-client-urls', o.clientUrl,
      '--listen-peer-urls', o.listenPeerUrl ?? o.peerUrl,
      '--initial-advertise-peer-urls', o.peerUrl,
      '--initial-cluster', o.initialCluster ?? `${o.name}=${o.peerUrl}`,
      '--initial-cluster-state', o.clusterState ?? 'new',
      ...(o.clusterToken ? ['--initial-cluster-token', o.clusterToken] : []),
      '--cert-file', t.certFile, '--key-file', t.keyFile, '--trusted-ca-file', t.caFile, '--client-cert-auth',
      '--peer-cert-file', t.certFile, '--peer-key-file', t.keyFile, '--peer-trusted-ca-file', t.caFile, '--peer-client-cert-auth',
      // Peers only: etcd 3.4's own JSON gateway (our status probe) fails the
      // client-side check, and the client URL is on loopback anyway.
      ...(o.allowedHostname ? ['--peer-cert-allowed-hostname', o.allowedHostname] : []),
      '--heartbeat-interval', String(o.heartbeatMs ?? ETCD_HEARTBEAT_MS),
      '--election-timeout', String(o.electionMs ?? ETCD_ELECTION_MS),
      // A member back from a partition asks before it campaigns, so its
      // higher term does not depose a healthy leader (Docker's raft does).
      '--pre-vote',
      // A fenced write adds one compare to a transaction of up to 128 operations (store/backend.ts).
      '--max-txn-ops', '256',
      // History is compacted by the daemon (store/maintenance.ts), behind
      // the mirror's revision. etcd 3.4 keeps its raft log in memory from
      // 5,000 entries (fixed) before its last snapshot: up to 5,000 + this
      // count entries, each a transaction of up to 128 writes (~70 KB of
      // tasks). At 10,000 that was 880 MB per member after a 150,000-task
      // create (bench/scale.ts); the default (100,000) costs more still.
      '--snapshot-count', String(ETCD_SNAPSHOT_COUNT),
      '--quota-backend-bytes', String(2 * 1024 ** 3),
      '--logger', 'zap',
      '--log-outputs', 'stderr',
      ...(this.forceOnce ? ['--force-new-cluster'] : []),
    ];
    this.forceOnce = false;
    const child = spawn(o.binary, args, { stdio: ['ignore', this.logFd!, this.logFd!], env: etcdEnv(process.env) });
    this.child = child;
    if (child.pid) writeFileSync(this.pidFile, String(child.pid), { mode: 0o600 });
    const nice = child.pid ? favour(child.pid) : undefined;
    o.log.info({ pid: child.pid, clientUrl: o.clientUrl, ...(nice !== undefined ? { nice } : {}) }, 'etcd started');
    // 'error' (cannot spawn, cannot signal) and 'exit' may both come, or either alone.
    child.on('error', (err) => this.gone(child, `cannot run ${o.binary}: ${err.message}`));
    child.on('exit', (code, signal) => this.gone(child, signal ? `signal ${signal}` : `exit code ${code}`));
    return child;
  }

  private gone(child: ChildProcess, why: string): void {
    if (this.child !== child) return;
    this.child = undefined;
    if (this.stopping) return;
    if (this.startupExit) { this.startupExit(why); return; }
    const now = Date.now();
    const d = nextRestart([...this.exits, now], now, this.opts.restartPolicy);
    this.exits = d.recentExits;
    const reason = d.crashLoop
      ? `etcd is crash-looping: ${d.recentExits.length} exits within ${Math.round((this.opts.restartPolicy ?? DEFAULT_RESTART_POLICY).windowMs / 1000)} s (last: ${why}); next attempt in ${Math.round(d.delayMs / 1000)} s, see ${this.logPath}`
      : `etcd exited (${why}); restarting it`;
    this.state = { ok: false, reason };
    if (d.crashLoop) this.opts.log.error({ why, delayMs: d.delayMs, exits: d.recentExits.length, log: this.logPath }, 'etcd is crash-looping');
    else this.opts.log.warn({ why, delayMs: d.delayMs }, 'etcd exited; restarting');
    this.restartTimer = setTimeout(() => { void this.restart(); }, d.delayMs);
  }

  private async restart(): Promise<void> {
    if (this.stopping) return;
    const child = this.spawnChild();
    this.recovering = true;
    try {
      await this.waitHealthy(START_TIMEOUT_MS, () => this.child === child);
      await this.checkIdentity();
      if (this.child !== child) return;
      this.state = { ok: true, reason: '' };
      this.probeFailures = 0;
      this.opts.log.info({ pid: child.pid }, 'etcd is back');
    } catch (e) {
      if (this.child !== child || this.stopping) return; // its exit is handled by gone()
      // Alive but not answering, or not ours: kill it; gone() schedules the next try.
      this.state = { ok: false, reason: (e as Error).message };
      child.kill('SIGKILL');
    } finally { this.recovering = false; }
  }

  // While believed up, a periodic status request: a hung etcd is as down as a dead one.
  private async probe(): Promise<void> {
    if (this.probing || this.recovering || !this.child || this.stopping) return;
    this.probing = true;
    try {
      await this.status(PROBE_TIMEOUT_MS);
      this.probeFailures = 0;
      if (!this.state.ok && this.child && !this.recovering) this.state = { ok: true, reason: '' };
    } catch (e) {
      if (++this.probeFailures >= PROBE_FAILURES_DOWN && this.child && !this.recovering) {
        this.state = { ok: false, reason: `etcd does not answer: ${(e as Error).message}` };
      }
    } finally { this.probing = false; }
  }

  // A Shoal daemon killed with -9 leaves its etcd running on our ports and
  // data: stop that one (it has fsynced what it acknowledged) before starting.
  // It is found by its --data-dir argument, whatever its pid file says.
  private async stopLeftovers(): Promise<void> {
    const pids = new Set<number>();
    try { pids.add(Number(readFileSync(this.pidFile, 'utf8'))); } catch { /* none recorded */ }
    for (const pid of allPids()) pids.add(pid);
    for (const pid of pids) {
      if (!pid || pid === process.pid) continue;
      const args = cmdlineArgs(pid);
      const i = args.indexOf('--data-dir');
      if (i < 0 || args[i + 1] !== this.memberDir) continue;
      this.opts.log.info({ pid }, 'stopping etcd left by an earlier daemon');
      await terminate(pid);
    }
  }

  // etcd's own status (maintenance API over the JSON gateway, with our
  // client certificate): cluster and member identity, and whether it answers.
  private async status(timeoutMs: number): Promise<EtcdIdentity & { leader: string }> {
    const s = await this.call('/v3/maintenance/status', {}, timeoutMs) as { header?: { cluster_id?: string; member_id?: string }; leader?: string };
    const clusterId = s.header?.cluster_id;
    const memberId = s.header?.member_id;
    if (!clusterId || !memberId) throw new Error('etcd status without cluster or member ID');
    if (!s.leader || s.leader === '0') throw new Error('etcd has no leader');
    return { clusterId, memberId, leader: s.leader };
  }

  private call(path: string, body: unknown, timeoutMs: number): Promise<unknown> {
    // One connection, kept alive and reused: the probe runs every second, and
    // a new TLS connection each time (a handshake on both sides, a new OpenSSL
    // context in the daemon) cost CPU and left an idle manager's malloc heap
    // growing. A connection etcd dropped (a restart) is replaced at the next call.
    this.agent ??= new Agent({
      keepAlive: true, maxSockets: 1, maxFreeSockets: 1,
      ca: readFileSync(this.opts.tls.caFile), cert: readFileSync(this.opts.tls.certFile), key: readFileSync(this.opts.tls.keyFile),
    });
    const payload = JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = request(`${this.opts.clientUrl}${path}`, {
        method: 'POST', agent: this.agent,
        headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) },
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode !== 200) { reject(new Error(`etcd ${path}: HTTP ${res.statusCode} ${text.slice(0, 200)}`)); return; }
          try { resolve(JSON.parse(text)); } catch { reject(new Error(`etcd ${path}: not JSON`)); }
        });
      });
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  async waitHealthy(timeoutMs: number, stillWanted: () => boolean = () => true): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try { await this.status(2_000); return; } catch (e) {
        if (!stillWanted()) throw new Error('etcd is gone');
        if (Date.now() > deadline) throw new Error(`etcd at ${this.opts.clientUrl} not healthy after ${timeoutMs} ms: ${(e as Error).message}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  // The member answering must be the one this data directory made: its IDs
  // are recorded the first time it answers and compared on every start.
  private async checkIdentity(): Promise<void> {
    const seen = await this.status(5_000);
    const now: EtcdIdentity = { clusterId: seen.clusterId, memberId: seen.memberId };
    let recorded: EtcdIdentity | undefined;
    try { recorded = JSON.parse(readFileSync(this.identityFile, 'utf8')) as EtcdIdentity; } catch { /* first start of this member */ }
    if (!recorded) {
      writeFileSync(this.identityFile, JSON.stringify(now) + '\n', { mode: 0o600 });
      return;
    }
    if (recorded.clusterId !== now.clusterId || recorded.memberId !== now.memberId) {
      throw new Error(`the etcd at ${this.opts.clientUrl} is cluster ${now.clusterId} member ${now.memberId}, but this data root's etcd is cluster ${recorded.clusterId} member ${recorded.memberId}: refusing to use it`);
    }
  }

  // A member made by an earlier release advertised a plain-HTTP peer URL.
  private async fixPeerUrl(): Promise<void> {
    let list;
    try { list = await this.call('/v3/cluster/member/list', {}, 5_000); } catch (err) {
      // A learner (a manager still catching up) does not serve member calls.
      this.opts.log.debug({ err: (err as Error).message }, 'etcd member list not available; peer URL left as is');
      return;
    }
    list = list as { header?: { member_id?: string }; members?: Array<{ ID?: string; peerURLs?: string[] }> };
    const self = list.members?.find((m) => m.ID === list.header?.member_id);
    if (!self?.ID || (self.peerURLs?.length === 1 && self.peerURLs[0] === this.opts.peerUrl)) return;
    try { await this.call('/v3/cluster/member/update', { ID: self.ID, peerURLs: [this.opts.peerUrl] }, 5_000); } catch (err) {
      this.opts.log.warn({ err: (err as Error).message, from: self.peerURLs, to: this.opts.peerUrl }, 'etcd peer URL could not be updated');
      return;
    }
    this.opts.log.info({ from: self.peerURLs, to: this.opts.peerUrl }, 'etcd peer URL updated');
  }

  private logTail(lines = 15): string {
    try { return readFileSync(this.logPath, 'utf8').trimEnd().split('\n').slice(-lines).join('\n'); } catch { return ''; }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.state = { ok: false, reason: 'etcd is stopped' };
    clearTimeout(this.restartTimer);
    clearInterval(this.probeTimer);
    this.agent?.destroy();
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
        child.once('exit', () => { clearTimeout(t); resolve(); });
        child.kill('SIGTERM');
      });
    }
    if (this.logFd !== undefined) { closeSync(this.logFd); this.logFd = undefined; }
  }

  // Process exit path (a fatal error in the daemon): no waiting possible.
  killNow(): void {
    this.stopping = true;
    try { this.child?.kill('SIGTERM'); } catch { /* gone */ }
  }
}

async function terminate(pid: number): Promise<void> {
  try { process.kill(pid, 'SIGTERM'); } catch { return; }
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (!alive(pid)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
}


// Something already listening on our etcd port is not our etcd (ours was just
// stopped): refuse rather than talk to it.
function assertPortFree(url: string, which: 'client' | 'peer'): Promise<void> {
  const u = new URL(url);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  return new Promise((resolve, reject) => {
    const s = connect({ host, port: Number(u.port) });
    s.setTimeout(1_000, () => { s.destroy(); resolve(); });
    s.once('connect', () => {
      s.destroy();
      reject(new Error(`etcd ${which} address ${u.host} is already in use by another process (not this daemon's etcd): refusing to attach; stop that process or choose another --etcd-${which}-url`));
    });
    s.once('error', () => resolve());
  });
}
