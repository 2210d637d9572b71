import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { invalid } from '../common/errors';
import { LEAVE_LAST_MANAGER } from '../common/errors';

// What a node remembers of how it joined, beside its identity (node/identity.ts):
// the addresses it listens on and advertises, and the managers it knew.
export interface SwarmState {
  listenAddr: string;       // host:port of the node-to-node channel
  listenExplicit?: boolean; // given by the user (a busy port is then an error)
  advertiseAddr: string;    // ip:port other nodes use
  dataPathAddr?: string;
  remoteManagers?: string[];
}

const FILE = 'swarm-state.json';

export function readSwarmState(dataRoot: string): SwarmState | undefined {
  const path = join(dataRoot, FILE);
  if (!existsSync(path)) return undefined;
  try {
    const v = JSON.parse(readFileSync(path, 'utf8')) as Partial<SwarmState>;
    if (typeof v.listenAddr !== 'string' || typeof v.advertiseAddr !== 'string') return undefined;
    return {
      listenAddr: v.listenAddr, advertiseAddr: v.advertiseAddr, listenExplicit: v.listenExplicit === true,
      dataPathAddr: typeof v.dataPathAddr === 'string' ? v.dataPathAddr : undefined,
      remoteManagers: Array.isArray(v.remoteManagers) ? v.remoteManagers.filter((a): a is string => typeof a === 'string') : undefined,
    };
  } catch { return undefined; }
}

export function writeSwarmState(dataRoot: string, s: SwarmState): void {
  mkdirSync(dataRoot, { recursive: true, mode: 0o700 });
  const path = join(dataRoot, FILE);
  writeFileSync(`${path}.tmp`, JSON.stringify(s) + '\n', { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
}

// --listen-addr as dockerd takes it: IP[:PORT] or :PORT (0.0.0.0:2377 by default).
export function parseListenAddr(addr: string | undefined): { host: string; port: number } {
  const a = addr || '0.0.0.0:2377';
  const m = /^(\[[^\]]+\]|[^:]*)(?::(\d{1,5}))?$/.exec(a);
  if (!m) throw invalid(`invalid listen address ${a}`);
  const host = (m[1] || '0.0.0.0').replace(/^\[|\]$/g, '');
  const port = m[2] ? Number(m[2]) : 2377;
  if (port < 1 || port > 65535) throw invalid(`invalid listen address ${a}: port out of range`);
  return { host, port };
}

// ip:port → ip.
export function nodeAddrFromListen(addr: string): string {
  const m = /^\[([^\]]+)\]:\d+$/.exec(addr) ?? /^([^:]+):\d+$/.exec(addr);
  return m ? m[1]! : addr;
}

// Docker's texts (moby daemon/cluster/swarm.go Leave, controlapi).
export const NO_LEADER = "rpc error: code = Unknown desc = The swarm does not have a leader. It's possible that too few managers are online. Make sure more than half of the managers are online.";

const LEAVE_MANAGER = 'You are attempting to leave the swarm on a node that is participating as a manager. ';
const LEAVE_TAIL = 'The only way to restore a swarm that has lost consensus is to reinitialize it with `--force-new-cluster`. Use `--force` to suppress this message.';

// A manager's leave without --force is always refused; the text says why.
// reachable counts this manager.
// Docker's texts for a manager locked by autolock (moby daemon/cluster/errors.go, swarm.go).
export const SWARM_LOCKED = 'Swarm is encrypted and needs to be unlocked before it can be used. Please use "docker swarm unlock" to unlock it.';
export const LEAVE_LOCKED = 'Swarm is encrypted and locked. Please unlock it first or use `--force` to ignore this message.';
export const INVALID_UNLOCK_KEY = 'swarm could not be unlocked: invalid key provided';

export function leaveManagerMessage(reachable: number, unreachable: number): string {
  if (reachable - 2 <= unreachable) {
    if (reachable === 1 && unreachable === 0) return LEAVE_LAST_MANAGER;
    return `${LEAVE_MANAGER}Removing this node leaves ${reachable - 1} managers out of ${reachable + unreachable}. Without a Raft quorum your swarm will be inaccessible. ${LEAVE_TAIL}`;
  }
  return LEAVE_MANAGER + LEAVE_TAIL;
}

// The docker CLI sends its --listen-addr default (0.0.0.0:2377) whether or not
// the user typed it, so that value says nothing: the daemon's own
// --listen-addr, if given, wins over it, and a busy default port falls back
// to a free one (several one-node swarms on one machine) instead of failing.
export const CLI_DEFAULT_LISTEN_ADDR = '0.0.0.0:2377';

export function requestedListenAddr(v: string | undefined): string | undefined {
  return v && v !== CLI_DEFAULT_LISTEN_ADDR ? v : undefined;
}
