import dgram from 'node:dgram';
import { setMaxListeners } from 'node:events';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import type { Logger } from '../../../common/log';
import { SHOAL_DNS_ADDR, type NodeNetworkView } from '../../../protocol/network-view';
import { ensureDummyLink, removeDummyLink } from './dummy-link';
import { answerReply, failReply, parseQuery, RCODE } from './message';
import { buildRecords, EMPTY_RECORDS, type DnsRecords } from './records';
import { resolve } from './resolver';
import { forward, parseResolvConf, type Upstream } from './upstream';

// Shoal's DNS server on one node: task containers get SHOAL_DNS_ADDR as their
// only --dns, so Docker's embedded resolver (127.0.0.11) sends it every name
// it does not know itself, from the container's own address; this server
// answers the swarm's names for that container's networks from the current
// view and forwards the rest to the host's servers.
//
// It starts with the first view (the sockets, the dummy link), so a node
// without swarm networks pays nothing.

// One second: a client that caches answers (a JVM, nginx's `resolver`, a
// caching stub) is at most one second behind a task's removal, yet a burst of
// connections shares one look-up. Docker's own 600 s is moby#28836.
export const DNS_TTL_S = 1;
export const FORWARD_TIMEOUT_MS = 2_000;
export const DNS_LINK = 'shoal-dns';
const MAX_FORWARDS = 256;             // forwarded queries in flight; beyond, SERVFAIL at once
const MAX_TCP_CONNS = 128;
const TCP_IDLE_MS = 10_000;

export interface DnsServerOptions {
  nodeId: string;
  nodeAddr?: string;
  log: Logger;
  addr?: string;                 // SHOAL_DNS_ADDR
  port?: number;                 // 53; 0 picks one (tests)
  link?: string | null;          // the dummy link to put `addr` on; null: `addr` is already local (tests)
  upstreams?: Upstream[];        // fixed upstream servers; default: from resolvConf
  resolvConf?: string;           // /etc/resolv.conf
  forwardTimeoutMs?: number;
  rand?: () => number;
}

export class DnsServer {
  readonly name = 'dns';
  private readonly log: Logger;
  private readonly addr: string;
  private readonly link: string | null;
  private readonly forwardTimeoutMs: number;
  private readonly rand: () => number;
  private records: DnsRecords = EMPTY_RECORDS;
  private upstreams: Upstream[] = [];
  private udp: dgram.Socket | undefined;
  private tcp: net.Server | undefined;
  private readonly conns = new Set<net.Socket>();
  private starting: Promise<void> | undefined;
  private listening = false;
  private linkMade = false;
  private closed = false;
  private forwards = 0;
  private readonly abort = new AbortController();

  constructor(private readonly opts: DnsServerOptions) {
    this.log = opts.log.child({ part: 'dns' });
    this.addr = opts.addr ?? SHOAL_DNS_ADDR;
    this.link = opts.link === undefined ? DNS_LINK : opts.link;
    this.forwardTimeoutMs = opts.forwardTimeoutMs ?? FORWARD_TIMEOUT_MS;
    this.rand = opts.rand ?? Math.random;
    // Each forward in flight listens for the close.
    setMaxListeners(MAX_FORWARDS + 1, this.abort.signal);
  }

  // The port it listens on (known once a first update has started it).
  get port(): number | undefined {
    const a = this.udp?.address();
    return a && this.listening ? a.port : undefined;
  }

  // The whole desired state each time; never throws. The new names replace
  // the old ones in one assignment, between two queries.
  async update(view: NodeNetworkView): Promise<void> {
    if (this.closed) return;
    try {
      this.records = buildRecords(view);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'dns: view not usable, keeping the previous names');
    }
    this.upstreams = await this.readUpstreams();
    if (!this.listening && !this.closed) {
      this.starting ??= this.start().finally(() => { this.starting = undefined; });
      await this.starting;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.abort.abort();
    await this.starting;
    await this.stopSockets();
    if (this.link && this.linkMade) {
      const err = await removeDummyLink(this.link);
      if (err) this.log.warn({ err: err.message }, 'dns: link not removed');
    }
    this.listening = false;
  }

  private async readUpstreams(): Promise<Upstream[]> {
    if (this.opts.upstreams) return this.opts.upstreams;
    const exclude = [this.addr];
    for (const path of [this.opts.resolvConf ?? '/etc/resolv.conf', '/run/systemd/resolve/resolv.conf']) {
      // A loopback stub (systemd-resolved's 127.0.0.53) is skipped: its real
      // servers are in systemd's own file, as Docker reads them.
      const text = await readFile(path, 'utf8').catch(() => '');
      const ups = parseResolvConf(text, exclude);
      if (ups.length > 0) return ups;
    }
    return [];
  }

