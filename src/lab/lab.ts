// The lab's verbs: up, down, kill, start, partition, heal, status. The state
// file says what the lab should be; `down` also removes, by their names, the
// kernel objects and processes a crashed run left without a state file.
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { BRIDGE, CGROUP_PARENT, NETNS_PREFIX, hostLayout, hostNames, registryLayout, stateFile, type HostLayout } from './layout';
import { DOCKER_INIT, dockerHostOf, hostAnswers, powerOff, powerOn, waitUp } from './host';
import { joinSwarm, planJoin } from './join';
import { joinCounts } from './options';
import {
  addFirewall, bridgeExists, cableUp, createBridge, createHostNetwork, disableIcmpRatelimit,
  labNamespaces, namespacePids, removeNetwork, restoreIcmpRatelimit, setCable,
} from './network';
import { REGISTRY_BINARY, seedImage, startRegistry, stopRegistry } from './registry';
import { findHost, readState, writeState, type HostRole, type HostState, type LabEngine, type LabState } from './state';
import { run } from './sys';

export const MACHINE_ENGINE = '/var/run/docker.sock';
export const DEFAULT_IMAGE = 'shoal-test/busybox:1';
const HOST_READY_MS = 120_000;
const SWARM_READY_MS = 120_000;
const KERNEL_ICMP_RATELIMIT = '1000';

export interface HostLine { name: string; dockerHost: string; address: string; role?: HostRole }
export interface UpResult { hosts: HostLine[]; registry: { address: string; user: string; password: string; image?: string } }

const layoutOf = (dir: string, h: HostState): HostLayout => hostLayout(dir, h.name, h.index);
const engineOf = (s: LabState): LabEngine => s.engine ?? 'shoal';
const lineOf = (l: HostLayout, engine: LabEngine, role?: HostRole): HostLine =>
  ({ name: l.name, dockerHost: dockerHostOf(l, engine), address: l.address, ...(role ? { role } : {}) });

async function preflight(joining: boolean): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the lab needs root (namespaces, bridges, iptables)');
  const missing = [DOCKER_INIT, REGISTRY_BINARY, '/usr/sbin/dockerd', '/usr/bin/nsenter', '/usr/bin/unshare', '/usr/bin/htpasswd'].filter((b) => !existsSync(b));
  for (const tool of ['ip', 'iptables', 'sysctl', ...(joining ? ['docker'] : [])]) if ((await run('which', [tool])).code !== 0) missing.push(tool);
  if (missing.length) throw new Error(`missing for the lab: ${missing.join(', ')} (bash scripts/setup.sh --deps-only installs them)`);
}

function loadState(dir: string): LabState {
  const state = readState(stateFile(dir));
  if (!state) throw new Error(`no lab in ${dir} (\`shoal lab up --hosts N\` makes one)`);
  return state;
}

export interface UpOptions { dir: string; hosts: number; managers?: number; workers?: number; image?: string; engine?: LabEngine }

export async function labUp(opts: UpOptions): Promise<UpResult> {
  const names = hostNames(opts.hosts);
  const roles = joinCounts(opts.hosts, opts.managers, opts.workers);
  const plan = roles.managers !== undefined ? planJoin(names, roles.managers, roles.workers ?? 0) : undefined;
  await preflight(plan !== undefined);
  if (readState(stateFile(opts.dir))) throw new Error(`a lab already exists in ${opts.dir}: \`shoal lab down --dir ${opts.dir}\` first`);
  if (bridgeExists()) throw new Error(`a lab is already up on this machine (bridge ${BRIDGE} exists): \`shoal lab down\` (with that lab's --dir) first`);
  // No state and no bridge: whatever carries the lab's names is left from a crash.
  await removeLeftovers(opts.dir);

  mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
  const engine = opts.engine ?? 'shoal';
  const state: LabState = { version: 1, dir: opts.dir, engine, hosts: names.map((name, index) => ({ name, index, powered: false, partitioned: false })) };
  const save = (): void => writeState(stateFile(opts.dir), state);
  save(); // from here on `down` knows this lab even if up dies half-way
  try {
    const up = await build(state, save, opts.image);
    if (!plan) return up;
    await joinSwarm(up.hosts, plan, SWARM_READY_MS);
    for (const step of plan) findHost(state, step.host).role = step.role;
    save();
    return { ...up, hosts: up.hosts.map((h) => ({ ...h, role: findHost(state, h.name).role! })) };
  } catch (err) {
    throw new Error(`${(err as Error).message}\n(the lab is half made: \`shoal lab down --dir ${opts.dir}\` removes it)`);
  }
}

