import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, copyFileSync, symlinkSync, rmSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EngineClient, EngineError, expectOk } from '../../src/engine/client';
import { onJsonLines } from '../../src/engine/json-lines';

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
    p = build(new EngineClient(`unix://${socketPath}`), tag);
    p.catch(() => inFlight.delete(key));
    inFlight.set(key, p);
  }
  return p;
}

async function build(engine: EngineClient, tag: string): Promise<void> {
  try {
    await engine.getJson(`/images/${encodeURIComponent(tag)}/json`);
    return;
  } catch (err) {
    if (!(err instanceof EngineError) || err.status !== 404) throw err;
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
    const tar = execFileSync('tar', ['-C', dir, '-c', '.'], { maxBuffer: 64 * 1024 * 1024 });
    const out = await expectOk(await engine.stream('POST', '/images/create', {
      query: { fromSrc: '-', repo, tag: version, changes: 'ENV PATH=/bin' },
      rawBody: tar,
      headers: { 'Content-Type': 'application/x-tar' },
      timeoutMs: 120_000,
    }));
    await new Promise<void>((resolve, reject) => {
      let failure: string | undefined;
      onJsonLines(out, (line) => {
        try { const m = JSON.parse(line) as { error?: string }; if (m.error) failure = m.error; } catch { /* not JSON */ }
      });
      out.on('error', reject);
      out.on('end', () => (failure ? reject(new Error(`docker import failed: ${failure}`)) : resolve()));
    });
    await engine.getJson(`/images/${encodeURIComponent(tag)}/json`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    engine.close();
  }
}

function splitTag(ref: string): [string, string] {
  const slash = ref.lastIndexOf('/');
  const colon = ref.lastIndexOf(':');
  return colon > slash ? [ref.slice(0, colon), ref.slice(colon + 1)] : [ref, 'latest'];
}