  // A failure is logged and tried again at the next update.
  private async start(): Promise<void> {
    if (this.link) {
      const err = await ensureDummyLink(this.link, this.addr);
      if (err) {
        this.log.warn({ err: err.message }, 'dns: cannot make the server address; retrying at the next view');
        return;
      }
      this.linkMade = true;
    }
    if (this.closed) return;
    try {
      await this.listen();
      this.listening = true;
      this.log.info({ addr: this.addr, port: this.port, upstreams: this.upstreams.map((u) => u.addr) }, 'dns: listening');
    } catch (err) {
      await this.stopSockets();
      this.log.warn({ err: (err as Error).message }, 'dns: cannot listen; retrying at the next view');
    }
  }

  private async listen(): Promise<void> {
    const udp = dgram.createSocket('udp4');
    this.udp = udp;
    await new Promise<void>((ok, fail) => {
      udp.once('error', fail);
      udp.bind({ address: this.addr, port: this.opts.port ?? 53, exclusive: true }, () => { udp.off('error', fail); ok(); });
    });
    udp.on('error', (err) => this.log.warn({ err: err.message }, 'dns: udp socket error'));
    udp.on('message', (msg, rinfo) => {
      void this.handle(msg, rinfo.address, false).then((reply) => {
        if (reply && !this.closed) udp.send(reply, rinfo.port, rinfo.address, () => { /* a lost reply is a client retry */ });
      });
    });

    const tcp = net.createServer((conn) => this.serveTcp(conn));
    this.tcp = tcp;
    tcp.maxConnections = MAX_TCP_CONNS;
    await new Promise<void>((ok, fail) => {
      tcp.once('error', fail);
      // The same port as UDP (it may have been picked by the kernel).
      tcp.listen({ host: this.addr, port: udp.address().port, exclusive: true }, () => { tcp.off('error', fail); ok(); });
    });
    tcp.on('error', (err) => this.log.warn({ err: err.message }, 'dns: tcp server error'));
  }

  private async stopSockets(): Promise<void> {
    const udp = this.udp;
    const tcp = this.tcp;
    this.udp = undefined;
    this.tcp = undefined;
    if (udp) await new Promise<void>((ok) => { try { udp.close(() => ok()); } catch { ok(); } });
    for (const c of this.conns) c.destroy();
    this.conns.clear();
    if (tcp) await new Promise<void>((ok) => tcp.close(() => ok()));
  }

  // DNS over TCP: each message behind a two-byte length; several per
  // connection, answered as they are ready.
  private serveTcp(conn: net.Socket): void {
    this.conns.add(conn);
    conn.setTimeout(TCP_IDLE_MS, () => conn.destroy());
    conn.on('close', () => this.conns.delete(conn));
    conn.on('error', () => conn.destroy());
    let buf = Buffer.alloc(0);
    conn.on('data', (chunk) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      while (buf.length >= 2) {
        const n = buf.readUInt16BE(0);
        if (buf.length < 2 + n) break;
        const msg = Buffer.from(buf.subarray(2, 2 + n));
        buf = buf.subarray(2 + n);
        void this.handle(msg, conn.remoteAddress ?? '', true).then((reply) => {
          if (!reply || conn.destroyed) return;
          const len = Buffer.alloc(2);
          len.writeUInt16BE(reply.length);
          conn.write(Buffer.concat([len, reply]));
        });
      }
    });
  }

  // One message in, the reply out (undefined: none). Never rejects.
  private async handle(msg: Buffer, from: string, tcp: boolean): Promise<Buffer | undefined> {
    try {
      const parsed = parseQuery(msg);
      if (!parsed.ok) return parsed.reply;
      const q = parsed.query;
      const asker = from.replace(/^::ffff:/i, '');
      const res = resolve(this.records, asker, q.question, this.rand);
      if (res.kind === 'refuse') return failReply(q, RCODE.SERVFAIL);
      if (res.kind !== 'forward') return answerReply(q, res, DNS_TTL_S, tcp ? undefined : q.udpSize);
      if (this.forwards >= MAX_FORWARDS) return failReply(q, RCODE.SERVFAIL);
      this.forwards++;
      try {
        const reply = await forward(msg, this.upstreams, { tcp, timeoutMs: this.forwardTimeoutMs, signal: this.abort.signal });
        if (!reply) this.log.debug({ name: q.question.name, upstreams: this.upstreams.length }, 'dns: no upstream answer');
        return reply ?? failReply(q, RCODE.SERVFAIL);
      } finally {
        this.forwards--;
      }
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'dns: query failed');
      return undefined;
    }
  }
}
