// The lab's network in the machine's namespace: the bridge, one veth per host,
// and the iptables rules that let hosts talk to each other but never off the
// machine (FIELD-NOTES). Every rule carries the comment `shoal-lab` so that
// down finds it again.
import { existsSync, readdirSync } from 'node:fs';
import { BRIDGE, bridgeAddress, IPTABLES_COMMENT, NETNS_PREFIX, SUBNET, subnetCidr, VETH_PREFIX, type HostLayout } from './layout';
import { must, run } from './sys';

const NETNS_DIR = '/var/run/netns';

// A rule of this lab: its comment is exactly ours (lab 1's `shoal-lab1` is not lab 0's `shoal-lab`).
const commentRe = new RegExp(`--comment ("?)${IPTABLES_COMMENT}\\1( |$)`);

export const bridgeExists = (): boolean => existsSync(`/sys/class/net/${BRIDGE}`);

export async function createBridge(): Promise<void> {
  await must('ip', ['link', 'add', BRIDGE, 'type', 'bridge']);
  await must('ip', ['addr', 'add', `${bridgeAddress()}/${SUBNET.prefix}`, 'dev', BRIDGE]);
  await must('ip', ['link', 'set', BRIDGE, 'up']);
}

// The rules, in the order they end up in their chain (each is inserted at the top, last first).
export function firewallRules(): string[][] {
  const c = ['-m', 'comment', '--comment', IPTABLES_COMMENT];
  const subnet = subnetCidr();
  return [
    // Nothing from the lab leaves the machine.
    ['FORWARD', '-s', subnet, '!', '-d', subnet, ...c, '-j', 'REJECT'],
    // Hosts reach each other across the bridge (dockerd set FORWARD's policy to DROP).
    ['FORWARD', '-i', BRIDGE, '-o', BRIDGE, ...c, '-j', 'ACCEPT'],
    // No DNS from the machine's resolver: look-ups fail at once instead of timing out.
    ['INPUT', '-s', subnet, '-p', 'udp', '--dport', '53', ...c, '-j', 'REJECT'],
    ['INPUT', '-s', subnet, '-p', 'tcp', '--dport', '53', ...c, '-j', 'REJECT', '--reject-with', 'tcp-reset'],
  ];
}

export async function addFirewall(): Promise<void> {
  await removeFirewall();
  for (const [chain, ...rule] of [...firewallRules()].reverse()) await must('iptables', ['-w', '5', '-I', chain!, '1', ...rule]);
}

// `iptables -S` lines of the lab's rules turned into delete commands (pure).
export function deletesFor(listing: string): string[][] {
  const out: string[][] = [];
  for (const line of listing.split('\n')) {
    const words = line.trim().split(/\s+/);
    if (words[0] !== '-A' || !commentRe.test(line)) continue;
    out.push(['-D', ...words.slice(1).map((w) => w.replace(/^"(.*)"$/, '$1'))]);
  }
  return out;
}

export async function listFirewall(): Promise<string[][]> {
  const out: string[][] = [];
  for (const chain of ['FORWARD', 'INPUT']) {
    const r = await run('iptables', ['-w', '5', '-S', chain]);
    if (r.code === 0) out.push(...deletesFor(r.stdout));
  }
  return out;
}

export async function removeFirewall(): Promise<void> {
  for (const del of await listFirewall()) await run('iptables', ['-w', '5', ...del]);
}

export async function createHostNetwork(h: HostLayout): Promise<void> {
  await must('ip', ['netns', 'add', h.netns]);
  const ns = ['-n', h.netns];
  await must('ip', [...ns, 'link', 'set', 'lo', 'up']);
  await must('ip', ['link', 'add', h.veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', h.netns]);
  await must('ip', ['link', 'set', h.veth, 'master', BRIDGE]);
  await must('ip', [...ns, 'addr', 'add', `${h.address}/${SUBNET.prefix}`, 'dev', 'eth0']);
  await must('ip', [...ns, 'link', 'set', 'eth0', 'up']);
  // No default route: the host's only network is the lab's subnet.
}

// The host's cable: down on the bridge side cuts every packet to and from the host.
export async function setCable(h: HostLayout, up: boolean): Promise<void> {
  await must('ip', ['link', 'set', h.veth, up ? 'up' : 'down']);
}

export async function cableUp(h: HostLayout): Promise<boolean> {
  const r = await run('ip', ['-j', 'link', 'show', h.veth]);
  if (r.code !== 0) return false;
  try { return ((JSON.parse(r.stdout) as Array<{ flags?: string[] }>)[0]?.flags ?? []).includes('UP'); } catch { return false; }
}

export function labNamespaces(): string[] {
  try { return readdirSync(NETNS_DIR).filter((n) => n.startsWith(NETNS_PREFIX)).sort(); } catch { return []; }
}

export function labVeths(): string[] {
  try { return readdirSync('/sys/class/net').filter((n) => n.startsWith(VETH_PREFIX)).sort(); } catch { return []; }
}

// Processes whose network namespace is the host's (its pid 1, dockerd, containerd, Shoal, etcd, shims).
export async function namespacePids(netns: string): Promise<number[]> {
  const r = await run('ip', ['netns', 'pids', netns]);
  return r.code === 0 ? r.stdout.split('\n').filter((l) => /^\d+$/.test(l.trim())).map(Number) : [];
}

// Removes the namespaces, veths and bridge (after their processes are gone) and the rules.
export async function removeNetwork(): Promise<void> {
  for (const ns of labNamespaces()) await run('ip', ['netns', 'del', ns]);
  for (const veth of labVeths()) await run('ip', ['link', 'del', veth]);
  if (bridgeExists()) await run('ip', ['link', 'del', BRIDGE]);
  await removeFirewall();
}

const ICMP_RATELIMIT = '/proc/sys/net/ipv4/icmp_ratelimit';

// Rejected packets answer at once only without the ICMP rate limit (FIELD-NOTES); returns the old value.
export async function disableIcmpRatelimit(): Promise<string> {
  const old = (await must('sysctl', ['-n', 'net.ipv4.icmp_ratelimit'])).trim();
  await must('sysctl', ['-w', 'net.ipv4.icmp_ratelimit=0']);
  return old;
}

export async function restoreIcmpRatelimit(value: string | undefined): Promise<void> {
  if (value && /^\d+$/.test(value) && existsSync(ICMP_RATELIMIT)) await run('sysctl', ['-w', `net.ipv4.icmp_ratelimit=${value}`]);
}
