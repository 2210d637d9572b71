// Shoal's DNS server alone, on loopback: the memory it adds to a process, how
// long a view takes to become names, and queries per second with latency.
// Bounded: a fixed number of queries, a fixed concurrency, loopback only.
//
//   node dist/bench/dns.js [--services 200] [--tasks 10] [--queries 20000] [--concurrency 32]
import dgram from 'node:dgram';
import { parseArgs } from 'node:util';
import * as packet from 'dns-packet';
import { silentLogger } from '../src/common/log';
import { DnsServer } from '../src/agent/network/dns/server';
import { buildRecords } from '../src/agent/network/dns/records';
import type { NodeNetworkView, ViewEndpoint } from '../src/protocol/network-view';

const { values } = parseArgs({ options: {
  services: { type: 'string', default: '200' }, tasks: { type: 'string', default: '10' },
  queries: { type: 'string', default: '20000' }, concurrency: { type: 'string', default: '32' },
} });
const SERVICES = Number(values.services);
const TASKS = Number(values.tasks);
const QUERIES = Number(values.queries);
const CONCURRENCY = Number(values.concurrency);
const NET = 'net-bench';
const MB = 1024 * 1024;

// One /16 on loopback: service i's VIP 127.1.i.1, its tasks 127.1.i.10+.
function view(): NodeNetworkView {
  const Endpoints: ViewEndpoint[] = [];
  const Services: NodeNetworkView['Services'] = [];
  for (let i = 0; i < SERVICES; i++) {
    const hi = 127 * 256 + 1, a = `${Math.floor(hi / 256)}.${hi % 256}.${i >> 8}.${i & 255}`;
    Services.push({ ID: `s${i}`, Name: `svc${i}`, EndpointMode: 'vip', VIPs: [{ NetworkID: NET, Addr: `127.1.${i % 250}.${1 + Math.floor(i / 250)}` }], Ports: [], Aliases: [], KeepClientIP: false });
    for (let t = 0; t < TASKS; t++) {
      Endpoints.push({ TaskID: `t${i}-${t}`, TaskName: `svc${i}.${t + 1}.t${i}-${t}`, ServiceID: `s${i}`, NodeID: 'n', NodeAddr: '127.0.0.1', NetworkID: NET, Addr: `127.2.${i % 250}.${t + 10}`, Running: true });
    }
    void a;
  }
  return { Networks: [{ ID: NET, Name: 'bench', Subnet: '127.0.0.0/8', Gateway: '127.0.0.1', VNI: 1, Internal: false, Attachable: false, Ingress: false, Encrypted: false, Labels: {} }], Services, Endpoints, LoadBalancers: [] };
}

async function main(): Promise<void> {
  const v = view();
  global.gc?.();
  const rss0 = process.memoryUsage().rss;
  const server = new DnsServer({ nodeId: 'n', nodeAddr: '127.0.0.1', log: silentLogger, addr: '127.0.0.1', port: 0, link: null, upstreams: [] });
  await server.update(v);
  const port = server.port!;
  let t = process.hrtime.bigint();
  const rounds = 20;
  for (let i = 0; i < rounds; i++) buildRecords(v);
  const buildMs = Number(process.hrtime.bigint() - t) / 1e6 / rounds;

  const sock = dgram.createSocket('udp4');
  await new Promise<void>((ok) => sock.bind({ address: '127.0.0.5', port: 0 }, () => ok()));
  const waiting = new Map<number, { start: bigint; done: () => void }>();
  sock.on('message', (msg) => {
    const id = msg.readUInt16BE(0);
    const w = waiting.get(id);
    if (w) { waiting.delete(id); lat.push(Number(process.hrtime.bigint() - w.start) / 1e3); w.done(); }
  });
  const lat: number[] = [];
  let sent = 0;
  let lost = 0;
  const one = (id: number): Promise<void> => new Promise((done) => {
    const name = id % 2 ? `svc${id % SERVICES}` : `tasks.svc${id % SERVICES}`;
    const q = packet.encode({ type: 'query', id, flags: packet.RECURSION_DESIRED, questions: [{ type: 'A', name }] });
    const timer = setTimeout(() => { waiting.delete(id); lost++; done(); }, 2000);
    waiting.set(id, { start: process.hrtime.bigint(), done: () => { clearTimeout(timer); done(); } });
    sock.send(q, port, '127.0.0.1');
  });
  t = process.hrtime.bigint();
  await Promise.all(Array.from({ length: CONCURRENCY }, async (_, w) => {
    while (sent < QUERIES) { void w; const id = sent++ & 0xffff; await one(id); }
  }));
  const secs = Number(process.hrtime.bigint() - t) / 1e9;
  global.gc?.();
  const rss1 = process.memoryUsage().rss;
  lat.sort((a, b) => a - b);
  const pct = (p: number) => lat[Math.min(lat.length - 1, Math.floor(lat.length * p))]!.toFixed(0);
  console.log(JSON.stringify({
    services: SERVICES, tasksPerService: TASKS, endpoints: v.Endpoints.length,
    buildRecordsMs: +buildMs.toFixed(2), queries: QUERIES, concurrency: CONCURRENCY, lost,
    qps: Math.round(QUERIES / secs), p50us: +pct(0.5), p99us: +pct(0.99),
    rssAddedMB: +((rss1 - rss0) / MB).toFixed(1), rssMB: +(rss1 / MB).toFixed(1),
  }));
  sock.close();
  await server.close();
}

void main();
