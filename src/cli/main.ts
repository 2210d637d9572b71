#!/usr/bin/env node
import '../daemon/defer-turbofan'; // first: before the daemon's modules load (tiering.ts)
import { getHeapSpaceStatistics, getHeapStatistics } from 'node:v8';
import { startDaemon, type Daemon } from '../daemon/daemon';
import { exitOnFatalErrors } from '../daemon/fatal';
import { parseDaemonOptions } from '../daemon/options';
import { optimizeWhenBusy } from '../daemon/tiering';
import { compactWhenQuiet } from '../daemon/heap-compaction';
import { useSmallBufferPool } from '../common/buffer-pool';
import { createLogger } from '../common/log';

const USAGE = `Usage: shoal COMMAND

Docker Swarm mode, rebuilt: point the docker CLI at Shoal's socket.

Commands:
  daemon   Run the Shoal daemon on this host
           -H, --host unix:///PATH.sock|tcp://IP:PORT   where to serve the Docker API (repeatable; default unix:///run/shoal/shoal.sock)
           --data-root DIR                               state directory (default /var/lib/shoal)
           --engine unix:///var/run/docker.sock          the host's plain dockerd
           --etcd-client-url URL, --etcd-peer-url URL    the local etcd member's addresses (default https://127.0.0.1:4379 and :4380; mutual TLS only)
           --etcd-binary PATH                            default /usr/bin/etcd
           --hostname NAME                               the node's hostname in the swarm
           --log-level LEVEL                             info (default), debug, warn, error
           --tlsverify --tlscacert CA --tlscert CERT --tlskey KEY
                                                         serve tcp:// listeners over TLS and accept only clients with a
                                                         certificate signed by CA (as dockerd; --tls: TLS without client certificates)
           --insecure-tcp                                allow a tcp:// listener without TLS (whoever reaches it is root)
  backup FILE    Write a snapshot of this manager's swarm, keys included, to FILE (mode 0600; shoal backup --help)
  restore FILE   Start a one-manager swarm on this host (in no swarm) from a backup (shoal restore --help)
  lab      A local cluster of hosts on this machine: up, status, kill, start, partition, heal, down (shoal lab --help)
  sim      Many simulated nodes in one process, joined to a swarm, for scale figures (shoal sim --help)
`;

async function main(argv: string[]): Promise<number> {
  useSmallBufferPool();
  const [cmd, ...rest] = argv;
  if (cmd === 'daemon') {
    const opts = parseDaemonOptions(rest);
    const log = createLogger(opts.logLevel);
    let running: Daemon | undefined;
    exitOnFatalErrors(log, () => running?.swarm);
    const daemon = await startDaemon(opts, log);
    running = daemon;
    optimizeWhenBusy(log.child({ component: 'tiering' }));
    // SHOAL_HEAP_COMPACTION=0 leaves V8 alone, to compare in a bench.
    if (process.env.SHOAL_HEAP_COMPACTION !== '0') compactWhenQuiet(log.child({ component: 'heap' }));
    if (process.env.SHOAL_MEMORY_REPORT === '1') reportMemory(log);
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'stopping');
      const force = setTimeout(() => process.exit(1), 30_000);
      force.unref();
      daemon.stop().then(() => process.exit(0), (err: unknown) => { log.error({ err }, 'stop failed'); process.exit(1); });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    return new Promise<number>(() => undefined); // runs until a signal
  }
  // Loaded only for their own command: the daemon never carries them.
  if (cmd === 'lab') return (await import('../lab/command')).runLab(rest);
  if (cmd === 'sim') return (await import('../sim/command')).runSim(rest);
  if (cmd === 'backup' || cmd === 'restore') return (await import('./recovery')).runRecovery(cmd, rest);
  if (!cmd || cmd === '--help' || cmd === 'help' || cmd === '-h') {
    process.stdout.write(USAGE);
    return cmd ? 0 : 1;
  }
  process.stderr.write(`shoal: unknown command "${cmd}"\n\n${USAGE}`);
  return 1;
}

// SHOAL_MEMORY_REPORT=1: the process's memory every 10 s in the log (bench/memory.ts reads it).
function reportMemory(log: ReturnType<typeof createLogger>): void {
  const MB = 1024 * 1024;
  const mb = (n: number): number => Math.round((n / MB) * 10) / 10;
  const t = setInterval(() => {
    const m = process.memoryUsage();
    // Per V8 space: committed (what RSS sees) and used; malloc: V8's own (zones, compiler).
    const spaces = Object.fromEntries(getHeapSpaceStatistics().map((s) => [s.space_name.replace(/_space$/, ''), `${mb(s.physical_space_size)}/${mb(s.space_used_size)}`]));
    log.info({ rssMB: mb(m.rss), heapTotalMB: mb(m.heapTotal), heapUsedMB: mb(m.heapUsed), externalMB: mb(m.external), arrayBuffersMB: mb(m.arrayBuffers), v8MallocMB: mb(getHeapStatistics().malloced_memory), spaces }, 'memory');
  }, 10_000);
  t.unref();
}

main(process.argv.slice(2)).then((code) => process.exit(code), (err: unknown) => {
  process.stderr.write(`shoal: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
