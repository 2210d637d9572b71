import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import type { Logger } from '../common/log';

export interface EtcdProcessOptions {
  binary: string;        // etcd executable (Debian: /usr/bin/etcd)
  dataDir: string;       // under Shoal's --data-root
  name: string;          // member name (the node ID)
  clientUrl: string;     // e.g. http://127.0.0.1:23790
  peerUrl: string;       // e.g. http://127.0.0.1:23800
  log: Logger;
}

// Runs the local etcd member as a child process and keeps it running: if it
// dies, it is started again with the same data directory, so acknowledged
// writes (fsynced by etcd before it answers) survive. It is stopped with Shoal.
export class EtcdProcess {
  private child?: ChildProcess;
  private stopping = false;
  private restarts = 0;

  constructor(private readonly opts: EtcdProcessOptions) {}

  get pid(): number | undefined { return this.child?.pid; }

  async start(): Promise<void> {
    mkdirSync(this.opts.dataDir, { recursive: true, mode: 0o700 });
    await this.killLeftover();
    this.spawn();
    await this.waitHealthy(30_000);
  }

  private spawn(): void {
    const o = this.opts;
    const logFd = openSync(join(o.dataDir, '..', 'etcd.log'), 'a');
    const args = [
      '--name', o.name,
      '--data-dir', join(o.dataDir, 'member-data'),
      '--listen-client-urls', o.clientUrl,
      '--advertise-client-urls', o.clientUrl,
      '--listen-peer-urls', o.peerUrl,
      '--initial-advertise-peer-urls', o.peerUrl,
      '--initial-cluster', `${o.name}=${o.peerUrl}`,
      '--initial-cluster-state', 'new',
      // Keep history bounded: watches resume within this window, older
      // revisions are compacted (the store reloads when that happens).
      '--auto-compaction-mode', 'revision',
      '--auto-compaction-retention', '10000',
      '--quota-backend-bytes', String(2 * 1024 ** 3),
      '--logger', 'zap',
      '--log-outputs', 'stderr',
    ];
    const child = spawn(o.binary, args, { stdio: ['ignore', logFd, logFd] });
    this.child = child;
    writeFileSync(this.pidFile, String(child.pid));
    o.log.info({ pid: child.pid, clientUrl: o.clientUrl }, 'etcd started');
    child.on('exit', (code, signal) => {
      if (this.child !== child) return;
      this.child = undefined;
      if (this.stopping) return;
      this.restarts++;
      const delay = Math.min(5000, 200 * this.restarts);
      o.log.warn({ code, signal, delay }, 'etcd exited; restarting');
      setTimeout(() => { if (!this.stopping) this.spawn(); }, delay).unref();
    });
  }

  private get pidFile(): string { return join(this.opts.dataDir, 'etcd.pid'); }

  // A Shoal daemon killed with -9 leaves its etcd running on our ports and
  // data: stop that one (it has fsynced what it acknowledged) before starting.
  private async killLeftover(): Promise<void> {
    let pid: number;
    try { pid = Number(readFileSync(this.pidFile, 'utf8')); } catch { return; }
    if (!pid) return;
    let cmdline = '';
    try { cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8'); } catch { return; }
    if (!cmdline.includes(this.opts.dataDir)) return; // pid reused by something else
    this.opts.log.info({ pid }, 'stopping etcd left by an earlier daemon');
    try { process.kill(pid, 'SIGTERM'); } catch { return; }
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      try { process.kill(pid, 0); } catch { return; }
      await new Promise((r) => setTimeout(r, 50));
    }
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }

  async waitHealthy(timeoutMs: number): Promise<void> {
    const client = new Etcd3({ hosts: this.opts.clientUrl, dialTimeout: 1000 });
    const deadline = Date.now() + timeoutMs;
    try {
      for (;;) {
        try { await client.maintenance.status({}); return; } catch (e) {
          if (Date.now() > deadline) throw new Error(`etcd at ${this.opts.clientUrl} not healthy after ${timeoutMs} ms: ${(e as Error).message}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    } finally { client.close(); }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      child.once('exit', () => { clearTimeout(t); resolve(); });
      child.kill('SIGTERM');
    });
  }
}