async function build(state: LabState, save: () => void, imageOpt: string | undefined): Promise<UpResult> {
  state.icmpRatelimit = await disableIcmpRatelimit();
  save();
  await createBridge();
  await addFirewall();

  const reg = registryLayout(state.dir);
  const registry = await startRegistry(reg);
  state.registry = registry;
  save();

  const engine = engineOf(state);
  const layouts = state.hosts.map((h) => layoutOf(state.dir, h));
  for (const l of layouts) await createHostNetwork(l);
  for (const [i, l] of layouts.entries()) {
    await setCable(l, true);
    state.hosts[i]!.initPid = powerOn(l, engine);
    state.hosts[i]!.powered = true;
    save();
  }
  await Promise.all(layouts.map((l, i) => waitUp(l, state.hosts[i]!.initPid!, HOST_READY_MS, engine)));

  const image = imageOpt ?? DEFAULT_IMAGE;
  const pushed = image ? await seedImage(MACHINE_ENGINE, image, layouts, registry, reg, state.dir) : undefined;
  if (image && !pushed && imageOpt !== undefined) throw new Error(`the machine's dockerd has no image ${image}`);
  return {
    hosts: layouts.map((l) => lineOf(l, engine)),
    registry: { address: reg.address, user: registry.user, password: registry.password, ...(pushed ? { image: pushed } : {}) },
  };
}

export async function labKill(dir: string, name: string): Promise<void> {
  const state = loadState(dir);
  const h = findHost(state, name);
  const l = layoutOf(dir, h);
  await powerOff(l, h.initPid);
  await setCable(l, false);
  h.powered = false;
  delete h.initPid;
  writeState(stateFile(dir), state);
}

export async function labStart(dir: string, name: string): Promise<HostLine> {
  const state = loadState(dir);
  const h = findHost(state, name);
  const l = layoutOf(dir, h);
  const engine = engineOf(state);
  if (h.powered && (await hostAnswers(l, engine))) return lineOf(l, engine, h.role);
  await powerOff(l, h.initPid); // whatever is left of a host that died by itself
  if (!h.partitioned) await setCable(l, true);
  h.initPid = powerOn(l, engine);
  h.powered = true;
  writeState(stateFile(dir), state);
  await waitUp(l, h.initPid, HOST_READY_MS, engine);
  return lineOf(l, engine, h.role);
}

export async function labPartition(dir: string, name: string, cut: boolean): Promise<void> {
  const state = loadState(dir);
  const h = findHost(state, name);
  h.partitioned = cut;
  await setCable(layoutOf(dir, h), !cut && h.powered);
  writeState(stateFile(dir), state);
}

export interface HostStatus extends HostLine { state: 'running' | 'off' | 'not answering'; partitioned: boolean; cable: boolean }

export async function labStatus(dir: string): Promise<{ engine: LabEngine; hosts: HostStatus[]; registry?: { address: string; user: string; password: string } }> {
  const state = loadState(dir);
  const engine = engineOf(state);
  const hosts: HostStatus[] = [];
  for (const h of state.hosts) {
    const l = layoutOf(dir, h);
    const answers = h.powered && (await hostAnswers(l, engine));
    hosts.push({ ...lineOf(l, engine, h.role), state: !h.powered ? 'off' : answers ? 'running' : 'not answering', partitioned: h.partitioned, cable: await cableUp(l) });
  }
  const reg = registryLayout(dir);
  return { engine, hosts, ...(state.registry ? { registry: { address: reg.address, user: state.registry.user, password: state.registry.password } } : {}) };
}

