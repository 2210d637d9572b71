import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { probeFailover } from '../../faults/probe';
import { CREATE_LABEL, type Entry } from '../../faults/history';

// A manager's API on a unix socket: answers each config create with the next status.
async function manager(socket: string, statuses: number[], seen: string[]): Promise<Server> {
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => { body += c.toString(); });
    req.on('end', () => {
      seen.push(`${req.method} ${req.url} ${(JSON.parse(body) as { Labels: Record<string, string> }).Labels[CREATE_LABEL]}`);
      const status = statuses.shift() ?? 201;
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(status === 201 ? '{"ID":"cfgid"}' : '{"message":"The swarm does not have a leader."}');
    });
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  return server;
}

test('the failover probe writes through the other managers in turn until one write is acknowledged, and records each', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'probe-'));
  const seen2: string[] = [];
  const seen3: string[] = [];
  const servers = [await manager(join(dir, 'h2.sock'), [503, 503], seen2), await manager(join(dir, 'h3.sock'), [503], seen3)];
  t.after(() => { for (const s of servers) s.close(); rmSync(dir, { recursive: true, force: true }); });
  const history: Entry[] = [];
  await probeFailover({
    managers: [{ host: 'host1', socket: join(dir, 'none.sock') }, { host: 'host2', socket: join(dir, 'h2.sock') }, { host: 'host3', socket: join(dir, 'h3.sock') }],
    avoid: 'host1', round: 7, record: (e) => { history.push(e); }, now: () => performance.now(),
  });
  // host1 (the faulted host) never asked; host2, host3, host2 refused or failed; host3's second is acknowledged.
  assert.deepEqual(history.map((e) => [e.id, e.manager, e.outcome]), [
    ['p7-1', 'host2', 'unknown'], ['p7-2', 'host3', 'unknown'], ['p7-3', 'host2', 'unknown'], ['p7-4', 'host3', 'ok'],
  ]);
  assert.deepEqual(seen2, ['POST /configs/create p7-1', 'POST /configs/create p7-3']);
  assert.deepEqual(seen3, ['POST /configs/create p7-2', 'POST /configs/create p7-4']);
  const last = history.at(-1)!;
  assert.equal(last.createdId, 'cfgid');
  assert.equal(last.kind, 'config');
  assert.equal(last.name, 'probe-7-4');
  assert.equal(last.client, 0);
  assert.ok(history.every((e) => e.end >= e.start));
});
