import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { EtcdBackend, SoftDeadlineError } from '../../../src/store/etcd-backend';

// An endpoint that takes connections and never says a word: every call on
// it goes unanswered, as on the wedged client seen after etcd restarts.
async function silentEndpoint(): Promise<{ url: string; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => { sockets.add(s); s.on('error', () => undefined); s.on('close', () => sockets.delete(s)); });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()); }),
  };
}

test('the unary client is replaced once its calls have gone unanswered for the wedged time, not before', async (t) => {
  const hole = await silentEndpoint();
  // Wedged after 1 s of silence; the short calls wait 100 ms: a loaded CI's stalls of the event loop fit between.
  const backend = new EtcdBackend({ hosts: hole.url }, 1000);
  t.after(async () => { await backend.close(); await hole.close(); });
  const renewed: number[] = [];
  backend.onClientRenewed = (silentMs) => renewed.push(silentMs);
  const first = backend.client;

  // Unanswered 100 ms after the backend was made: not yet wedged.
  await assert.rejects(backend.range('/shoal/x', { timeoutMs: 100 }), SoftDeadlineError);
  assert.equal(backend.client, first);
  assert.deepEqual(renewed, []);

  // Unanswered past 1 s of silence: a new client, the silence told.
  await assert.rejects(backend.range('/shoal/x', { timeoutMs: 1000 }), SoftDeadlineError);
  assert.notEqual(backend.client, first);
  assert.equal(renewed.length, 1);
  assert.ok(renewed[0]! >= 1000, `silence told: ${renewed[0]} ms`);

  // The new client's silence counts from its making: one more short call keeps it.
  const second = backend.client;
  await assert.rejects(backend.range('/shoal/x', { timeoutMs: 100 }), SoftDeadlineError);
  assert.equal(backend.client, second);
  assert.equal(renewed.length, 1);
});
