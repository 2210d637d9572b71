import { spawn } from 'node:child_process';

export interface RunResult { code: number; stdout: string; stderr: string }

export interface RunOptions { timeoutMs?: number; input?: string; env?: NodeJS.ProcessEnv }

// Runs a command to its end, bounded in time. Never rejects: a command that
// cannot start gives 127, one past its deadline is killed and gives 124;
// otherwise `code` is its exit code (check it).
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: [opts.input !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'], env: opts.env ?? process.env });
    let stdout = '';
    let stderr = '';
    let late = false;
    // Decoded by the streams: a character split across two chunks stays whole.
    child.stdout!.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const timer = setTimeout(() => { late = true; child.kill('SIGKILL'); }, timeoutMs);
    child.on('error', (err) => { clearTimeout(timer); resolve({ code: 127, stdout, stderr: `${stderr}${err.message}` }); });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve(late
        ? { code: 124, stdout, stderr: `${stderr}\n${cmd} ${args.join(' ')}: no end within ${timeoutMs} ms` }
        : { code: code ?? -1, stdout, stderr });
    });
    if (opts.input !== undefined) {
      // A command that exits without reading its input (EPIPE) says so by its exit code.
      child.stdin!.on('error', () => undefined);
      child.stdin!.end(opts.input);
    }
  });
}
