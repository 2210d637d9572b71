import type * as Packet from 'dns-packet';
import type { DnsQuestion, Resolution } from './resolver';

// DNS messages in and out (RFC 1035 through dns-packet): a query checked where
// it enters, answers built from a resolution, and the header-only replies for
// what cannot be answered.

// The codec (about 1 MB of RSS) is loaded by the first query, not when the
// agent loads: a worker without swarm networks never pays for it.
let codec: typeof Packet | undefined;
const packet = (): typeof Packet => (codec ??= require('dns-packet') as typeof Packet);

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;

// Classic DNS over UDP: 512 bytes unless the asker's EDNS says more; we never
// go above 1232 (the size that avoids IP fragmentation, DNS flag day 2020).
const UDP_PLAIN = 512;
const UDP_MAX = 1232;

export interface Query {
  id: number;
  rd: boolean;
  question: DnsQuestion;
  edns: boolean;
  udpSize: number;          // the largest UDP reply the asker takes
}

// A query, or why not: `reply` is what to send back (FORMERR, NOTIMP), none
// for what gets no answer at all (too short to reply to, or a response).
export type Parsed = { ok: true; query: Query } | { ok: false; reply?: Buffer };

export function parseQuery(buf: Buffer): Parsed {
  if (buf.length < 12) return { ok: false };
  if ((buf[2]! & 0x80) !== 0) return { ok: false };          // QR set: a response, never answer it (no loops)
  const opcode = (buf[2]! >> 3) & 0xf;
  if (opcode !== 0) return { ok: false, reply: headerReply(buf, RCODE.NOTIMP) };
  let decoded: Packet.DecodedPacket;
  try {
    decoded = packet().decode(buf);
  } catch {
    return { ok: false, reply: headerReply(buf, RCODE.FORMERR) };
  }
  const qs = decoded.questions ?? [];
  const q = qs[0];
  if (qs.length !== 1 || !q || typeof q.name !== 'string') return { ok: false, reply: headerReply(buf, RCODE.FORMERR) };
  const opt = (decoded.additionals ?? []).find((a): a is Packet.OptAnswer => a.type === 'OPT');
  const udpSize = opt ? Math.min(UDP_MAX, Math.max(UDP_PLAIN, opt.udpPayloadSize || 0)) : UDP_PLAIN;
  return {
    ok: true,
    query: {
      id: decoded.id ?? 0,
      rd: decoded.flag_rd,
      question: { name: q.name, type: String(q.type), class: q.class === undefined ? undefined : String(q.class) },
      edns: opt !== undefined,
      udpSize,
    },
  };
}

// The reply to a query we answer ourselves. maxSize: the UDP limit (none over
// TCP); answers that do not fit are left out and TC set, so the asker retries
// over TCP.
export function answerReply(query: Query, res: Exclude<Resolution, { kind: 'forward' | 'refuse' }>, ttl: number, maxSize?: number): Buffer {
  const dns = packet();
  const name = query.question.name;
  const answers: Packet.Answer[] =
    res.kind === 'a' ? res.addrs.map((data) => ({ type: 'A' as const, name, ttl, class: 'IN' as const, data }))
      : res.kind === 'ptr' ? [{ type: 'PTR', name, ttl, class: 'IN', data: res.name }]
        : [];
  const p: Packet.Packet = {
    type: 'response',
    id: query.id,
    // Authoritative for the swarm's names; recursion is offered (we forward).
    flags: dns.AUTHORITATIVE_ANSWER | dns.RECURSION_AVAILABLE | (query.rd ? dns.RECURSION_DESIRED : 0),
    questions: [questionOf(query)],
    answers,
    additionals: query.edns ? [{ type: 'OPT', name: '.', udpPayloadSize: UDP_MAX, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }] : [],
  };
  if (maxSize !== undefined && answers.length > 0 && dns.encodingLength(p) > maxSize) {
    // Every answer has the same size (the same name, one address; the codec
    // does not compress names): keep as many as fit.
    const full = dns.encodingLength(p);
    const each = (full - dns.encodingLength({ ...p, answers: [] })) / answers.length;
    answers.length = Math.max(0, Math.floor(answers.length - (full - maxSize) / each));
    p.flags = (p.flags ?? 0) | dns.TRUNCATED_RESPONSE;
  }
  return dns.encode(p);
}

// SERVFAIL (or another code) for a well-formed query, question echoed.
export function failReply(query: Query, rcode: number): Buffer {
  const dns = packet();
  return dns.encode({
    type: 'response',
    id: query.id,
    flags: dns.RECURSION_AVAILABLE | (query.rd ? dns.RECURSION_DESIRED : 0) | rcode,
    questions: [questionOf(query)],
  });
}

function questionOf(query: Query): Packet.Question {
  const q = query.question;
  return { name: q.name, type: q.type as Packet.RecordType, class: (q.class ?? 'IN') as Packet.RecordClass };
}

// A reply made of the query's header alone (for queries we could not decode):
// its ID, opcode and RD, QR and RA set, no records.
function headerReply(query: Buffer, rcode: number): Buffer {
  const b = Buffer.alloc(12);
  query.copy(b, 0, 0, 2);
  b[2] = 0x80 | (query[2]! & 0x79);   // QR, the query's opcode and RD
  b[3] = 0x80 | rcode;                // RA, rcode
  return b;
}
