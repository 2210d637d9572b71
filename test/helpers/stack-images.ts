// Local stand-ins for the images the seeds' stacks name (nothing can be
// pulled here), built on the machine's dockerd from the busybox test image
// and binaries of this machine's Debian packages, then copied into lab hosts:
//
//   registry:latest           -> shoal-test/registry:2        Debian's docker-registry (distribution 2.8)
//   haproxy:latest            -> shoal-test/haproxy:2.6       Debian's haproxy, run as the official image does (-W -db)
//   tomcat app (app:1.0/1.1)  -> shoal-test/stack-web:1.0/1.1 busybox httpd on 8080, /hello-world/ names its version
//   dockersamples/visualizer  -> shoal-test/visualizer:1      busybox httpd on 8080, a page titled Visualizer
//   portainer/agent           -> shoal-test/portainer-agent:1 busybox httpd on 9001 (/hostname), arguments ignored
//   portainer/portainer       -> shoal-test/portainer:1       busybox httpd on 9000, arguments (-H …) ignored
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { run } from '../../src/common/run';
import { dockerEngine, HOST_ENGINE_SOCKET } from './daemon';
import { ensureBusyboxImage } from './images';

export const BUSYBOX = 'shoal-test/busybox:1';
export const STACK_IMAGES = {
  registry: 'shoal-test/registry:2',
  haproxy: 'shoal-test/haproxy:2.6',
  web: (v: string) => `shoal-test/stack-web:${v}`,
  visualizer: 'shoal-test/visualizer:1',
  agent: 'shoal-test/portainer-agent:1',
  portainer: 'shoal-test/portainer:1',
} as const;
export const WEB_VERSIONS = ['1.0', '1.1'] as const;
const HAPROXY = '/usr/sbin/haproxy';
const REGISTRY = '/usr/bin/docker-registry';

interface Context { dockerfile: string; files?: Record<string, string>; copy?: Record<string, string> }

// The shared libraries a binary loads (ldd), with the loader.
async function libraries(binary: string): Promise<string[]> {
  const r = await run('ldd', [binary], { timeoutMs: 10_000 });
  if (r.code !== 0) throw new Error(`ldd ${binary}: ${r.stderr.trim()}`);
  return [...r.stdout.matchAll(/(\/\S+\.so[.\d]*)\s+\(0x/g)].map((m) => m[1]!);
}

async function build(tag: string, ctx: Context): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-stack-image-'));
  try {
    writeFileSync(join(dir, 'Dockerfile'), ctx.dockerfile);
    for (const [path, text] of Object.entries(ctx.files ?? {})) {
      mkdirSync(dirname(join(dir, 'rootfs', path)), { recursive: true });
      writeFileSync(join(dir, 'rootfs', path), text);
    }
    for (const [path, from] of Object.entries(ctx.copy ?? {})) {
      mkdirSync(dirname(join(dir, 'rootfs', path)), { recursive: true });
      copyFileSync(from, join(dir, 'rootfs', path)); // follows symlinks: the library's real bytes under its soname
    }
    mkdirSync(join(dir, 'rootfs'), { recursive: true });
    const r = await dockerEngine(['build', '-q', '-t', tag, dir], { timeoutMs: 180_000 });
    if (r.code !== 0) throw new Error(`docker build ${tag}: ${r.stderr.trim()}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const httpd = (port: number, label: string) =>
  `FROM ${BUSYBOX}\nCOPY rootfs/ /\nLABEL shoal.test.stack=${label}\nENTRYPOINT ["sh", "-c", "hostname > /www/hostname; exec httpd -f -p ${port} -h /www", "${label}"]\n`;

let made: Promise<void> | undefined;

// Builds every stand-in on the machine's dockerd (the builder's cache makes a second call quick).
export function ensureStackImages(): Promise<void> {
  made ??= makeAll();
  made.catch(() => { made = undefined; });
  return made;
}

async function makeAll(): Promise<void> {
  for (const b of [HAPROXY, REGISTRY]) if (!existsSync(b)) throw new Error(`${b} is missing: bash scripts/setup.sh --deps-only installs it`);
  await ensureBusyboxImage(HOST_ENGINE_SOCKET, BUSYBOX);
  const nss = { '/etc/nsswitch.conf': 'hosts: files dns\n' };
  const libsOf = async (b: string) => Object.fromEntries((await libraries(b)).map((l) => [l, l]));
  await build(STACK_IMAGES.registry, {
    dockerfile: `FROM ${BUSYBOX}\nCOPY rootfs/ /\nEXPOSE 5000\nVOLUME /var/lib/registry\nCMD ["registry", "serve", "/etc/docker/registry/config.yml"]\n`,
    files: { ...nss, '/etc/docker/registry/config.yml': 'version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/registry\n  delete:\n    enabled: true\nhttp:\n  addr: :5000\n' },
    copy: { '/bin/registry': REGISTRY, ...(await libsOf(REGISTRY)) },
  });
  await build(STACK_IMAGES.haproxy, {
    dockerfile: `FROM ${BUSYBOX}\nCOPY rootfs/ /\nSTOPSIGNAL SIGUSR1\nCMD ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]\n`,
    files: { ...nss, '/usr/local/etc/haproxy/.keep': '', '/run/haproxy/.keep': '' },
    copy: { '/bin/haproxy': HAPROXY, ...(await libsOf(HAPROXY)) },
  });
  for (const v of WEB_VERSIONS) {
    await build(STACK_IMAGES.web(v), {
      dockerfile: httpd(8080, `web-${v}`),
      files: { '/www/hello-world/index.html': `<html><head><title>Hello World!</title></head><body><h1>Hello World!</h1><p>version ${v}</p></body></html>\n` },
    });
  }
  await build(STACK_IMAGES.visualizer, { dockerfile: httpd(8080, 'visualizer'), files: { '/www/index.html': '<html><head><title>Visualizer</title></head></html>\n' } });
  await build(STACK_IMAGES.agent, { dockerfile: httpd(9001, 'agent'), files: { '/www/index.html': 'agent\n' } });
  await build(STACK_IMAGES.portainer, { dockerfile: httpd(9000, 'portainer'), files: { '/www/index.html': 'portainer\n' } });
}

// `docker save` from the machine's dockerd into a host's own dockerd (`docker load`), bounded.
export function loadImages(engineSocket: string, images: string[], timeoutMs = 180_000): Promise<void> {
  const script = `docker -H unix://${HOST_ENGINE_SOCKET} save ${images.map((i) => `'${i}'`).join(' ')} | docker -H unix://${engineSocket} load -q`;
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-o', 'pipefail', '-c', script], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => { clearTimeout(timer); reject(err); });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`loading ${images.join(', ')} into ${engineSocket}: ${code === null ? 'timed out' : stderr.trim()}`));
    });
  });
}
