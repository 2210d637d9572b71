import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import * as packet from 'dns-packet';
import { silentLogger } from '../../../../../src/common/log';
import { DnsServer } from '../../../../../src/agent/network/dns/server';
import type { Upstream } from '../../../../../src/agent/network/dns/upstream';
import type { NodeNetworkView } from '../../../../../src/protocol/network-view';
import { ep } from './fixtures';

// The server over real sockets on loopback: the askers are 127.0.1.x
// addresses (all of 127/8 is local), the view's network is 127.0.1.0/24.
const SERVER = '127.0.0.1';
const NET = 'net-lo';
const ASKER = '127.0.1.11';       // web.1's address

function loView(webTasks = ['127.0.1.11', '127.0.1.12'], dnsrrTasks = 0): NodeNetworkView {
  return {
    Networks: [{ ID: NET, Name: 'lo', Subnet: '127.0.1.0/24', Gateway: '127.0.1.1', VNI: 4097, Internal: false, Attachable: false, Ingress: false, Encrypted: false, Labels: {} }],
    Services: [
      { ID: 's-web', Name: 'web', EndpointMode: 'vip', VIPs: [{ NetworkID: NET, Addr: '127.0.1.2' }], Ports: [], Aliases: [], KeepClientIP: false },
      { ID: 's-many', Name: 'many', EndpointMode: 'dnsrr', VIPs: [], Ports: [], Aliases: [], KeepClientIP: false },
    ],
    Endpoints: [
      ...webTasks.map((a, i) => ep(`t${i + 1}`, `web.${i + 1}.t${i + 1}`, 's-web', NET, a)),
      ...Array.from({ length: dnsrrTasks }, (_, i) => ep(`m${i}`, `many.${i}.m${i}`, 's-many', NET, `127.0.1.${100 + i}`)),
    ],
    LoadBalancers: [],
  };
}

const servers: DnsServer[] = [];
const closers: Array<() => void> = [];
after(async () => {
  for (const s of servers) await s.close();
  for (const c of closers) c();
});

async function startServer(upstreams: Upstream[] = [], forwardTimeoutMs = 2000, view = loView()): Promise<{ server: DnsServer; port: number }> {
  const server = new DnsServer({ nodeId: 'n1', nodeAddr: SERVER, log: silentLogger, addr: SERVER, port: 0, link: null, upstreams, forwardTimeoutMs });
  servers.push(server);
  await server.update(view);
  assert.ok(server.port, 'the server listens after its first view');
  return { server, port: server.port! };
}

const query = (name: string, type: packet.RecordType = 'A', edns = false): Buffer => packet.encode({
  type: 'query', id: Math.floor(Math.random() * 65535), flags: packet.RECURSION_DESIRED, questions: [{ type, name, class: 'IN' }],
  additionals: edns ? [{ type: 'OPT', name: '.', udpPayloadSize: 1232, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }] : [],
});

// One UDP exchange from `from`; undefined if nothing came back within `ms`.
function udpAsk(port: number, msg: Buffer, from = ASKER, ms = 3000): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const sock = dgram.createSocket('udp4');
    const timer = setTimeout(() => { sock.close(); resolve(undefined); }, ms);
    sock.on('message', (reply) => { clearTimeout(timer); sock.close(); resolve(reply); });
    sock.bind({ address: from, port: 0 }, () => sock.send(msg, port, SERVER));
  });
}

function tcpAsk(port: number, msg: Buffer, from = ASKER, ms = 3000): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: SERVER, port, localAddress: from });
    let buf = Buffer.alloc(0);
    const done = (r: Buffer | undefined) => { clearTimeout(timer); sock.destroy(); resolve(r); };
    const timer = setTimeout(() => done(undefined), ms);
    sock.on('connect', () => { const len = Buffer.alloc(2); len.writeUInt16BE(msg.length); sock.write(Buffer.concat([len, msg])); });
    sock.on('data', (c) => {
      buf = Buffer.concat([buf, c]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) done(buf.subarray(2, 2 + buf.readUInt16BE(0)));
    });
    sock.on('error', () => done(undefined));
  });
}

const decode = (b: Buffer | undefined) => {
  assert.ok(b, 'a reply');
  return packet.decode(b) as packet.DecodedPacket & { rcode: string };
};
const aData = (p: packet.DecodedPacket) => (p.answers ?? []).filter((a) => a.type === 'A').map((a) => (a as packet.StringAnswer).data).sort();

