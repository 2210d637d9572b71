// The fault test's hands on the lab: `shoal lab` verbs, the processes of a
// host (its Shoal daemon, etcd, dockerd) found through /proc, restarting a
// killed daemon inside its host's namespaces as the host's init started it,
// and reading the final state from every manager and every host's dockerd.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { allPids, cmdline, cmdlineArgs } from '../../src/common/proc';
import { runLab } from '../helpers/lab';
import { call, json } from './http';
import type { ContainerView, FinalState, ManagerView, NodeView, ObjectView, TaskView } from './history';

export interface FaultLab {
  index: string;
  dir: string;
  hosts: string[];
  managers: string[];
  workers: string[];
}

export const hostDir = (lab: FaultLab, host: string): string => join(lab.dir, 'hosts', host);
export const shoalSocket = (lab: FaultLab, host: string): string => join(hostDir(lab, host), 'shoal.sock');
export const dockerSocket = (lab: FaultLab, host: string): string => join(hostDir(lab, host), 'docker.sock');

export async function lab(l: Pick<FaultLab, 'index'>, args: string[], timeoutMs = 240_000): Promise<void> {
  const r = await runLab(l.index, args, timeoutMs);
  if (r.code !== 0) throw new Error(`shoal lab ${args.join(' ')} (index ${l.index}): ${r.stderr.trim() || `exit ${r.code}`}`);
}

// Hosts the lab's state file says are cut off or powered off.
export function labState(l: FaultLab): { partitioned: Set<string>; off: Set<string> } {
  const hosts: { name: string; partitioned?: boolean; powered?: boolean }[] = JSON.parse(readFileSync(join(l.dir, 'lab.json'), 'utf8')).hosts ?? [];
  return { partitioned: new Set(hosts.filter((h) => h.partitioned).map((h) => h.name)), off: new Set(hosts.filter((h) => !h.powered).map((h) => h.name)) };
}

export async function pings(l: FaultLab, host: string): Promise<boolean> {
  return (await call(shoalSocket(l, host), 'GET', '/_ping', undefined, 3_000)).status === 200;
}

// The host's Shoal daemon (node ... daemon -H unix://<its shoal.sock>).
export function daemonPid(l: FaultLab, host: string): number | undefined {
  const sock = `unix://${shoalSocket(l, host)}`;
  return allPids().find((p) => { const a = cmdlineArgs(p); return a.includes('daemon') && a.includes(sock); });
}

// The host's etcd (its data dir sits under the host's Shoal data root).
export function etcdPid(l: FaultLab, host: string): number | undefined {
  const root = `${join(hostDir(l, host), 'shoal')}/`;
  return allPids().find((p) => { const a = cmdlineArgs(p); return /(^|\/)etcd$/.test(a[0] ?? '') && a.some((x) => x.includes(root)); });
}

function dockerdPid(l: FaultLab, host: string): number | undefined {
  const sock = `unix://${dockerSocket(l, host)}`;
  return allPids().find((p) => /(^|\/)dockerd /.test(cmdline(p)) && cmdlineArgs(p).includes(sock));
}

// Starts the host's daemon again as its init script did (same line, same
// log), inside the host's namespaces: it becomes a child of the host's pid 1.
export async function restartDaemon(l: FaultLab, host: string, timeoutMs = 120_000): Promise<void> {
  if (daemonPid(l, host)) return;
  const anchor = dockerdPid(l, host);
  if (!anchor) throw new Error(`${host}: no dockerd to find the host's namespaces by`);
  const line = readFileSync(join(hostDir(l, host), 'init.sh'), 'utf8').split('\n').find((x) => x.includes(`'daemon'`));
  if (!line) throw new Error(`${host}: no daemon line in its init.sh`);
  await new Promise<void>((resolve, reject) => {
    const child = spawn('nsenter', ['-t', String(anchor), '-n', '-u', '-m', '-p', '--', '/bin/bash', '-c', line], { stdio: 'ignore' });
    const t = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`${host}: nsenter did not return`)); }, 10_000);
    child.on('error', (e) => { clearTimeout(t); reject(e); });
    child.on('exit', (code) => { clearTimeout(t); if (code === 0) resolve(); else reject(new Error(`${host}: nsenter exit ${code}`)); });
  });
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await call(shoalSocket(l, host), 'GET', '/_ping', undefined, 2_000)).status === 200) return;
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`${host}: the restarted daemon did not answer within ${timeoutMs} ms`);
}

const READ_MS = 10_000;

async function getList(sock: string, path: string): Promise<any[]> {
  const r = await call(sock, 'GET', path, undefined, READ_MS);
  if (r.status !== 200) throw new Error(`GET ${path}: ${r.status ?? '-'} ${(r.error ?? r.body).trim().slice(0, 200)}`);
  const v = json(r);
  if (!Array.isArray(v)) throw new Error(`GET ${path}: not a list`);
  return v;
}

