import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import * as packet from 'dns-packet';
import { answerReply, parseQuery } from '../../../../../src/agent/network/dns/message';
import { buildRecords } from '../../../../../src/agent/network/dns/records';
import { resolve } from '../../../../../src/agent/network/dns/resolver';
import { sampleView } from './fixtures';

const valid = packet.encode({ type: 'query', id: 42, flags: packet.RECURSION_DESIRED, questions: [{ type: 'A', name: 'tasks.web', class: 'IN' }] });
const records = buildRecords(sampleView());

// Whatever comes in: a parse result or a reply that decodes, never a throw;
// and every parsed query can be answered.
function check(buf: Buffer): void {
  const p = parseQuery(buf);
  if (!p.ok) {
    if (p.reply) assert.equal(packet.decode(p.reply).id, buf.readUInt16BE(0));
    return;
  }
  const r = resolve(records, '10.0.1.11', p.query.question);
  if (r.kind !== 'forward' && r.kind !== 'refuse') packet.decode(answerReply(p.query, r, 1, p.query.udpSize));
}

test('random bytes never throw', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => check(Buffer.from(bytes))), { numRuns: 2000 });
});

test('a valid query with bytes flipped never throws', () => {
  fc.assert(fc.property(fc.array(fc.tuple(fc.nat(valid.length - 1), fc.nat(255)), { minLength: 1, maxLength: 6 }), (edits) => {
    const b = Buffer.from(valid);
    for (const [i, v] of edits) b[i] = v;
    check(b);
  }), { numRuns: 2000 });
});

test('the reply echoes ID, question and RD; RA and AA set', () => {
  const p = parseQuery(valid);
  assert.ok(p.ok);
  const r = resolve(records, '10.0.1.11', p.query.question);
  assert.equal(r.kind, 'a');
  if (r.kind !== 'a') return;
  const d = packet.decode(answerReply(p.query, r, 1)) as packet.DecodedPacket & { rcode: string };
  assert.equal(d.id, 42);
  assert.deepEqual(d.questions, [{ name: 'tasks.web', type: 'A', class: 'IN' }]);
  assert.equal(d.flag_rd && d.flag_ra && d.flag_aa && d.flag_qr, true);
  assert.equal(d.answers?.length, 2);
});
