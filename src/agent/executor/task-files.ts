import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { dirname, join } from 'node:path';
import type { ContainerSpec, Driver } from '../../model/types';
import type { Logger } from '../../common/log';
import type { EngineMount } from './container-config';
import { ExecutorError } from './executor';
import { expandTemplate, type TemplateContext } from './templates';

// Secrets and configs in a task's container, as moby does it: the values are
// written to a tmpfs mounted on the host for that task alone, and each file is
// bind-mounted read-only at its target in the container with the owner and
// mode the reference asks for. Nothing touches the host's disk; the tmpfs goes
// when the task ends or its container is removed.

// moby's containerSecretMountPath and containerConfigMountPath (Linux).
export const SECRETS_DIR = '/run/secrets';
export const CONFIGS_DIR = '/';
export const DEFAULT_RUN_ROOT = '/run/shoal';

const TMPFS_MAGIC = 0x01021994;

// One file of a task: its bytes, where it goes in the container, whose it is.
export interface TaskFile {
  kind: 'secret' | 'config';
  name: string;        // the secret's or config's name, for messages
  target: string;      // absolute path in the container
  data: Buffer;
  uid: number;
  gid: number;
  mode: number;
}

export function secretTarget(name: string): string {
  return name.startsWith('/') ? name : `${SECRETS_DIR}/${name}`;
}
export function configTarget(name: string): string {
  return name.startsWith('/') ? name : `${CONFIGS_DIR}${name}`;
}

function parseId(what: string, v: string | undefined): number {
  const s = v ?? '0';
  if (!/^\d+$/.test(s) || Number(s) > 0xffffffff) throw new Error(`invalid ${what} ${JSON.stringify(s)}`);
  return Number(s);
}

// A secret's or config's value as the agent hands it over (the control
// plane's PayloadValue has this shape; the executor does not import the agent).
export interface TaskPayload {
  ID: string;
  Name: string;
  Data: Buffer;
  Templating?: Driver;
}

// Expands a payload with the golang template driver (SwarmKit's
// template.ExpandSecretSpec). Errors never quote the payload.
function expandPayload(kind: string, v: TaskPayload, ctx: TemplateContext): Buffer {
  const driver = v.Templating?.Name;
  if (!driver) return v.Data;
  if (driver !== 'golang') throw new ExecutorError(`${kind} ${v.Name}: unrecognized template type ${driver}`, false);
  try {
    return Buffer.from(expandTemplate(v.Data.toString('utf8'), ctx), 'utf8');
  } catch {
    throw new ExecutorError(`${kind} ${v.Name}: template expansion failed (supported: {{.Service.*}}, {{.Node.*}}, {{.Task.*}})`, false);
  }
}

// The files a container spec asks for, from the values the control plane
// gave. Pure; throws a permanent ExecutorError (the task is rejected) when a
// referenced object is missing or a reference is unusable.
export function buildTaskFiles(spec: ContainerSpec, secrets: TaskPayload[], configs: TaskPayload[], ctx: TemplateContext): TaskFile[] {
  const out: TaskFile[] = [];
  const byId = (list: TaskPayload[]) => new Map(list.map((v) => [v.ID, v]));
  const secretsById = byId(secrets);
  const configsById = byId(configs);
  const add = (kind: 'secret' | 'config', id: string, name: string, file: NonNullable<NonNullable<ContainerSpec['Secrets']>[number]['File']>, v: TaskPayload | undefined) => {
    if (!v) throw new ExecutorError(`${kind} ${id} not found`, false); // swarmkit agent/secrets: "secret %s not found"
    let uid: number;
    let gid: number;
    try {
      uid = parseId('uid', file.UID);
      gid = parseId('gid', file.GID);
    } catch (e) {
      throw new ExecutorError(`${kind} ${name}: ${(e as Error).message}`, false);
    }
    const target = kind === 'secret' ? secretTarget(file.Name) : configTarget(file.Name);
    out.push({ kind, name, target, data: expandPayload(kind, v, ctx), uid, gid, mode: (file.Mode ?? 0o444) & 0o7777 });
  };
  for (const r of spec.Secrets ?? []) if (r.File) add('secret', r.SecretID, r.SecretName, r.File, secretsById.get(r.SecretID));
  for (const r of spec.Configs ?? []) if (r.File) add('config', r.ConfigID, r.ConfigName, r.File, configsById.get(r.ConfigID));
  return out;
}

export function needsTaskFiles(spec: ContainerSpec | undefined): boolean {
  return !!(spec?.Secrets?.some((r) => r.File) || spec?.Configs?.some((r) => r.File));
}

// Where a task's files live on the host, and their lifecycle.
export interface TaskFiles {
  // A fresh tmpfs for the task holding `files`; returns the container's bind mounts.
  prepare(taskId: string, files: TaskFile[]): Promise<EngineMount[]>;
  // Unmounts and removes the task's tmpfs; nothing there is fine.
  release(taskId: string): Promise<void>;
  // Releases every task's tmpfs but those of `keep` (leftovers of a crash).
  sweep(keep: Set<string>): Promise<void>;
}

type Run = (cmd: string, args: string[]) => Promise<void>;