// A fake upstream on loopback (UDP and TCP on one port): answers `name` with
// `addr`, every other name with NXDOMAIN; `silent` answers nothing.
async function fakeUpstream(name: string, addr: string, silent = false): Promise<Upstream & { asked: () => number }> {
  let asked = 0;
  const reply = (msg: Buffer): Buffer => {
    const q = packet.decode(msg);
    const ours = q.questions?.[0]?.name === name;
    return packet.encode({
      type: 'response', id: q.id, flags: ours ? 0 : 3, questions: q.questions,
      answers: ours ? [{ type: 'A', name, ttl: 30, data: addr }] : [],
    });
  };
  const udp = dgram.createSocket('udp4');
  udp.on('message', (msg, r) => { asked++; if (!silent) udp.send(reply(msg), r.port, r.address); });
  await new Promise<void>((ok) => udp.bind({ address: '127.0.0.1', port: 0 }, () => ok()));
  const port = udp.address().port;
  const tcp = net.createServer((c) => c.on('data', (d) => {
    asked++;
    if (silent) return;
    const r = reply(d.subarray(2, 2 + d.readUInt16BE(0)));
    const len = Buffer.alloc(2); len.writeUInt16BE(r.length);
    c.end(Buffer.concat([len, r]));
  }));
  await new Promise<void>((ok) => tcp.listen({ host: '127.0.0.1', port }, () => ok()));
  closers.push(() => { udp.close(); tcp.close(); });
  return { addr: '127.0.0.1', port, asked: () => asked };
}

test('UDP and TCP: service VIP, tasks., AAAA NODATA; TTL 1; authoritative; the query ID kept', async () => {
  const { port } = await startServer();
  const q = query('web');
  const r = decode(await udpAsk(port, q));
  assert.equal(r.id, packet.decode(q).id);
  assert.equal(r.rcode, 'NOERROR');
  assert.equal(r.flag_aa, true);
  assert.deepEqual(aData(r), ['127.0.1.2']);
  assert.equal(r.answers?.[0]?.type === 'A' && r.answers[0].ttl, 1);
  assert.deepEqual(aData(decode(await tcpAsk(port, query('TASKS.WEB.')))), ['127.0.1.11', '127.0.1.12']);
  const aaaa = decode(await udpAsk(port, query('web', 'AAAA')));
  assert.equal(aaaa.rcode, 'NOERROR');
  assert.equal(aaaa.answers?.length, 0);
});

test('a new view is seen by the very next query (a removed task is gone)', async () => {
  const { server, port } = await startServer();
  assert.deepEqual(aData(decode(await udpAsk(port, query('tasks.web')))), ['127.0.1.11', '127.0.1.12']);
  await server.update(loView(['127.0.1.11']));
  assert.deepEqual(aData(decode(await udpAsk(port, query('tasks.web')))), ['127.0.1.11']);
  assert.deepEqual(aData(decode(await tcpAsk(port, query('tasks.web')))), ['127.0.1.11']);
});

test('scoping by source address: an asker outside the view networks gets the name forwarded (SERVFAIL without upstreams)', async () => {
  const { port } = await startServer();
  const r = decode(await udpAsk(port, query('web'), '127.0.2.5'));
  assert.equal(r.rcode, 'SERVFAIL');
  // An unlisted address inside the subnet sees the names.
  assert.deepEqual(aData(decode(await udpAsk(port, query('web'), '127.0.1.200'))), ['127.0.1.2']);
});

test('malformed queries: too short dropped, undecodable FORMERR, other opcodes NOTIMP, responses ignored; the server goes on', async () => {
  const { port } = await startServer();
  assert.equal(await udpAsk(port, Buffer.from([1, 2, 3]), ASKER, 300), undefined);
  const cut = query('web').subarray(0, 16);
  const f = decode(await udpAsk(port, cut));
  assert.equal(f.rcode, 'FORMERR');
  assert.equal(f.id, cut.readUInt16BE(0));
  const two = packet.encode({ type: 'query', id: 7, questions: [{ type: 'A', name: 'web' }, { type: 'A', name: 'db' }] });
  assert.equal(decode(await udpAsk(port, two)).rcode, 'FORMERR');
  const notify = Buffer.from(query('web')); notify[2] = (notify[2]! & 0x87) | (4 << 3);
  assert.equal(decode(await udpAsk(port, notify)).rcode, 'NOTIMP');
  const resp = Buffer.from(query('web')); resp[2] = resp[2]! | 0x80;
  assert.equal(await udpAsk(port, resp, ASKER, 300), undefined);
  // Over TCP: a header asking one question, then a label longer than the message.
  assert.equal(decode(await tcpAsk(port, Buffer.from([0, 9, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x3f, 0x41]))).rcode, 'FORMERR');
  assert.deepEqual(aData(decode(await udpAsk(port, query('web')))), ['127.0.1.2']);
});

