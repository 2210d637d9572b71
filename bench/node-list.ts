// `node dist/bench/node-list.js`: `node ls` of many nodes on this machine,
// without a lab. N worker nodes shaped as the simulated ones (a root PEM in
// TLSInfo, engine plugins) in an in-memory store; Shoal's own API handler on
// a unix socket answers `GET /nodes` (timed, --samples times: the first call
// serialises every node, later ones reuse the kept answer); then the real
// docker CLI runs `docker node ls` against that answer replayed by a
// stand-in engine (bench/canned-engine.ts): the CLI's own cost.
//
//   node dist/bench/node-list.js [--nodes 5000] [--samples 5]
import { createServer, request } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { controlFixture, fakeNode, NODE_ID } from '../test/helpers/control-fixture';
import { startCannedEngine } from './canned-engine';
import { exec, median, positiveOption, runBenchMain } from './util';

const PEM = `-----BEGIN CERTIFICATE-----\n${'A'.repeat(560)}\n-----END CERTIFICATE-----\n`;
const PLUGINS = [{ Type: 'Log', Name: 'json-file' }, { Type: 'Network', Name: 'overlay' }, { Type: 'Volume', Name: 'local' }, { Type: 'Network', Name: 'bridge' }];
const CALL_TIMEOUT_MS = 60_000;

// One GET over the socket: seconds until the whole body is in, and the body.
function timedGet(socketPath: string, path: string): Promise<{ seconds: number; body: Buffer }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, timeout: CALL_TIMEOUT_MS }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => (res.statusCode === 200 ? resolve({ seconds: (performance.now() - t0) / 1000, body: Buffer.concat(chunks) }) : reject(new Error(`GET ${path}: ${res.statusCode}`))));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: no answer within ${CALL_TIMEOUT_MS / 1000} s`)));
    req.on('error', reject);
    req.end();
  });
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { nodes: { type: 'string' }, samples: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) { process.stdout.write('usage: node dist/bench/node-list.js [--nodes 5000] [--samples 5]\n'); return 0; }
  const n = Math.round(positiveOption(values.nodes, 5000, 'nodes'));
  const samples = Math.round(positiveOption(values.samples, 5, 'samples'));
  const f = await controlFixture();
  for (let i = 0; i < n; i += 100) {
    const txn = f.store.txn();
    for (let j = i; j < Math.min(n, i + 100); j++) {
      const node = fakeNode(`w${String(j).padStart(24, '0')}`, `sim-${j}`, 'worker');
      node.Description.TLSInfo = { TrustRoot: PEM, CertIssuerSubject: 'MBMxETAPBgNVBAMTCHN3YXJtLWNh', CertIssuerPublicKey: 'B'.repeat(124) };
      node.Description.Engine.Plugins = PLUGINS;
      txn.create('nodes', node);
    }
    await txn.commit();
  }
  const dir = mkdtempSync(join(tmpdir(), 'shoal-node-list-'));
  const socket = join(dir, 'shoal.sock');
  const server = createServer(f.handler);
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(socket, resolve); });
  try {
    const api: number[] = [];
    let body: Buffer = Buffer.alloc(0);
    for (let i = 0; i < samples; i++) ({ seconds: api[i], body } = await timedGet(socket, '/v1.41/nodes'));
    const info = Buffer.from(JSON.stringify({ ID: 'bench', Swarm: { NodeID: NODE_ID, LocalNodeState: 'active', ControlAvailable: true } }));
    const canned = await startCannedEngine(new Map([['/nodes', body], ['/info', info]]));
    const cli: number[] = [];
    try {
      for (let i = 0; i < samples; i++) {
        const t0 = performance.now();
        const r = await exec('docker', ['node', 'ls'], { env: { ...process.env, DOCKER_HOST: canned.dockerHost }, timeoutMs: CALL_TIMEOUT_MS });
        if (r.code !== 0) throw new Error(`docker node ls: ${r.stderr.trim()}`);
        cli.push((performance.now() - t0) / 1000);
      }
    } finally { await canned.close(); }
    const s = (xs: number[]) => xs.map((x) => x.toFixed(3)).join(', ');
    process.stdout.write(`${n + 1} nodes, ${(body.length / 1e6).toFixed(1)} MB of JSON\n`
      + `GET /nodes (Shoal's handler, unix socket): median ${median(api).toFixed(3)} s (${s(api)}; the first serialises every node)\n`
      + `docker node ls against the same answer (the CLI alone): median ${median(cli).toFixed(3)} s (${s(cli)})\n`);
    return 0;
  } finally {
    await new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); });
    await f.store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

runBenchMain(main);