const run: Run = (cmd, args) => new Promise((resolve, reject) => {
  execFile(cmd, args, { timeout: 30_000 }, (err, _stdout, stderr) => {
    if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${String(stderr).trim() || err.message}`));
    else resolve();
  });
});

// The host side: <runRoot>/<nodeId>/secrets/<taskId>, one tmpfs per task
// (mode 0700, nodev,nosuid,noexec, sized to its files, read-only once written).
export class HostTaskFiles implements TaskFiles {
  readonly dir: string;
  private readonly chains = new Map<string, Promise<unknown>>();

  constructor(runRoot: string, nodeId: string, private readonly log: Logger, private readonly exec: Run = run) {
    this.dir = join(runRoot, nodeId, 'secrets');
  }

  taskDir(taskId: string): string {
    if (!/^[0-9a-zA-Z_-]+$/.test(taskId)) throw new Error(`invalid task ID ${JSON.stringify(taskId)}`);
    return join(this.dir, taskId);
  }

  // One operation per task at a time (a release racing a prepare).
  private serial<T>(taskId: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.chains.get(taskId) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.chains.set(taskId, tail);
    void tail.then(() => { if (this.chains.get(taskId) === tail) this.chains.delete(taskId); });
    return next;
  }

  prepare(taskId: string, files: TaskFile[]): Promise<EngineMount[]> {
    return this.serial(taskId, async () => {
      const dir = this.taskDir(taskId);
      await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
      await this.unmount(dir); // a fresh tmpfs every time: nothing stale survives
      await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
      const size = files.reduce((n, f) => n + Math.ceil(f.data.length / 4096) * 4096 + 4096, 64 * 1024);
      try {
        await this.exec('mount', ['-t', 'tmpfs', '-o', `nodev,nosuid,noexec,mode=0700,size=${size}`, 'tmpfs', dir]);
      } catch (e) {
        throw new ExecutorError(`secrets need a tmpfs on the host: ${(e as Error).message}`, false);
      }
      // Never write a value anywhere but a tmpfs of ours.
      if (!(await isMountPoint(dir)) || (await fsp.statfs(dir)).type !== TMPFS_MAGIC) {
        await this.unmount(dir).catch(() => undefined);
        throw new ExecutorError(`secrets need a tmpfs on the host: ${dir} is not one`, false);
      }
      const mounts: EngineMount[] = [];
      try {
        for (const [i, f] of files.entries()) {
          const path = join(dir, `${f.kind === 'secret' ? 's' : 'c'}${i}`);
          await fsp.writeFile(path, f.data, { mode: 0o600, flag: 'wx' });
          await fsp.chown(path, f.uid, f.gid);
          await fsp.chmod(path, f.mode);
          mounts.push({ Type: 'bind', Source: path, Target: f.target, ReadOnly: true });
        }
        await this.exec('mount', ['-o', 'remount,ro', dir]);
      } catch (e) {
        await this.unmount(dir).catch(() => undefined);
        throw e instanceof ExecutorError ? e : new ExecutorError(`writing secrets and configs failed: ${(e as Error).message}`, false);
      }
      return mounts;
    });
  }

  release(taskId: string): Promise<void> {
    return this.serial(taskId, async () => {
      const dir = this.taskDir(taskId);
      await this.unmount(dir);
      await fsp.rm(dir, { recursive: true, force: true });
    });
  }

  async sweep(keep: Set<string>): Promise<void> {
    let names: string[];
    try { names = await fsp.readdir(this.dir); } catch { return; }
    for (const name of names) {
      if (keep.has(name) || !/^[0-9a-zA-Z_-]+$/.test(name)) continue;
      this.log.info({ task: name }, 'removing the secrets tmpfs of a task that is gone');
      await this.release(name).catch((err: unknown) => this.log.warn({ err: (err as Error).message, task: name }, 'removing a secrets tmpfs failed'));
    }
  }

  // Everything of this node, its runtime dir included (leaving the swarm).
  async releaseAll(): Promise<void> {
    await this.sweep(new Set());
    if ((await fsp.readdir(this.dir).catch(() => [])).length === 0) {
      await fsp.rm(dirname(this.dir), { recursive: true, force: true }).catch(() => undefined);
    }
  }

  private async unmount(dir: string): Promise<void> {
    for (let i = 0; i < 8 && (await isMountPoint(dir)); i++) {
      try {
        await this.exec('umount', [dir]);
      } catch (e) {
        // Busy (something has a file open): detach it now, the kernel frees it when unused.
        this.log.warn({ dir, err: (e as Error).message }, 'umount failed; detaching lazily');
        await this.exec('umount', ['-l', dir]);
      }
    }
  }
}

// Whether `path` is a mount point in this process's mount namespace.
export async function isMountPoint(path: string): Promise<boolean> {
  let info: string;
  try { info = await fsp.readFile('/proc/self/mountinfo', 'utf8'); } catch { return false; }
  for (const line of info.split('\n')) {
    const mp = line.split(' ')[4];
    if (mp !== undefined && unescapeMountPath(mp) === path) return true;
  }
  return false;
}

function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
}
