// One lab host's processes. Each host runs in its own network, UTS (hostname),
// mount and PID namespaces: `nsenter --net` (not `ip netns exec`, which
// remounts /sys and breaks dockerd) then `unshare --pid --uts --mount`, with
// docker-init (tini) as the host's pid 1 reaping orphans. Killing that pid 1
// kills every process of the host, containers included, and its private
// mounts (overlays, network namespace files) vanish with it: a power cut.
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { bridgeAddress, registryAddress, type HostLayout } from './layout';
import { namespacePids } from './network';
import type { LabEngine } from './state';
import { DAEMON_NODE_FLAGS, daemonEnv, daemonNodeFlags } from '../common/node-flags';
import { alive, cmdline, getStatus, killPid, sleep, until } from './sys';

export const DOCKER_INIT = '/usr/bin/docker-init';
// dist/src/lab/host.js -> dist/src/cli/main.js
const SHOAL_MAIN = resolve(__dirname, '../cli/main.js');

const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

// Where the host's users point DOCKER_HOST: its Shoal daemon, or its dockerd in a Docker Swarm lab.
export const dockerHostOf = (h: HostLayout, engine: LabEngine): string => `unix://${engine === 'docker' ? h.dockerSocket : h.shoalSocket}`;

// The script the host's pid 1 runs (pure). A Docker Swarm lab's host runs dockerd alone.
export function initScript(h: HostLayout, node: string = process.execPath, main: string = SHOAL_MAIN, engine: LabEngine = 'shoal', nodeFlags: readonly string[] = DAEMON_NODE_FLAGS, nodeEnv: Record<string, string> = daemonEnv({})): string {
  const dockerd = [
    'dockerd',
    '--data-root', h.dockerData, '--exec-root', h.dockerExec, '--pidfile', h.dockerPidfile,
    '-H', `unix://${h.dockerSocket}`,
    '--containerd-namespace', h.netns, '--containerd-plugins-namespace', `${h.netns}p`,
    '--cgroup-parent', h.cgroupParent,
    '--insecure-registry', registryAddress(),
    // Containers ask the bridge address, whose port 53 rejects: look-ups fail at once (nothing leaves the machine).
    '--dns', bridgeAddress(),
  ];
  const shoal = [
    node, ...nodeFlags, main, 'daemon',
    '-H', `unix://${h.shoalSocket}`, '--data-root', h.shoalData,
    '--engine', `unix://${h.dockerSocket}`, '--hostname', h.name,
  ];
  return [
    '#!/bin/bash',
    `# Lab host ${h.name}: run by its pid 1 inside its own namespaces (written by \`shoal lab\`).`,
    'set -u',
    `hostname ${q(h.name)}`,
    '# A power cut leaves pid files that make dockerd wait for a containerd that is gone.',
    `rm -f ${q(h.dockerPidfile)} ${q(`${h.dockerExec}/containerd/containerd.pid`)}`,
    `${dockerd.map(q).join(' ')} >>${q(h.dockerLog)} 2>&1 &`,
    ...(engine === 'shoal' ? [`${[...Object.entries(nodeEnv).map(([k, v]) => `${k}=${q(v)}`), ...shoal.map(q)].join(' ')} >>${q(h.shoalLog)} 2>&1 &`] : []),
    'wait',
    '',
  ].join('\n');
}

// Starts the host's processes; returns the pid of its `unshare` (whose child is the host's pid 1).
export function powerOn(h: HostLayout, engine: LabEngine): number {
  for (const d of [h.dir, h.dockerData, h.dockerExec, ...(engine === 'shoal' ? [h.shoalData] : [])]) mkdirSync(d, { recursive: true, mode: 0o700 });
  writeFileSync(h.initScript, initScript(h, process.execPath, SHOAL_MAIN, engine, daemonNodeFlags(), daemonEnv()), { mode: 0o700 });
  const fd = openSync(h.dockerLog, 'a');
  try {
    const child = spawn('nsenter', [
      `--net=/var/run/netns/${h.netns}`,
      'unshare', '--pid', '--fork', '--kill-child', '--uts', '--mount', '--mount-proc', '--propagation', 'private',
      '--', DOCKER_INIT, '--', '/bin/bash', h.initScript,
    ], { detached: true, stdio: ['ignore', fd, fd] });
    child.on('error', () => undefined);
    child.unref();
    if (!child.pid) throw new Error(`cannot start host ${h.name}: nsenter did not start`);
    return child.pid;
  } finally {
    closeSync(fd);
  }
}

export async function engineAnswers(h: HostLayout): Promise<boolean> {
  return (await getStatus(h.dockerSocket, '/_ping')) === 200;
}

export async function shoalAnswers(h: HostLayout): Promise<boolean> {
  return (await getStatus(h.shoalSocket, '/_ping')) === 200;
}

// Whether what DOCKER_HOST points at answers (and, on a Shoal host, the dockerd under it).
export async function hostAnswers(h: HostLayout, engine: LabEngine): Promise<boolean> {
  return (await engineAnswers(h)) && (engine === 'docker' || (await shoalAnswers(h)));
}

function tail(file: string, lines = 12): string {
  try { return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n'); } catch { return '(no log)'; }
}

// Waits until the host's dockerd and Shoal daemon (if any) answer; a host whose pid 1 died fails at once.
export async function waitUp(h: HostLayout, initPid: number, timeoutMs: number, engine: LabEngine): Promise<void> {
  let stopped = false;
  try {
    await until(`host ${h.name} to answer`, async () => {
      if (!alive(initPid)) { stopped = true; return true; }
      return hostAnswers(h, engine);
    }, timeoutMs, 250);
    if (stopped) throw new Error(`host ${h.name} stopped while starting`);
  } catch (err) {
    const logs = `--- ${h.dockerLog}\n${tail(h.dockerLog)}${engine === 'shoal' ? `\n--- ${h.shoalLog}\n${tail(h.shoalLog)}` : ''}`;
    throw new Error(`${(err as Error).message}\n${logs}`);
  }
}

// Our unshare process for this host, if it still runs.
function ownInit(h: HostLayout, pid: number | undefined): number | undefined {
  return pid && alive(pid) && cmdline(pid).includes(h.initScript) ? pid : undefined;
}

// Every process of the host dies at once (SIGKILL, no shutdown): its pid 1 and
// whatever else sits in its network namespace. Bounded wait until all are gone.
export async function powerOff(h: HostLayout, initPid: number | undefined, timeoutMs = 20_000): Promise<void> {
  const own = ownInit(h, initPid);
  const victims = async (): Promise<number[]> => [...(own && alive(own) ? [own] : []), ...(await namespacePids(h.netns)).filter(alive)];
  for (let round = 0; ; round++) {
    const pids = await victims();
    if (pids.length === 0) break;
    for (const p of pids) killPid(p);
    if (round * 100 > timeoutMs) throw new Error(`host ${h.name}: processes ${pids.join(', ')} still alive ${timeoutMs / 1000} s after SIGKILL`);
    await sleep(100);
  }
  // dockerd and Shoal will be told of a socket file that nobody serves any more.
  rmSync(h.dockerSocket, { force: true });
  rmSync(h.shoalSocket, { force: true });
}
