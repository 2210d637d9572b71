import * as http from 'node:http';
import * as https from 'node:https';
import { parentPort, workerData } from 'node:worker_threads';
import { BEAT, CONFIRMED, GENS, type KeeperData, type KeeperMessage } from './lease-keeper';

// The lease keeper's thread (lease-keeper.ts says why): every `renewMs`, one
// keep-alive of the current lease through etcd's JSON gateway (https, or
// http for a plain etcd), while the
// daemon's loop has beaten within `maxStallMs`. At most MAX_IN_FLIGHT at once,
// each bounded by `timeoutMs`.
const MAX_IN_FLIGHT = 4;
const MAX_BODY = 64 * 1024;

const d = workerData as KeeperData;
const shared = new BigInt64Array(d.shared);
const url = new URL('/v3/lease/keepalive', d.url);
const tls = url.protocol === 'https:';
const pem = (b: Uint8Array | undefined): Buffer | undefined => (b ? Buffer.from(b) : undefined);
const agent = tls
  ? new https.Agent({ keepAlive: true, maxSockets: MAX_IN_FLIGHT, ca: pem(d.ca), cert: pem(d.cert), key: pem(d.key) })
  : new http.Agent({ keepAlive: true, maxSockets: MAX_IN_FLIGHT });
const request = tls ? https.request : http.request;
let lease: string | undefined;
let gen = 0;
let inFlight = 0;

parentPort?.on('message', (m: KeeperMessage) => { gen = m.gen; lease = m.lease; });

// Whether etcd renewed the lease: its answer carries the new TTL, none when
// the lease is gone. Never rejects.
function keepAlive(id: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { if (body.length < MAX_BODY) body += c; });
      res.on('end', () => resolve(res.statusCode === 200 && ttlOf(body) > 0));
      res.on('error', () => resolve(false));
    });
    const timer = setTimeout(() => req.destroy(new Error('timed out')), d.timeoutMs);
    req.on('close', () => clearTimeout(timer));
    req.on('error', () => resolve(false));
    req.end(JSON.stringify({ ID: id }));
  });
}

function ttlOf(body: string): number {
  try {
    const r = (JSON.parse(body.split('\n', 1)[0]!) as { result?: { TTL?: unknown } }).result;
    return Number(r?.TTL ?? 0) || 0;
  } catch {
    return 0;
  }
}

setInterval(() => {
  const id = lease;
  if (!id || inFlight >= MAX_IN_FLIGHT) return;
  const sent = Date.now();
  if (sent - Number(Atomics.load(shared, BEAT)) > d.maxStallMs) return; // stuck, not busy: let the lease go
  const g = gen;
  inFlight++;
  void keepAlive(id).then((ok) => {
    inFlight--;
    if (!ok || g !== gen) return;
    const packed = BigInt(sent) * GENS + BigInt(g);
    if (packed > Atomics.load(shared, CONFIRMED)) Atomics.store(shared, CONFIRMED, packed);
  });
}, d.renewMs);
