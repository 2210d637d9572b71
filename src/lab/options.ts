// `shoal lab ...` arguments (pure).
import { parseArgs } from 'node:util';
import { BRIDGE, checkHostName, DEFAULT_DIR, MAX_HOSTS } from './layout';
import type { LabEngine } from './state';

export type LabCommand =
  | { verb: 'up'; dir: string; hosts: number; managers?: number; workers?: number; image?: string; engine: LabEngine }
  | { verb: 'down' | 'status'; dir: string }
  | { verb: 'kill' | 'start' | 'partition' | 'heal'; dir: string; host: string };

export const LAB_USAGE = `Usage: shoal lab COMMAND [--dir DIR]

A local cluster of real hosts on this machine (as root): each host is a network
namespace on the bridge ${BRIDGE} with its own address, hostname, dockerd and
Shoal daemon; a registry with password auth serves them all.

Commands:
  up --hosts N          create N hosts (1..${MAX_HOSTS}); prints "NAME DOCKER_HOST ADDRESS" per host
     [--image REF]      image of the machine's dockerd loaded into every host and pushed to the
                        registry (default shoal-test/busybox:1; --image '' for none)
     [--managers M --workers W]   join them into one swarm (M >= 1, M + W = N; give one and the
                        other is the rest): host1 runs \`docker swarm init\`, hosts 2..M join with
                        the manager token, the others with the worker token; each line then ends
                        with the host's role
     [--docker-swarm]   hosts run only their dockerd (no Shoal daemon) and DOCKER_HOST is that
                        dockerd: a lab of real Docker Swarm, to compare with
  status                the hosts, their state, and the registry
  kill NAME             power a host off: all its processes die, its address stops answering
  start NAME            power it on again with the same disk
  partition NAME        cut its network (its processes keep running)
  heal NAME             restore its network
  down                  remove everything, including what a crashed earlier run left
Options:
  --dir DIR             the lab's folder (default ${DEFAULT_DIR})
Environment:
  SHOAL_LAB_INDEX=N     lab N (1..99) beside the default lab 0: its own bridge, subnet 10.199.N.0/24,
                        names and default folder
`;

function count(v: string | undefined, what: string, min: number): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > MAX_HOSTS) throw new Error(`--${what} wants a whole number from ${min} to ${MAX_HOSTS}, got "${v}"`);
  return Number(v);
}

// Managers and workers of a joined lab: both or neither; one given, the other is the rest.
export function joinCounts(hosts: number, managers: number | undefined, workers: number | undefined): { managers?: number; workers?: number } {
  if (managers === undefined && workers === undefined) return {};
  const m = managers ?? hosts - (workers ?? 0);
  const w = workers ?? hosts - m;
  if (m < 1) throw new Error(`a swarm needs at least one manager: --workers ${w} leaves none of --hosts ${hosts}`);
  if (w < 0 || m + w !== hosts) throw new Error(`--managers ${m} and --workers ${w} must add up to --hosts ${hosts}`);
  return { managers: m, workers: w };
}

export function parseLabArgs(argv: string[]): LabCommand {
  const [verb, ...rest] = argv;
  const { values, positionals } = parseArgs({
    args: rest,
    options: {
      dir: { type: 'string' },
      hosts: { type: 'string' },
      managers: { type: 'string' },
      workers: { type: 'string' },
      image: { type: 'string' },
      'docker-swarm': { type: 'boolean' },
    },
    allowPositionals: true,
    strict: true,
  });
  const dir = values.dir ?? DEFAULT_DIR;
  if (!dir.startsWith('/')) throw new Error(`--dir wants an absolute path, got "${dir}"`);
  const onlyFor = (allowed: string[]): void => {
    for (const k of ['hosts', 'managers', 'workers', 'image', 'docker-swarm'] as const) {
      if (values[k] !== undefined && !allowed.includes(k)) throw new Error(`--${k} is only for \`shoal lab up\``);
    }
  };
  switch (verb) {
    case 'up': {
      if (positionals.length) throw new Error(`lab up takes no arguments, got "${positionals.join(' ')}"`);
      const hosts = count(values.hosts, 'hosts', 1);
      if (hosts === undefined) throw new Error('lab up needs --hosts N');
      const roles = joinCounts(hosts, count(values.managers, 'managers', 1), count(values.workers, 'workers', 0));
      return {
        verb, dir, hosts, ...roles,
        ...(values.image !== undefined ? { image: values.image } : {}),
        engine: values['docker-swarm'] ? 'docker' : 'shoal',
      };
    }
    case 'down':
    case 'status':
      onlyFor([]);
      if (positionals.length) throw new Error(`lab ${verb} takes no arguments, got "${positionals.join(' ')}"`);
      return { verb, dir };
    case 'kill':
    case 'start':
    case 'partition':
    case 'heal':
      onlyFor([]);
      if (positionals.length !== 1) throw new Error(`lab ${verb} wants one host name`);
      return { verb, dir, host: checkHostName(positionals[0]!) };
    default:
      throw new Error(verb ? `unknown lab command "${verb}"` : 'lab needs a command');
  }
}
