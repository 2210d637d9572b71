// dockerd (iptables, here its nf_tables backend) sets FORWARD's policy to DROP
// and only accepts, per docker network, replies and traffic leaving a bridge;
// with bridge-nf-call-iptables=1 even bridged packets pass through it. A
// connection the load balancer DNATs from outside into a Shoal bridge (the
// routing mesh from the node's address, a VIP reached from another network)
// would be dropped there, and an accept in Shoal's own nftables table cannot
// override it (each table's base chains give their own verdict; a drop in any
// one wins). So one iptables rule in DOCKER-USER (which dockerd jumps to first
// and never flushes) accepts every packet of a connection carrying the
// balancer's conntrack mark; before dockerd made DOCKER-USER, the rule goes to
// the top of FORWARD. Rules are found again by their exact text, so adding is
// idempotent and removing takes them all.
import type { RunOptions, RunResult } from '../../../common/run';
import { hexMark, MARK_BALANCED } from './ruleset';

export type Exec = (cmd: string, args: string[], opts?: RunOptions) => Promise<RunResult>;

export const FORWARD_ACCEPT_COMMENT = 'shoal-loadbalancer';
export const forwardAcceptRule = (): string[] => [
  '-m', 'connmark', '--mark', `${hexMark(MARK_BALANCED)}/${hexMark(MARK_BALANCED)}`,
  '-m', 'comment', '--comment', FORWARD_ACCEPT_COMMENT, '-j', 'ACCEPT',
];
const CHAINS = ['DOCKER-USER', 'FORWARD'];
const IPT_TIMEOUT_MS = 10_000;

const ipt = (exec: Exec, args: string[]): Promise<RunResult> => exec('iptables', ['-w', '5', ...args], { timeoutMs: IPT_TIMEOUT_MS });

// Adds the rule unless one of the chains has it; an error text or undefined.
export async function ensureForwardAccept(exec: Exec): Promise<string | undefined> {
  for (const chain of CHAINS) {
    if ((await ipt(exec, ['-C', chain, ...forwardAcceptRule()])).code === 0) return undefined;
  }
  const chain = (await ipt(exec, ['-S', 'DOCKER-USER'])).code === 0 ? 'DOCKER-USER' : 'FORWARD';
  const r = await ipt(exec, ['-I', chain, '1', ...forwardAcceptRule()]);
  return r.code === 0 ? undefined : `iptables -I ${chain}: ${r.stderr.trim() || `exit ${r.code}`}`;
}

// Removes every copy of the rule from both chains (bounded: a few copies at most).
export async function removeForwardAccept(exec: Exec): Promise<void> {
  for (const chain of CHAINS) {
    for (let i = 0; i < 8; i++) {
      if ((await ipt(exec, ['-D', chain, ...forwardAcceptRule()])).code !== 0) break;
    }
  }
}
