// Runs inside a test network namespace (started with `nsenter --net=...`):
//   serve NAME PORT               a tcp and udp server that answers "NAME CLIENT_ADDRESS"
//   probe tcp|udp HOST PORT COUNT [SOURCE_PORT]
//                                 COUNT sequential requests, each bounded; prints a JSON
//                                 array of answers ("NAME ADDRESS" or "error:CODE").
//                                 With SOURCE_PORT (udp), every request leaves from that port.
import { createServer, connect } from 'node:net';
import { createSocket } from 'node:dgram';

const REQUEST_TIMEOUT_MS = 2_000;
const MAX_LIFETIME_MS = 10 * 60_000; // a server never outlives a lost test by long

function serve(name: string, port: number): void {
  const tcp = createServer((s) => { s.on('error', () => undefined); s.end(`${name} ${s.remoteAddress?.replace(/^::ffff:/, '')}\n`); });
  const udp = createSocket('udp4');
  udp.on('message', (_m, r) => udp.send(`${name} ${r.address}\n`, r.port, r.address));
  let ready = 0;
  const up = (): void => { if (++ready === 2) process.stdout.write('ready\n'); };
  tcp.listen(port, '0.0.0.0', up);
  udp.bind(port, '0.0.0.0', up);
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

async function probe(proto: string, host: string, port: number, count: number, sourcePort: number): Promise<void> {
  const out: string[] = [];
  for (let i = 0; i < count; i++) out.push(proto === 'udp' ? await udpOnce(host, port, sourcePort) : await tcpOnce(host, port));
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

const [mode, ...a] = process.argv.slice(2);
if (mode === 'serve') serve(a[0]!, Number(a[1]));
else if (mode === 'probe') void probe(a[0]!, a[1]!, Number(a[2]), Number(a[3]), Number(a[4] ?? 0));
else { process.stderr.write('usage: serve NAME PORT | probe tcp|udp HOST PORT COUNT [SOURCE_PORT]\n'); process.exit(2); }