// Removes the lab: every host's processes, the registry, the network, the
// rules, leftover mounts and cgroups, and the lab's files in dir.
export async function labDown(dir: string): Promise<string[]> {
  const notes: string[] = [];
  let state: LabState | undefined;
  try { state = readState(stateFile(dir)); } catch (err) { notes.push(`${(err as Error).message}; removing by names`); }
  const layouts = (state?.hosts ?? []).map((h) => ({ l: layoutOf(dir, h), pid: h.initPid }));
  const hadLab = state !== undefined || bridgeExists() || labNamespaces().length > 0;
  await Promise.all(layouts.map(({ l, pid }) => powerOff(l, pid)));
  await removeLeftovers(dir, state?.registry?.pid);
  // The rate limit is one machine-wide value that every lab (each SHOAL_LAB_INDEX)
  // sets to 0: the last lab down puts it back. A saved 0 is another lab's, and an
  // unknown old value (no state file) behind a 0 a lab left is the kernel's default.
  if (!otherLabsUp()) {
    const saved = state?.icmpRatelimit;
    await restoreIcmpRatelimit(saved === '0' ? KERNEL_ICMP_RATELIMIT : saved ?? (hadLab && icmpRatelimit() === '0' ? KERNEL_ICMP_RATELIMIT : undefined));
  }
  // Only what the lab made in dir: never a folder the user pointed at by mistake.
  for (const f of ['hosts', 'registry', 'image.tar', 'lab.json', 'lab.json.tmp']) rmSync(join(dir, f), { recursive: true, force: true });
  try { if (readdirSync(dir).length === 0) rmdirSync(dir); } catch { /* not there */ }
  return notes;
}

// Everything carrying the lab's names, whether or not a state file knows it.
async function removeLeftovers(dir: string, registryPid?: number): Promise<void> {
  for (const ns of labNamespaces()) {
    const name = ns.slice(NETNS_PREFIX.length);
    if (!/^[a-z][a-z0-9-]{0,11}$/.test(name)) continue;
    if ((await namespacePids(ns)).length) await powerOff(hostLayout(dir, name, 0), undefined);
  }
  await stopRegistry(registryPid);
  await removeNetwork();
  await unmountUnder(dir);
  removeCgroups();
}

// Bridges of labs at other indexes (shoal-lab0 … shoal-lab99).
function otherLabsUp(): boolean {
  try { return readdirSync('/sys/class/net').some((n) => /^shoal-lab\d{0,2}$/.test(n) && n !== BRIDGE); } catch { return false; }
}

function icmpRatelimit(): string | undefined {
  try { return readFileSync('/proc/sys/net/ipv4/icmp_ratelimit', 'utf8').trim(); } catch { return undefined; }
}

// Mounts left under the lab's folder (hosts keep theirs private, so normally none).
async function unmountUnder(dir: string): Promise<void> {
  let text = '';
  try { text = readFileSync('/proc/self/mountinfo', 'utf8'); } catch { return; }
  const points = text.split('\n').map((l) => l.split(' ')[4]?.replace(/\\040/g, ' ')).filter((p): p is string => !!p && (p === dir || p.startsWith(`${dir}/`)));
  for (const p of points.sort((a, b) => b.length - a.length)) await run('umount', ['-l', p], { timeoutMs: 10_000 });
}

// Container cgroups runc never removed because its host was killed (empty once the processes are gone).
function removeCgroups(): void {
  const roots: string[] = [];
  try {
    for (const c of readdirSync('/sys/fs/cgroup')) roots.push(join('/sys/fs/cgroup', c, CGROUP_PARENT));
  } catch { return; }
  roots.push(join('/sys/fs/cgroup', CGROUP_PARENT)); // cgroup v2 only
  const rmTree = (d: string): void => {
    let entries: string[];
    try { entries = readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name); } catch { return; }
    for (const e of entries) rmTree(join(d, e));
    try { rmdirSync(d); } catch { /* busy or gone */ }
  };
  for (const r of roots) if (existsSync(r)) rmTree(r);
}
