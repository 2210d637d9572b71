// Runs inside a namespace of the load-balancer lab (lb-netns.ts), started with
// `nsenter --net=...`; prints one JSON value (servers print "ready").
//   serve NAME PORT [SINK_PORT]   tcp and udp on PORT answer "NAME CLIENT_ADDRESS";
//                                 tcp on SINK_PORT reads to the end and answers the byte count
//   probe tcp|udp HOST PORT COUNT [SOURCE_PORT]
//                                 COUNT sequential requests, each bounded: the answers
//                                 ("NAME ADDRESS" or "error:CODE"); with SOURCE_PORT (udp)
//                                 every request leaves from that port (one conntrack flow)
//   latency HOST PORT COUNT       COUNT sequential connect-and-answer round trips: ms each
//   throughput HOST PORT BYTES    one connection sending BYTES: { bytes, seconds }
import { createServer, connect } from 'node:net';
import { createSocket } from 'node:dgram';

const REQUEST_TIMEOUT_MS = 2_000;
const THROUGHPUT_TIMEOUT_MS = 60_000;
const MAX_LIFETIME_MS = 15 * 60_000; // a server never outlives a lost test by long

function serve(name: string, port: number, sinkPort: number): void {
  const tcp = createServer((s) => { s.on('error', () => undefined); s.end(`${name} ${s.remoteAddress?.replace(/^::ffff:/, '')}\n`); });
  const udp = createSocket('udp4');
  udp.on('message', (_m, r) => udp.send(`${name} ${r.address}\n`, r.port, r.address));
  const sink = createServer((s) => {
    let n = 0;
    s.on('error', () => undefined);
    s.on('data', (d: Buffer) => { n += d.length; });
    s.on('end', () => s.end(`${n}\n`));
  });
  let ready = 0;
  const want = sinkPort ? 3 : 2;
  const up = (): void => { if (++ready === want) process.stdout.write('ready\n'); };
  tcp.listen(port, '0.0.0.0', up);
  udp.bind(port, '0.0.0.0', up);
  if (sinkPort) sink.listen(sinkPort, '0.0.0.0', up);
  setTimeout(() => process.exit(0), MAX_LIFETIME_MS).unref();
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
}

function tcpOnce(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    let data = '';
    const s = connect({ host, port });
    const timer = setTimeout(() => { s.destroy(); resolve('error:TIMEOUT'); }, REQUEST_TIMEOUT_MS);
    s.setEncoding('utf8').on('data', (d: string) => { data += d; });
    s.on('end', () => { clearTimeout(timer); resolve(data.trim()); });
    s.on('error', (e: NodeJS.ErrnoException) => { clearTimeout(timer); resolve(`error:${e.code ?? e.message}`); });
  });
}

function udpOnce(host: string, port: number, sourcePort: number): Promise<string> {
  return new Promise((resolve) => {
    const s = createSocket({ type: 'udp4', reuseAddr: true });
    const done = (v: string): void => { clearTimeout(timer); try { s.close(); } catch { /* closed */ } resolve(v); };
    const timer = setTimeout(() => done('error:TIMEOUT'), REQUEST_TIMEOUT_MS);
    s.on('message', (m) => done(m.toString().trim()));
    s.on('error', (e: NodeJS.ErrnoException) => done(`error:${e.code ?? e.message}`));
    s.bind(sourcePort, () => s.send('?', port, host));
  });
}

async function probe(proto: string, host: string, port: number, count: number, sourcePort: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < count; i++) out.push(proto === 'udp' ? await udpOnce(host, port, sourcePort) : await tcpOnce(host, port));
  return out;
}

async function latency(host: string, port: number, count: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = process.hrtime.bigint();
    const a = await tcpOnce(host, port);
    if (a.startsWith('error:')) throw new Error(`${host}:${port}: ${a}`);
    out.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return out;
}

function throughput(host: string, port: number, bytes: number): Promise<{ bytes: number; seconds: number }> {
  return new Promise((resolve, reject) => {
    const chunk = Buffer.alloc(256 * 1024, 0x61);
    let sent = 0;
    let answer = '';
    const t0 = process.hrtime.bigint();
    const s = connect({ host, port });
    const timer = setTimeout(() => { s.destroy(); reject(new Error('throughput: no end within 60 s')); }, THROUGHPUT_TIMEOUT_MS);
    const pump = (): void => {
      while (sent < bytes) {
        const n = Math.min(chunk.length, bytes - sent);
        sent += n;
        if (!s.write(n === chunk.length ? chunk : chunk.subarray(0, n))) { s.once('drain', pump); return; }
      }
      s.end();
    };
    s.on('connect', pump);
    s.setEncoding('utf8').on('data', (d: string) => { answer += d; });
    s.on('end', () => {
      clearTimeout(timer);
      const got = Number(answer.trim());
      if (got !== bytes) reject(new Error(`throughput: the server got ${answer.trim()} of ${bytes} bytes`));
      else resolve({ bytes, seconds: Number(process.hrtime.bigint() - t0) / 1e9 });
    });
    s.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

async function main(): Promise<void> {
  const [mode, ...a] = process.argv.slice(2);
  const out = (v: unknown): void => { process.stdout.write(`${JSON.stringify(v)}\n`); };
  if (mode === 'serve') serve(a[0]!, Number(a[1]), Number(a[2] ?? 0));
  else if (mode === 'probe') out(await probe(a[0]!, a[1]!, Number(a[2]), Number(a[3]), Number(a[4] ?? 0)));
  else if (mode === 'latency') out(await latency(a[0]!, Number(a[1]), Number(a[2])));
  else if (mode === 'throughput') out(await throughput(a[0]!, Number(a[1]), Number(a[2])));
  else { process.stderr.write('usage: serve | probe | latency | throughput (see the file)\n'); process.exit(2); }
}

main().catch((err: unknown) => { process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`); process.exit(1); });
