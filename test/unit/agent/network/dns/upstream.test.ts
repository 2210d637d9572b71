import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { forward, parseResolvConf } from '../../../../../src/agent/network/dns/upstream';

// A minimal query: ID 0x1234, RD, one question for "a." IN A.
const QUERY = Buffer.from('123401000001000000000000' + '016100' + '00010001', 'hex');

test('a forward ended before its UDP socket connected neither throws nor answers', async () => {
  // The bug this guards: when the exchange ended (time-out, abort) before
  // dgram's connect callback ran, the callback sent on a closed socket, dgram
  // read the callback as a port, and the throw escaped every handler (the
  // daemon died). The race is forced here: every connect callback is held
  // back until the forward has ended and closed its socket.
  const server = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => server.bind(0, '127.0.0.1', resolve));
  const port = server.address().port;
  const held: Array<() => void> = [];
  const realConnect = dgram.Socket.prototype.connect as (this: dgram.Socket, port: number, addr: string, cb: () => void) => void;
  const holdBack = function (this: dgram.Socket, p: number, a: string, cb: () => void): void {
    realConnect.call(this, p, a, () => { held.push(cb); });
  };
  (dgram.Socket.prototype as { connect: unknown }).connect = holdBack;
  const escaped: unknown[] = [];
  const onUncaught = (e: unknown): void => { escaped.push(e); };
  process.on('uncaughtException', onUncaught);
  try {
    const ac = new AbortController();
    const p = forward(QUERY, [{ addr: '127.0.0.1', port }], { tcp: false, timeoutMs: 2000, signal: ac.signal });
    const deadline = Date.now() + 2000;
    while (held.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(held.length, 1, 'the connect completed');
    ac.abort();
    assert.equal(await p, undefined);
    setImmediate(() => { for (const cb of held) cb(); });   // the late callback, outside any try
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(escaped, []);
  } finally {
    (dgram.Socket.prototype as { connect: unknown }).connect = realConnect;
    process.off('uncaughtException', onUncaught);
    server.close();
  }
});

test('resolv.conf: loopback, our own address, zones and duplicates dropped, at most three', () => {
  const text = 'nameserver 127.0.0.53\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\nnameserver 10.0.0.2\nnameserver 169.254.53.53\nnameserver 10.0.0.3\nnameserver 10.0.0.4\n';
  assert.deepEqual(parseResolvConf(text, ['169.254.53.53']).map((u) => u.addr), ['10.0.0.2', 'fe80::1', '10.0.0.3']);
});
