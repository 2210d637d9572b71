import dgram from 'node:dgram';
import { isIP } from 'node:net';
import net from 'node:net';

// Names that are not the swarm's go to the host's own DNS servers, as the
// raw query (the asker's ID, flags and EDNS kept) and back as the raw reply.

export interface Upstream { addr: string; port: number }

export const MAX_UPSTREAMS = 3;          // as Docker's embedded resolver (maxExtDNS)

// The `nameserver` lines of a resolv.conf, in order, at most three, without
// loopback servers (they answer in the host's namespace, not for the asker,
// and may be a stub that would send the name back to us) and without our
// own address.
export function parseResolvConf(text: string, exclude: string[] = []): Upstream[] {
  const out: Upstream[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (!m) continue;
    const addr = m[1]!.replace(/%.*$/, '');   // an IPv6 zone is not ours to route
    if (!isIP(addr)) continue;
    if (/^127\./.test(addr) || addr === '::1' || exclude.includes(addr)) continue;
    if (out.some((u) => u.addr === addr)) continue;
    out.push({ addr, port: 53 });
    if (out.length === MAX_UPSTREAMS) break;
  }
  return out;
}

export interface ForwardOptions {
  tcp: boolean;          // how the asker came: TCP queries go upstream over TCP
  timeoutMs: number;     // the whole forward, every server included
  signal?: AbortSignal;  // the server closing
}

// Sends `query` to the servers, one after the other, each started when the
// one before has failed or had its share of the time (so a dead first server
// costs a third of the budget, not all of it); the first useful reply wins
// and the others are dropped. undefined: no server answered in time.
// SERVFAIL and REFUSED count as no answer while other servers may still give one.
export function forward(query: Buffer, upstreams: Upstream[], opts: ForwardOptions): Promise<Buffer | undefined> {
  if (upstreams.length === 0 || query.length < 12) return Promise.resolve(undefined);
  const id = query.readUInt16BE(0);
  const share = opts.timeoutMs / upstreams.length;
  return new Promise((resolve) => {
    const attempts: Array<() => void> = [];   // cancel functions
    const timers: NodeJS.Timeout[] = [];
    let next = 0;
    let pending = 0;
    let fallback: Buffer | undefined;
    let done = false;
    const finish = (reply: Buffer | undefined): void => {
      if (done) return;
      done = true;
      for (const t of timers) clearTimeout(t);
      for (const cancel of attempts) cancel();
      opts.signal?.removeEventListener('abort', onAbort);
      resolve(reply);
    };
    const onAbort = (): void => finish(undefined);
    const startNext = (): void => {
      if (done || next >= upstreams.length) return;
      const u = upstreams[next++]!;
      pending++;
      const attempt = opts.tcp ? askTcp : askUdp;
      attempts.push(attempt(u, query, id, (reply) => {
        pending--;
        if (done) return;
        if (reply && !failed(reply)) return finish(reply);
        if (reply) fallback = reply;
        if (next < upstreams.length) startNext();
        else if (pending === 0) finish(fallback);
      }));
      if (next < upstreams.length) timers.push(setTimeout(startNext, share));
    };
    if (opts.signal?.aborted) return finish(undefined);
    opts.signal?.addEventListener('abort', onAbort);
    timers.push(setTimeout(() => finish(fallback), opts.timeoutMs));
    startNext();
  });
}

function failed(reply: Buffer): boolean {
  const rcode = reply[3]! & 0xf;
  return rcode === 2 || rcode === 5;   // SERVFAIL, REFUSED
}

// One UDP exchange on a socket of its own (a fresh source port per query, and
// connected, so only the server's reply comes in and an ICMP refusal ends it
// at once). Calls back once: the reply, or undefined on error.
function askUdp(u: Upstream, query: Buffer, id: number, cb: (reply: Buffer | undefined) => void): () => void {
  const sock = dgram.createSocket(isIP(u.addr) === 6 ? 'udp6' : 'udp4');
  let called = false;
  const end = (reply: Buffer | undefined): void => {
    if (called) return;
    called = true;
    try { sock.close(); } catch { /* already closed */ }
    cb(reply);
  };
  sock.on('error', () => end(undefined));
  sock.on('message', (msg) => {
    // A reply to another query (a late one for an earlier ID) is not ours.
    if (msg.length >= 12 && msg.readUInt16BE(0) === id && (msg[2]! & 0x80) !== 0) end(msg);
  });
  sock.connect(u.port, u.addr, () => {
    // Ended meanwhile (time-out, error): the socket is closed, and dgram would
    // read the callback as a port and throw outside any handler.
    if (called) return;
    try {
      sock.send(query, (err) => { if (err) end(undefined); });
    } catch {
      end(undefined);
    }
  });
  return () => end(undefined);
}

// One TCP exchange: a two-byte length, then the message, both ways.
function askTcp(u: Upstream, query: Buffer, id: number, cb: (reply: Buffer | undefined) => void): () => void {
  const sock = net.connect({ host: u.addr, port: u.port });
  let called = false;
  let buf = Buffer.alloc(0);
  const end = (reply: Buffer | undefined): void => {
    if (called) return;
    called = true;
    sock.destroy();
    cb(reply);
  };
  sock.on('error', () => end(undefined));
  sock.on('close', () => end(undefined));
  sock.on('connect', () => {
    const len = Buffer.alloc(2);
    len.writeUInt16BE(query.length);
    sock.write(Buffer.concat([len, query]));
  });
  sock.on('data', (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    if (buf.length < 2) return;
    const n = buf.readUInt16BE(0);
    if (buf.length < 2 + n) return;
    const msg = buf.subarray(2, 2 + n);
    end(msg.length >= 12 && msg.readUInt16BE(0) === id ? msg : undefined);
  });
  return () => end(undefined);
}
