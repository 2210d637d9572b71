import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, runDocker, SHOAL_MAIN, startShoal, type ShoalHandle } from '../../helpers/daemon';

// The API on tcp:// with dockerd's TLS flags: the docker CLI with a client
// certificate signed by the CA works, a client without one is refused, and
// plain tcp without TLS is refused at start.

let dir: string;
let shoal: ShoalHandle | undefined;
let host: string;
const pem = (name: string): string => join(dir, name);

// A CA, a server certificate for 127.0.0.1, a client certificate, and a
// client certificate from another CA (openssl CLI: node:crypto cannot sign).
function makeCerts(): void {
  const run = (args: string[]): void => {
    const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, `openssl ${args.join(' ')}: ${r.stderr}`);
  };
  const key = (name: string): string[] => ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', name];
  for (const ca of ['ca', 'other-ca']) run(['req', '-x509', ...key(`${ca}-key.pem`), '-out', `${ca}.pem`, '-days', '2', '-subj', `/CN=shoal-test-${ca}`]);
  writeFileSync(pem('server.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  writeFileSync(pem('client.ext'), 'extendedKeyUsage=clientAuth\n');
  const sign = (name: string, ca: string, ext: string): void => {
    run(['req', ...key(`${name}-key.pem`), '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
    run(['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}-key.pem`, '-CAcreateserial', '-out', `${name}-cert.pem`, '-days', '2', '-extfile', ext]);
  };
  sign('server', 'ca', 'server.ext');
  sign('client', 'ca', 'client.ext');
  sign('stranger', 'other-ca', 'client.ext');
}

const tlsArgs = (client: 'client' | 'stranger' | 'none'): string[] => [
  '--tlsverify', '--tlscacert', pem('ca.pem'),
  ...(client === 'none' ? [] : ['--tlscert', pem(`${client}-cert.pem`), '--tlskey', pem(`${client}-key.pem`)]),
];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'shoal-tls-'));
  makeCerts();
  const port = await freePort();
  host = `tcp://127.0.0.1:${port}`;
  shoal = await startShoal({
    hostname: 'tls-node',
    extraArgs: ['-H', host, '--tlsverify', '--tlscacert', pem('ca.pem'), '--tlscert', pem('server-cert.pem'), '--tlskey', pem('server-key.pem')],
  });
});

after(async () => {
  await shoal?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

// An empty config dir, so the CLI finds no certificates of its own.
const cliEnv = (): Record<string, string> => ({ DOCKER_CONFIG: join(dir, 'cli-config') });

test('docker CLI with --tlsverify and a client certificate: version, swarm init, node ls', { timeout: 120_000 }, async () => {
  const version = await runDocker(host, [...tlsArgs('client'), 'version', '--format', '{{.Server.APIVersion}}'], { env: cliEnv(), timeoutMs: 30_000 });
  assert.equal(version.code, 0, version.stderr);
  assert.equal(version.stdout.trim(), '1.41');
  const init = await runDocker(host, [...tlsArgs('client'), 'swarm', 'init', '--advertise-addr', '127.0.0.1'], { env: cliEnv(), timeoutMs: 60_000 });
  assert.equal(init.code, 0, init.stderr);
  const ls = await runDocker(host, [...tlsArgs('client'), 'node', 'ls', '--format', '{{.Hostname}} {{.ManagerStatus}}'], { env: cliEnv(), timeoutMs: 30_000 });
  assert.equal(ls.code, 0, ls.stderr);
  assert.equal(ls.stdout.trim(), 'tls-node Leader');
  assert.match(shoal!.logs(), /"tlsverify":true/);
});

test('clients without a certificate, or with one from another CA, are refused', { timeout: 60_000 }, async () => {
  for (const who of ['none', 'stranger'] as const) {
    const r = await runDocker(host, [...tlsArgs(who), 'version', '--format', '{{.Server.APIVersion}}'], { env: cliEnv(), timeoutMs: 30_000 });
    assert.notEqual(r.code, 0, `${who}: ${r.stdout}`);
    assert.equal(r.stdout.trim(), '', who);
  }
  // The TLS handshake itself fails without a client certificate.
  const port = Number(host.split(':').pop());
  const refused = await new Promise<string>((resolve) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ca: readFileSync(pem('ca.pem')), servername: '127.0.0.1' }, () => {
      s.write('GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n');
    });
    let got = '';
    s.on('data', (d: Buffer) => { got += d.toString(); });
    s.on('error', (e) => resolve(`error: ${e.message}`));
    s.on('close', () => resolve(got ? `answered: ${got}` : 'closed'));
  });
  assert.doesNotMatch(refused, /^answered/, refused);
});

test('--insecure-tcp allows plain tcp, with dockerd\'s warning in the log', { timeout: 60_000 }, async () => {
  const plain = `tcp://127.0.0.1:${await freePort()}`;
  const insecure = await startShoal({ hostname: 'plain-node', extraArgs: ['-H', plain, '--insecure-tcp'] });
  try {
    const r = await runDocker(plain, ['version', '--format', '{{.Server.APIVersion}}'], { env: cliEnv(), timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), '1.41');
    assert.match(insecure.logs(), /"level":"?(40|warn)"?[^\n]*Binding to IP address without --tlsverify is insecure and gives root access on this machine/);
  } finally {
    await insecure.cleanup();
  }
});

test('plain tcp without TLS is refused at start with a clear error', { timeout: 30_000 }, async () => {
  const port = await freePort();
  const child = spawn(process.execPath, [SHOAL_MAIN, 'daemon', '-H', `tcp://127.0.0.1:${port}`, '--data-root', join(dir, 'plain')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const code = await new Promise<number | null>((resolve) => {
    const t = setTimeout(() => { child.kill('SIGKILL'); resolve(null); }, 20_000);
    child.on('close', (c) => { clearTimeout(t); resolve(c); });
  });
  assert.equal(code, 1, stderr);
  assert.match(stderr, /refusing to serve the Docker API on tcp:\/\/127.0.0.1:\d+ without TLS[^]*--tlsverify[^]*--insecure-tcp/);
});
