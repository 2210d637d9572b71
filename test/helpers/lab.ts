// Driving `shoal lab` from tests and benches through its CLI, as a user does,
// for either kind of lab: Shoal hosts, or real Docker Swarm hosts
// (`--docker-swarm`) to compare with. Each kind has its own SHOAL_LAB_INDEX so
// that both can run side by side: 5 and 6 unless SHOAL_LAB_INDEX (Shoal) or
// DOCKER_LAB_INDEX (Docker) say otherwise, as the other lab benches do.
import { spawn } from 'node:child_process';
import { runDocker, SHOAL_MAIN, type DockerResult } from './daemon';

export type LabKind = 'shoal' | 'docker';
export const LAB_INDEX: Record<LabKind, string> = { shoal: process.env.SHOAL_LAB_INDEX || '5', docker: process.env.DOCKER_LAB_INDEX || '6' };

export interface LabHost { name: string; dockerHost: string; address: string; role?: string }
export interface LabUp { hosts: LabHost[]; registry: { address: string; user: string; password: string } }

// CLUSTER_TARGET=shoal|docker (default shoal).
export function clusterTarget(v = process.env.CLUSTER_TARGET): LabKind {
  if (v === undefined || v === '' || v === 'shoal') return 'shoal';
  if (v === 'docker') return 'docker';
  throw new Error(`CLUSTER_TARGET wants shoal or docker, got "${v}"`);
}

// `shoal lab ARGS` for this kind of lab; never rejects (a time-out gives 124).
export function labCli(kind: LabKind, args: string[], timeoutMs = 180_000): Promise<DockerResult> {
  return runLab(LAB_INDEX[kind], args, timeoutMs);
}

// `shoal lab ARGS` on lab `index` (SHOAL_LAB_INDEX; undefined: this process's
// own environment decides); never rejects (a time-out gives 124).
export function runLab(index: string | undefined, args: string[], timeoutMs = 180_000): Promise<DockerResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [SHOAL_MAIN, 'lab', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: index === undefined ? process.env : { ...process.env, SHOAL_LAB_INDEX: index },
    });
    let stdout = '';
    let stderr = '';
    let late = false;
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => { late = true; child.kill('SIGKILL'); }, timeoutMs);
    child.on('error', (err) => { clearTimeout(timer); resolve({ code: 127, stdout, stderr: `${stderr}${err.message}` }); });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: late ? 124 : code ?? -1, stdout, stderr: late ? `${stderr}\nshoal lab ${args.join(' ')}: no end within ${timeoutMs} ms` : stderr });
    });
  });
}

// `NAME DOCKER_HOST ADDRESS [ROLE]` lines (pure).
export function parseHostLines(stdout: string): LabHost[] {
  return stdout.trim().split('\n').filter(Boolean).map((l) => {
    const [name, dockerHost, address, role] = l.trim().split(/\s+/);
    if (!name || !dockerHost || !address) throw new Error(`not a lab host line: "${l}"`);
    return { name, dockerHost, address, ...(role ? { role } : {}) };
  });
}

// `lab up`, failing with the lab's own message; the registry's password is on stderr.
export async function labUp(kind: LabKind, args: string[], timeoutMs = 300_000): Promise<LabUp> {
  const r = await labCli(kind, ['up', ...args, ...(kind === 'docker' ? ['--docker-swarm'] : [])], timeoutMs);
  if (r.code !== 0) throw new Error(`lab up (${kind}) failed: ${r.stderr.trim()}`);
  const reg = /^registry (\S+) user (\S+) password (\S+)/m.exec(r.stderr);
  if (!reg) throw new Error(`lab up (${kind}) did not report its registry: ${r.stderr.trim()}`);
  return { hosts: parseHostLines(r.stdout), registry: { address: reg[1]!, user: reg[2]!, password: reg[3]! } };
}

export async function labMust(kind: LabKind, args: string[], timeoutMs?: number): Promise<string> {
  const r = await labCli(kind, args, timeoutMs);
  if (r.code !== 0) throw new Error(`lab ${args.join(' ')} (${kind}) failed: ${r.stderr.trim()}`);
  return r.stdout;
}

// A lab test's handle on its own lab (index `index`, folder `dir`): `lab ARGS`
// failing with the lab's message, the hosts `up` reported, and the docker CLI
// on one of them.
export class LabSession {
  hosts: LabHost[] = [];
  constructor(readonly index: string, readonly dir: string, private readonly cliMs: number) {}

  host(name: string): LabHost {
    const h = this.hosts.find((x) => x.name === name);
    if (!h) throw new Error(`no host ${name}`);
    return h;
  }

  async lab(args: string[]): Promise<string> {
    const r = await runLab(this.index, [...args, '--dir', this.dir], 300_000);
    if (r.code !== 0) throw new Error(`lab ${args.join(' ')}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  docker(name: string, args: string[]): Promise<DockerResult> {
    return runDocker(this.host(name).dockerHost, args, { timeoutMs: this.cliMs });
  }
}