const objectOf = (x: any): ObjectView => ({
  id: String(x.ID), name: String(x.Spec?.Name ?? ''), version: Number(x.Version?.Index ?? -1), labels: x.Spec?.Labels ?? {},
  ...(x.Spec?.Mode ? { replicas: Number(x.Spec.Mode.Replicated?.Replicas ?? -1) } : {}),
  ...(x.Spec?.TaskTemplate ? { command: x.Spec.TaskTemplate.ContainerSpec?.Command } : {}),
});

export async function managerView(l: FaultLab, host: string): Promise<ManagerView> {
  const sock = shoalSocket(l, host);
  try {
    const [services, secrets, configs, tasks, nodes] = await Promise.all(['/services', '/secrets', '/configs', '/tasks', '/nodes'].map((p) => getList(sock, p)));
    return {
      host,
      services: services!.map(objectOf),
      secrets: secrets!.map(objectOf),
      configs: configs!.map(objectOf),
      tasks: tasks!.map((t): TaskView => ({ id: String(t.ID), serviceId: String(t.ServiceID), nodeId: String(t.NodeID ?? ''), desired: String(t.DesiredState), state: String(t.Status?.State) })),
      nodes: nodes!.map((n): NodeView => ({ id: String(n.ID), hostname: String(n.Description?.Hostname ?? ''), state: String(n.Status?.State) })),
    };
  } catch (err) {
    return { host, error: (err as Error).message, services: [], secrets: [], configs: [], tasks: [], nodes: [] };
  }
}

export async function hostContainers(l: FaultLab, host: string): Promise<ContainerView[] | undefined> {
  const filters = encodeURIComponent(JSON.stringify({ label: ['com.docker.swarm.task.id'] }));
  try {
    const cs = await getList(dockerSocket(l, host), `/containers/json?all=1&filters=${filters}`);
    return cs.map((c) => ({ host, id: String(c.Id), taskId: String(c.Labels?.['com.docker.swarm.task.id'] ?? ''), serviceId: String(c.Labels?.['com.docker.swarm.service.id'] ?? ''), running: c.State === 'running' }));
  } catch { return undefined; }
}

export async function finalState(l: FaultLab): Promise<FinalState> {
  const managers = await Promise.all(l.managers.map((h) => managerView(l, h)));
  const perHost = await Promise.all(l.hosts.map(async (h) => [h, await hostContainers(l, h)] as const));
  return {
    managers,
    containers: perHost.flatMap(([, cs]) => cs ?? []),
    unreadHosts: perHost.filter(([, cs]) => cs === undefined).map(([h]) => h),
  };
}

// The leader's hostname, as the first manager that answers sees it.
export async function leaderOf(l: FaultLab): Promise<string | undefined> {
  for (const h of l.managers) {
    const r = await call(shoalSocket(l, h), 'GET', '/nodes', undefined, 3_000);
    const nodes = r.status === 200 ? json(r) : undefined;
    const lead = Array.isArray(nodes) ? nodes.find((n: any) => n.ManagerStatus?.Leader === true) : undefined;
    if (lead) return String(lead.Description?.Hostname);
  }
  return undefined;
}

// Every host's daemon answers, and every manager sees all nodes Ready and
// every manager reachable.
export async function healthy(l: FaultLab): Promise<boolean> {
  return (await unhealthy(l)) === undefined;
}

// What keeps the cluster from being healthy (the first thing found), or undefined.
export async function unhealthy(l: FaultLab): Promise<string | undefined> {
  for (const h of l.hosts) if ((await call(shoalSocket(l, h), 'GET', '/_ping', undefined, 3_000)).status !== 200) return `${h}'s daemon does not answer`;
  for (const h of l.managers) {
    const r = await call(shoalSocket(l, h), 'GET', '/nodes', undefined, 5_000);
    const nodes = r.status === 200 ? json(r) : undefined;
    if (!Array.isArray(nodes)) return `${h}: GET /nodes ${r.status ?? r.error} ${r.body.trim().slice(0, 120)}`;
    if (nodes.length !== l.hosts.length) return `${h} lists ${nodes.length} nodes`;
    const bad = nodes.filter((n: any) => n.Status?.State !== 'ready' || (n.Spec?.Role === 'manager' && n.ManagerStatus?.Reachability !== 'reachable'));
    if (bad.length) return `${h} sees ${bad.map((n: any) => `${n.Description?.Hostname} ${n.Status?.State}${n.ManagerStatus ? `/${n.ManagerStatus.Reachability}` : ''}`).join(', ')}`;
  }
  return undefined;
}
