import { spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../../common/run';
import { COMMAND_TIMEOUT_MS, runBatch } from './commands';
import type { TunnelPlan } from './plan';

// The node's WireGuard interface (encryption.ts), the I/O half. The kernel's
// WireGuard when it has one; otherwise wireguard-go (Debian's package of the
// same name) serves the interface from user space, on a TUN device. Its
// process is detached, as the interface outlives a restarted daemon (the task
// containers keep talking): the next daemon finds it and takes it over, and
// it ends when the interface is removed. `wg` (wireguard-tools) configures
// either kind the same way.

export const WIREGUARD_GO = 'wireguard-go';
export const USERSPACE_SOCKET_DIR = '/var/run/wireguard';
const START_TIMEOUT_MS = 5_000;

export class TunnelError extends Error {
  constructor(message: string) { super(message); this.name = 'TunnelError'; }
}

export interface TunnelDeps {
  run: typeof run;
  // Resolves once the interface is ready; `exited` is called if the process ends later.
  startUserspace: (name: string, exited: () => void) => Promise<void>;
  syncconf: (name: string, config: string) => ReturnType<typeof run>;
}

export class Tunnel {
  private applied?: { name: string; config: string };   // the last configuration `wg` took
  private readonly removed = new Set<string>();          // taken down on purpose: their ending is no loss

  // `lost`: a wireguard-go this daemon started has ended (its interface with
  // it): the overlay makes it again at once rather than at its next repair.
  constructor(private readonly lost: (name: string) => void = () => undefined,
    private readonly deps: TunnelDeps = { run, startUserspace, syncconf }) {}

  // Resolves once the interface exists with its address and, when the plan
  // has one, its configuration; rejects with why not.
  async apply(plan: TunnelPlan): Promise<void> {
    if (plan.create) {
      this.applied = undefined;
      this.removed.delete(plan.name);
      const k = await this.deps.run('ip', ['link', 'add', 'dev', plan.name, 'type', 'wireguard'], { timeoutMs: COMMAND_TIMEOUT_MS });
      if (k.code !== 0) {
        await this.deps.startUserspace(plan.name, () => {
          if (this.removed.has(plan.name)) return;
          if (this.applied?.name === plan.name) this.applied = undefined;
          this.lost(plan.name);
        });
      }
    }
    const failed = await runBatch('ip', plan.ip);
    if (failed.length) throw new TunnelError(`tunnel ${plan.name}: ${failed.map((f) => `${f.line}: ${f.error}`).join('; ')}`);
    if (plan.config === undefined) return;
    if (this.applied?.name === plan.name && this.applied.config === plan.config) return;
    const r = await this.deps.syncconf(plan.name, plan.config);
    if (r.code !== 0) throw new TunnelError(`tunnel ${plan.name}: wg syncconf: ${r.stderr.trim() || `exit ${r.code}`}`);
    this.applied = { name: plan.name, config: plan.config };
  }

  // These interfaces are about to be deleted on purpose.
  removing(names: string[]): void {
    for (const n of names) this.removed.add(n);
    if (this.applied && names.includes(this.applied.name)) this.applied = undefined;
  }
}

// `wg` reads a configuration from a file only (not from a socket, which is
// what a child's stdin is): one in a private directory, gone right after.
async function syncconf(name: string, config: string): ReturnType<typeof run> {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-wg-'));
  try {
    const file = join(dir, `${name}.conf`);
    await writeFile(file, config, { mode: 0o600 });
    return await run('wg', ['syncconf', name, file], { timeoutMs: COMMAND_TIMEOUT_MS });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function startUserspace(name: string, exited: () => void): Promise<void> {
  const socket = `${USERSPACE_SOCKET_DIR}/${name}.sock`;
  // One left by a process that died with its interface (a host powered off) would answer nothing.
  rmSync(socket, { force: true });
  const child = spawn(WIREGUARD_GO, ['-f', name], {
    detached: true,
    stdio: 'ignore',
    // wireguard-go declines to run where the kernel could (it cannot here) unless told so.
    env: { ...process.env, WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: '1', LOG_LEVEL: 'error' },
  });
  let spawnError: Error | undefined;
  let exitCode: number | null | undefined;
  child.on('error', (err) => { spawnError = err; });
  child.on('exit', (code) => { exitCode = code; });
  child.unref();
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (spawnError) {
      throw new TunnelError(`encrypted overlays need WireGuard: this kernel has none and ${WIREGUARD_GO} could not be started (${spawnError.message}); install the wireguard-go package`);
    }
    if (exitCode !== undefined) throw new TunnelError(`${WIREGUARD_GO} for ${name} exited (code ${String(exitCode)}) before its interface was ready`);
    if (existsSync(socket)) {
      const l = await run('ip', ['link', 'show', 'dev', name], { timeoutMs: COMMAND_TIMEOUT_MS });
      if (l.code === 0 && exitCode === undefined) { child.once('exit', () => exited()); return; }
    }
    if (Date.now() > deadline) {
      child.kill();
      throw new TunnelError(`${WIREGUARD_GO} did not make ${name} within ${START_TIMEOUT_MS} ms`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