test('a dnsrr answer too big for UDP is cut with TC set; over TCP it is whole', async () => {
  const { port } = await startServer([], 2000, loView(['127.0.1.11'], 60));
  const raw = await udpAsk(port, query('many'));
  assert.ok(raw && raw.length <= 512, `${raw?.length} bytes over UDP`);
  const u = decode(raw);
  assert.equal(u.flag_tc, true);
  assert.ok(u.answers!.length > 0 && u.answers!.length < 60, `${u.answers!.length} answers over UDP`);
  const eraw = await udpAsk(port, query('many', 'A', true));
  assert.ok(eraw && eraw.length <= 1232 && eraw.length > 1150, `${eraw?.length} bytes over UDP with EDNS`);
  const e = decode(eraw);
  assert.ok(e.answers!.length > u.answers!.length, 'EDNS allows more');
  const t = decode(await tcpAsk(port, query('many')));
  assert.equal(t.flag_tc, false);
  assert.equal(t.answers!.length, 60);
});

test('other names are forwarded to the upstream servers, over UDP and TCP, the reply passed back as it came', async () => {
  const up = await fakeUpstream('example.test', '192.0.2.7');
  const { port } = await startServer([up]);
  const q = query('example.test');
  const r = decode(await udpAsk(port, q));
  assert.equal(r.id, packet.decode(q).id);
  assert.deepEqual(aData(r), ['192.0.2.7']);
  assert.equal(r.answers?.[0]?.type === 'A' && r.answers[0].ttl, 30);
  assert.deepEqual(aData(decode(await tcpAsk(port, query('example.test')))), ['192.0.2.7']);
  assert.equal(decode(await udpAsk(port, query('nothing.test'))).rcode, 'NXDOMAIN');
  // A name of another network than the asker's goes upstream too.
  assert.equal(decode(await udpAsk(port, query('web'), '127.0.2.5')).rcode, 'NXDOMAIN');
});

test('forwarding is bounded: a silent upstream gives SERVFAIL after the timeout; a silent first server does not hide a second', async () => {
  const silent = await fakeUpstream('example.test', '192.0.2.7', true);
  const { port } = await startServer([silent], 400);
  const t0 = Date.now();
  assert.equal(decode(await udpAsk(port, query('example.test'))).rcode, 'SERVFAIL');
  const took = Date.now() - t0;
  assert.ok(took >= 350 && took < 2000, `SERVFAIL after ${took} ms`);
  assert.equal(decode(await tcpAsk(port, query('example.test'))).rcode, 'SERVFAIL');

  const good = await fakeUpstream('example.test', '192.0.2.8');
  const two = await startServer([silent, good], 1000);
  assert.deepEqual(aData(decode(await udpAsk(two.port, query('example.test')))), ['192.0.2.8']);
  assert.ok(silent.asked() >= 3, 'the first server was asked');

  // A refused port (nothing listens): the next server is asked at once.
  const closed = dgram.createSocket('udp4');
  await new Promise<void>((ok) => closed.bind({ address: '127.0.0.1', port: 0 }, () => ok()));
  const deadPort = closed.address().port;
  await new Promise<void>((ok) => closed.close(() => ok()));
  const three = await startServer([{ addr: '127.0.0.1', port: deadPort }, good], 3000);
  const t1 = Date.now();
  assert.deepEqual(aData(decode(await udpAsk(three.port, query('example.test')))), ['192.0.2.8']);
  assert.ok(Date.now() - t1 < 1000, `answered in ${Date.now() - t1} ms`);
});

test('close stops answering; update after close does nothing', async () => {
  const { server, port } = await startServer();
  await server.close();
  assert.equal(await udpAsk(port, query('web'), ASKER, 300), undefined);
  await server.update(loView());
  assert.equal(server.port, undefined);
});

test('many forwards at once: all answered, no listener warning', async () => {
  const up = await fakeUpstream('example.test', '192.0.2.7');
  const { port } = await startServer([up]);
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.message);
  process.on('warning', onWarning);
  try {
    const replies = await Promise.all(Array.from({ length: 60 }, () => udpAsk(port, query('example.test'))));
    assert.equal(replies.filter((r) => r && aData(decode(r))[0] === '192.0.2.7').length, 60);
  } finally {
    process.off('warning', onWarning);
  }
  assert.deepEqual(warnings, []);
});

test('a container on an --internal network only: swarm names answer, other names SERVFAIL at once without asking upstream', async () => {
  const up = await fakeUpstream('example.com', '93.184.216.34');
  const view = loView();
  view.Networks[0]!.Internal = true;
  const { port } = await startServer([up], 2000, view);
  assert.deepEqual(aData(decode(await udpAsk(port, query('web')))), ['127.0.1.2']);
  const started = Date.now();
  const r = decode(await udpAsk(port, query('example.com')));
  assert.equal(r.rcode, 'SERVFAIL');
  assert.equal(decode(await tcpAsk(port, query('example.com'))).rcode, 'SERVFAIL');
  assert.ok(Date.now() - started < 1500, 'answered at once');
  assert.equal(up.asked(), 0);
  // An asker outside the internal network still gets its names forwarded.
  assert.deepEqual(aData(decode(await udpAsk(port, query('example.com'), '127.0.2.9'))), ['93.184.216.34']);
});
