import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { cannedPath, startCannedEngine } from '../../../bench/canned-engine';

function get(socketPath: string, method: string, path: string): Promise<{ status: number; apiVersion: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, apiVersion: String(res.headers['api-version'] ?? ''), body }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

test('canned engine: paths without version and query; recorded answers, a ping, 404 for the rest', async () => {
  assert.equal(cannedPath('/v1.41/nodes?filters=%7B%7D'), '/nodes');
  assert.equal(cannedPath('/nodes'), '/nodes');
  assert.equal(cannedPath('/v1.41/info'), '/info');
  assert.equal(cannedPath('/_ping'), '/_ping');

  const nodes = Buffer.from('[{"ID":"a"}]\n');
  const engine = await startCannedEngine(new Map([['/nodes', nodes]]));
  const socket = engine.dockerHost.replace(/^unix:\/\//, '');
  try {
    const ping = await get(socket, 'HEAD', '/_ping');
    assert.equal(ping.status, 200);
    assert.equal(ping.apiVersion, '1.41', 'the CLI negotiates its version from this header');
    const listed = await get(socket, 'GET', '/v1.41/nodes');
    assert.deepEqual([listed.status, listed.body], [200, nodes.toString()]);
    const missing = await get(socket, 'GET', '/v1.41/info');
    assert.equal(missing.status, 404);
    assert.deepEqual(JSON.parse(missing.body), { message: 'page not found' });
    assert.equal((await get(socket, 'POST', '/v1.41/nodes')).status, 404, 'only GETs are answered');
  } finally { await engine.close(); }
});
