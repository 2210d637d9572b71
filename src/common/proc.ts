import { readdirSync, readFileSync } from 'node:fs';

// Looking at other processes through /proc (Linux).

// Whether `pid` is a live process. An exited child whose parent is gone stays
// a zombie until some init reaps it (not every container's pid 1 does), and a
// zombie still answers signal 0: its state in /proc tells.
export function alive(pid: number | undefined): boolean {
  if (!pid) return false;
  try { process.kill(pid, 0); } catch { return false; }
  try { return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8')); } catch { return false; }
}

// The process's arguments, argv[0] first; [] if it is gone.
export function cmdlineArgs(pid: number): string[] {
  let raw: string;
  try { raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8'); } catch { return []; }
  return raw ? raw.replace(/\0$/, '').split('\0') : [];
}

// The same, joined by spaces (for matching and messages).
export function cmdline(pid: number): string {
  return cmdlineArgs(pid).join(' ').trim();
}

export function allPids(): number[] {
  return readdirSync('/proc').filter((e) => /^\d+$/.test(e)).map(Number);
}

export function killPid(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try { process.kill(pid, signal); } catch { /* already gone */ }
}
