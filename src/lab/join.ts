// `lab up --managers M --workers W`: one swarm out of the lab's hosts, built
// the way a user types it: the docker CLI with each host's DOCKER_HOST runs
// `swarm init` on the first host, `swarm join` with the tokens from
// `swarm join-token -q` on the others. The same path builds a Shoal swarm or a
// real Docker Swarm (the lab's engine decides what DOCKER_HOST is).
import { run, until, type RunResult } from './sys';
import type { HostRole } from './state';

export const SWARM_PORT = 2377;
const CLI_TIMEOUT_MS = 60_000;

export interface JoinStep { host: string; role: HostRole; init: boolean }

// Who does what (pure): the first host inits, then managers, then workers.
// Managers join one at a time (each must be a voting member before the next
// changes the quorum); workers may join together.
export function planJoin(hosts: string[], managers: number, workers: number): JoinStep[] {
  if (managers < 1) throw new Error('a swarm needs at least one manager');
  if (managers + workers !== hosts.length) throw new Error(`${managers} managers and ${workers} workers are not ${hosts.length} hosts`);
  return hosts.map((host, i) => ({ host, role: i < managers ? 'manager' : 'worker', init: i === 0 }));
}

export interface NodeRow { hostname: string; status: string; availability: string; manager: string }

// `docker node ls --format '{{.Hostname}}\t{{.Status}}\t{{.Availability}}\t{{.ManagerStatus}}'` (pure).
export function parseNodeLs(text: string): NodeRow[] {
  return text.split('\n').filter((l) => l.trim()).map((l) => {
    const [hostname = '', status = '', availability = '', manager = ''] = l.split('\t').map((x) => x.trim());
    return { hostname, status, availability, manager };
  });
}
export const NODE_LS_FORMAT = '{{.Hostname}}\t{{.Status}}\t{{.Availability}}\t{{.ManagerStatus}}';

// Why the swarm is not yet what the plan wants, or undefined when it is (pure):
// every host Ready, its managers one Leader and the others Reachable, its workers no manager status.
export function swarmShortfall(rows: NodeRow[], plan: JoinStep[]): string | undefined {
  const missing: string[] = [];
  for (const step of plan) {
    const r = rows.filter((x) => x.hostname === step.host);
    if (r.length !== 1) { missing.push(`${step.host} listed ${r.length} times`); continue; }
    const row = r[0]!;
    if (row.status !== 'Ready') missing.push(`${step.host} ${row.status}`);
    if (step.role === 'manager' && row.manager !== 'Leader' && row.manager !== 'Reachable') missing.push(`${step.host} manager status "${row.manager}"`);
    if (step.role === 'worker' && row.manager !== '') missing.push(`${step.host} is a manager`);
  }
  const leaders = rows.filter((x) => x.manager === 'Leader').length;
  if (leaders !== 1) missing.push(`${leaders} leaders`);
  return missing.length ? missing.join(', ') : undefined;
}

// The docker CLI as a user runs it with DOCKER_HOST set (and nothing else pointing it elsewhere).
export function dockerAt(dockerHost: string, args: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
  const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_HOST: dockerHost, DOCKER_CLI_HINTS: 'false' };
  for (const k of ['DOCKER_CONTEXT', 'DOCKER_TLS_VERIFY', 'DOCKER_CERT_PATH', 'DOCKER_API_VERSION']) delete env[k];
  return run('docker', args, { timeoutMs: opts.timeoutMs ?? CLI_TIMEOUT_MS, env, ...(opts.input !== undefined ? { input: opts.input } : {}) });
}

async function mustDocker(host: { name: string; dockerHost: string }, args: string[]): Promise<string> {
  const r = await dockerAt(host.dockerHost, args);
  if (r.code !== 0) throw new Error(`on ${host.name}: docker ${args.join(' ')}: ${(r.stderr || r.stdout).trim() || `exit ${r.code}`}`);
  return r.stdout;
}

export interface JoinHost { name: string; dockerHost: string; address: string }

// Runs the plan and waits (bounded) until `node ls` on the first host shows it done.
export async function joinSwarm(hosts: JoinHost[], plan: JoinStep[], readyMs: number): Promise<void> {
  const byName = new Map(hosts.map((h) => [h.name, h]));
  const at = (name: string): JoinHost => { const h = byName.get(name); if (!h) throw new Error(`no lab host ${name}`); return h; };
  const first = at(plan[0]!.host);
  await mustDocker(first, ['swarm', 'init', '--advertise-addr', first.address]);
  const token = { manager: '', worker: '' };
  for (const role of ['manager', 'worker'] as const) token[role] = (await mustDocker(first, ['swarm', 'join-token', '-q', role])).trim();
  const join = (s: JoinStep): Promise<string> => {
    const h = at(s.host);
    return mustDocker(h, ['swarm', 'join', '--token', token[s.role], '--advertise-addr', h.address, `${first.address}:${SWARM_PORT}`]);
  };
  for (const s of plan.filter((x) => !x.init && x.role === 'manager')) await join(s);
  await Promise.all(plan.filter((x) => !x.init && x.role === 'worker').map(join));
  await until(`the swarm to show ${plan.length} nodes Ready`, async () => {
    const r = await dockerAt(first.dockerHost, ['node', 'ls', '--format', NODE_LS_FORMAT], { timeoutMs: 10_000 });
    if (r.code !== 0) throw new Error(r.stderr.trim());
    const short = swarmShortfall(parseNodeLs(r.stdout), plan);
    if (short) throw new Error(short);
    return true;
  }, readyMs, 250);
}
