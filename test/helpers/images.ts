import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, copyFileSync, symlinkSync, rmSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Dockerode from 'dockerode';

// Nothing can be pulled here, so tests build their image from the host's
// static busybox: /bin/busybox plus one symlink per applet, imported as a
// one-layer image with PATH=/bin.

const BUSYBOX = '/bin/busybox';
const inFlight = new Map<string, Promise<void>>();

// dockerSocket: a socket path or unix:///path.
export function ensureBusyboxImage(dockerSocket: string, tag = 'shoal-test/busybox:1'): Promise<void> {
  const socketPath = dockerSocket.replace(/^unix:\/\//, '');
  const key = `${socketPath} ${tag}`;
  let p = inFlight.get(key);
  if (!p) {
    p = build(new Dockerode({ socketPath }), tag);
    p.catch(() => inFlight.delete(key));
    inFlight.set(key, p);
  }
  return p;
}

async function build(docker: Dockerode, tag: string): Promise<void> {
  try {
    await docker.getImage(tag).inspect();
    return;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode !== 404) throw err;
  }
  const dir = mkdtempSync(join(tmpdir(), 'shoal-busybox-'));
  try {
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    copyFileSync(BUSYBOX, join(bin, 'busybox'));
    chmodSync(join(bin, 'busybox'), 0o755);
    const applets = execFileSync(BUSYBOX, ['--list'], { encoding: 'utf8' }).split('\n').map((s) => s.trim()).filter(Boolean);
    for (const a of applets) if (a !== 'busybox') symlinkSync('busybox', join(bin, a));
    for (const d of ['tmp', 'etc', 'proc', 'sys', 'dev', 'root']) mkdirSync(join(dir, d), { recursive: true });
    chmodSync(join(dir, 'tmp'), 0o1777);
    const [repo, version] = splitTag(tag);
    const tar = spawn('tar', ['-C', dir, '-c', '.'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const tarDone = new Promise<void>((resolve, reject) => {
      tar.on('error', reject);
      tar.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`tar exited with ${code}`))));
    });
    const out = (await docker.importImage(tar.stdout as never, { repo, tag: version, changes: ['ENV PATH=/bin'] } as never)) as unknown as NodeJS.ReadableStream;
    await new Promise<void>((resolve, reject) => {
      let failure: string | undefined;
      out.on('data', (c: Buffer) => {
        for (const line of c.toString('utf8').split('\n')) {
          try { const m = JSON.parse(line) as { error?: string }; if (m.error) failure = m.error; } catch { /* partial line */ }
        }
      });
      out.on('error', reject);
      out.on('end', () => (failure ? reject(new Error(`docker import failed: ${failure}`)) : resolve()));
    });
    await tarDone;
    await docker.getImage(tag).inspect();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function splitTag(ref: string): [string, string] {
  const slash = ref.lastIndexOf('/');
  const colon = ref.lastIndexOf(':');
  return colon > slash ? [ref.slice(0, colon), ref.slice(colon + 1)] : [ref, 'latest'];
}
