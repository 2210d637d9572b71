import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { createLogger } from '../common/log';
import { makeCsrsInProcess } from '../common/x509';
import { withDefaultPort } from '../node/join';
import { Fleet } from './fleet';

export const SIM_USAGE = `Usage: shoal sim --manager ADDR [--manager ADDR...] --token TOKEN --nodes N [options]

Runs N simulated nodes in this process, to measure a swarm at scale: each
joins with the worker token and is a real node to the managers (its own
certificate, session, heartbeats and task reports), but its containers are
pretend (nothing is started). Runs until SIGINT or SIGTERM; the nodes then
show Down. Progress is printed every 5 s, and at once on SIGUSR2 (with
"asked": how many times so far).

Options:
  --manager ADDR            a manager's address (host[:port], port 2377 by default); repeatable
  --token TOKEN             the worker join token (docker swarm join-token -q worker)
  --nodes N                 how many nodes (1..20000)
  --prefix NAME             hostnames NAME-00001, ... (default sim)
  --join-concurrency K      joins in flight at once (default 16)
  --cpus C --memory-gb M    what each node offers the scheduler (default 4 and 8)
  --log-level LEVEL         the nodes' agents' log level (default warn)
  --ping-ms MS              each node pings its manager every MS (1000..600000), not as
                            often as a real node would: to compare ping rates
`;

const MAX_NODES = 20_000;
// --ping-ms: a real node's rate lies within these (agent/keepalive.ts); bench/scale.ts checks its --sim-ping-ms against them.
export const SIM_PING_MS = { min: 1000, max: 600_000 };

function whole(v: string | undefined, name: string, min: number, max: number, dflt: number): number {
  if (v === undefined) return dflt;
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new Error(`--${name} wants a whole number from ${min} to ${max}, got "${v}"`);
  return Number(v);
}

export async function runSim(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) { process.stdout.write(SIM_USAGE); return 0; }
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true, strict: true,
    options: {
      manager: { type: 'string', multiple: true }, token: { type: 'string' }, nodes: { type: 'string' },
      prefix: { type: 'string' }, 'join-concurrency': { type: 'string' }, cpus: { type: 'string' },
      'memory-gb': { type: 'string' }, 'log-level': { type: 'string' }, 'ping-ms': { type: 'string' },
    },
  });
  if (positionals.length) throw new Error(`shoal sim takes no arguments, got "${positionals.join(' ')}"\n\n${SIM_USAGE}`);
  const managers = (values.manager ?? []).flatMap((m) => m.split(',')).filter(Boolean).map(withDefaultPort);
  if (!managers.length) throw new Error(`--manager is required\n\n${SIM_USAGE}`);
  if (!values.token) throw new Error(`--token is required\n\n${SIM_USAGE}`);
  if (values.nodes === undefined) throw new Error(`--nodes is required\n\n${SIM_USAGE}`);
  const prefix = values.prefix ?? 'sim';
  if (!/^[a-z][a-z0-9-]{0,30}$/.test(prefix)) throw new Error(`--prefix wants lower-case letters, digits and "-", got "${prefix}"`);
  const log = createLogger('info');
  makeCsrsInProcess();
  const fleet = new Fleet({
    managers, token: values.token, prefix, log,
    count: whole(values.nodes, 'nodes', 1, MAX_NODES, 0),
    joinConcurrency: whole(values['join-concurrency'], 'join-concurrency', 1, 256, 16),
    joinTimeoutMs: 60_000,
    nanoCPUs: whole(values.cpus, 'cpus', 1, 1024, 4) * 1e9,
    memoryBytes: whole(values['memory-gb'], 'memory-gb', 1, 4096, 8) * 1024 ** 3,
    nodeLog: createLogger(values['log-level'] ?? 'warn'),
    ...(values['ping-ms'] !== undefined ? { pingMs: whole(values['ping-ms'], 'ping-ms', SIM_PING_MS.min, SIM_PING_MS.max, 0) } : {}),
  });
  const started = Date.now();
  // The worst event-loop delay since the last line: a simulator held up
  // this long delays its nodes' beats by as much (the managers see silence).
  const lag = monitorEventLoopDelay({ resolution: 50 });
  lag.enable();
  const progress = setInterval(() => {
    log.info({ ...fleet.stats(), maxLoopDelayMs: Math.round(lag.max / 1e6), seconds: Math.round((Date.now() - started) / 1000) }, 'simulated nodes');
    lag.reset();
  }, 5000);
  // The scale bench reads the counts right before and after a create.
  let asked = 0;
  const onAsk = (): void => { asked++; log.info({ ...fleet.stats(), asked, seconds: Math.round((Date.now() - started) / 1000) }, 'simulated nodes'); };
  process.on('SIGUSR2', onAsk);
  let stopping: Promise<number> | undefined;
  const stop = (signal: string): Promise<number> => {
    stopping ??= (async () => {
      log.info({ signal }, 'stopping the simulated nodes');
      clearInterval(progress);
      process.off('SIGUSR2', onAsk);
      await fleet.stop();
      return 0;
    })();
    return stopping;
  };
  return new Promise<number>((resolve) => {
    process.once('SIGINT', () => void stop('SIGINT').then(resolve));
    process.once('SIGTERM', () => void stop('SIGTERM').then(resolve));
    void fleet.start().then(() => log.info({ ...fleet.stats(), seconds: Math.round((Date.now() - started) / 1000) }, 'every simulated node tried to join'));
  });
}
