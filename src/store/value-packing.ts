import { createDeflateRaw, createInflateRaw, deflateRawSync, inflateRawSync } from 'node:zlib';
import { ReusableZlib } from './reusable-zlib';

// Values as etcd holds them. etcd 3.4 keeps its last 5,000 to 7,000 raft
// entries in memory (etcd-process.ts), each a transaction of up to 128 of our
// JSON values: after 150,000 tasks were created, placed and started, that log
// was most of each member's 650 MB. Deflated with a dictionary of Shoal's own
// JSON a task's 441 bytes become 167 (bench/value-packing.ts), and a member
// holds about 380 MB after the same create (docs/SCALE.md). The store above
// never sees a packed value: the etcd backend packs on write and unpacks on read.
//
// A packed value is the byte 0x00, the dictionary's version, then raw deflate.
// JSON never starts with 0x00, and a value that does is packed whatever its
// size, so a stored value starting 0x00 0x01 is always a packed one.

const PACKED = 0x00;
const DICTIONARY_V1 = 0x01;

// Below this the two header bytes and deflate's framing win little.
export const PACK_MIN_BYTES = 96;

// A value inflating past this is refused (a hostile or corrupt value must not
// exhaust memory); etcd itself takes requests of at most 1.5 MiB.
export const MAX_UNPACKED_BYTES = 64 * 1024 * 1024;

// What deflate may refer back to. Never change it: values written with it
// stay in etcd for as long as the swarm lives. A better one gets a new version
// byte, and unpackValue keeps reading this one. The most common text (a
// task's) comes last, where references to it are shortest.
const DICTIONARY_V1_TEXT = [
  '{"Spec":{"Name":"","Labels":{},"TaskTemplate":{"ContainerSpec":{"Image":"","Labels":{},"Command":[],"Args":[],"Env":[],',
  '"Init":false,"StopGracePeriod":10000000000,"DNSConfig":{},"Isolation":"default"},"Resources":{"Limits":{},"Reservations":{}},',
  '"RestartPolicy":{"Condition":"any","Delay":5000000000,"MaxAttempts":0},"Placement":{"Constraints":["node.role==worker"],',
  '"Platforms":[{"Architecture":"amd64","OS":"linux"}]},"Networks":[{"Target":"","Aliases":[]}],"ForceUpdate":0,"Runtime":"container"},',
  '"Mode":{"Replicated":{"Replicas":1}},"UpdateConfig":{"Parallelism":1,"FailureAction":"pause","Monitor":5000000000,',
  '"MaxFailureRatio":0,"Order":"stop-first"},"RollbackConfig":{"Parallelism":1,"FailureAction":"pause","Monitor":5000000000,',
  '"MaxFailureRatio":0,"Order":"stop-first"},"EndpointSpec":{"Mode":"vip","Ports":[{"Protocol":"tcp","TargetPort":80,',
  '"PublishedPort":8080,"PublishMode":"ingress"}]}},"PreviousSpec":{},"Endpoint":{"Spec":{"Mode":"vip"},"VirtualIPs":[{"NetworkID":"","Addr":"10.0.0.2/24"}]},',
  '"UpdateStatus":{"State":"completed","StartedAt":"","CompletedAt":"","Message":"update completed"}}',
  '{"Network":{"ID":"","Spec":{"Name":"ingress","Labels":{},"DriverConfiguration":{"Name":"overlay"},"Ingress":true,"Scope":"swarm",',
  '"IPAMOptions":{"Driver":{"Name":"default"},"Configs":[{"Subnet":"10.0.0.0/24","Gateway":"10.0.0.1"}]}},',
  '"DriverState":{"Name":"overlay","Options":{"com.docker.network.driver.overlay.vxlanid_list":"4096"}}},"Addresses":["10.0.0.3/24"]}',
  '{"ID":"","Spec":{"Labels":{},"Role":"worker","Availability":"active"},"Description":{"Hostname":"",',
  '"Platform":{"Architecture":"x86_64","OS":"linux"},"Resources":{"NanoCPUs":2000000000,"MemoryBytes":8000000000},',
  '"Engine":{"EngineVersion":"","Labels":{},"Plugins":[{"Type":"Log","Name":"json-file"},{"Type":"Network","Name":"overlay"},',
  '{"Type":"Volume","Name":"local"}]},"TLSInfo":{"TrustRoot":"-----BEGIN CERTIFICATE-----\\n","CertIssuerSubject":"",',
  '"CertIssuerPublicKey":""}},"Status":{"State":"ready","Message":"","Addr":"10.0.0.1"},',
  '"ManagerStatus":{"Leader":true,"Reachability":"reachable","Addr":"10.0.0.1:2377"},"Attachments":[]}',
  '"Status":{"Timestamp":"","State":"shutdown","Message":"shutdown","Err":"task: non-zero exit (1)"}',
  '"State":"failed","State":"complete","State":"rejected","State":"orphaned","State":"remove","Message":"finished"',
  '"State":"accepted","Message":"accepted","State":"preparing","Message":"preparing","State":"starting","Message":"starting"',
  '"State":"new","Message":"created","State":"pending","Message":"pending task scheduling"',
  '"State":"assigned","Message":"scheduler assigned task to node"',
  '{"ID":"","CreatedAt":"2026-01-01T00:00:00.000000000Z","UpdatedAt":"2026-01-01T00:00:00.000000000Z","Labels":{},',
  '"ServiceID":"","Slot":1,"NodeID":"","Status":{"Timestamp":"2026-01-01T00:00:00.000000000Z","State":"running",',
  '"Message":"started","ContainerStatus":{"ContainerID":"","PID":1,"ExitCode":0},"PortStatus":{}},',
  '"DesiredState":"running","SpecRef":""}',
].join('');
const DICTIONARY_V1_BYTES = Buffer.from(DICTIONARY_V1_TEXT);

// A copy, for the bench's reference runs.
export const packingDictionary = (): Buffer => Buffer.from(DICTIONARY_V1_BYTES);

// zlib's output buffer, sized to what is expected rather than its default
// 16 KiB a call for values of a few hundred bytes: packing a task takes about
// a fifth less time, unpacking a quarter less (bench/value-packing.ts), and
// the garbage is less. Larger output just takes more chunks.
const chunkFor = (expected: number): number => Math.min(16 * 1024, Math.max(256, expected));

// deflate's state for most values: a 4 KiB window (the dictionary is 2.9 KB)
// and memLevel 4, so each of its buffers is at most 8 KiB. zlib's defaults
// make four of 64 KiB, and the daemon's malloc maps every block of 16 KiB and
// up on its own (common/node-flags.ts): a mapping and fresh pages per buffer
// per value, for the same bytes out (bench/value-packing.ts side by side;
// docs/ARCHITECTURE.md, "The daemon's malloc setting"). Larger values, rare,
// keep the default window, where their repeats may lie further back.
const SMALL_STATE_MAX_BYTES = 4096;
const SMALL_STATE = { windowBits: 12, memLevel: 4 } as const;

// One deflate and one inflate stream kept for the process's small values
// (reusable-zlib.ts): a task packed in about four fifths of the time and
// unpacked in two fifths (bench/value-packing.ts), the same bytes either way;
// a 1,000-node create's leader spent 1.9 s in zlib instead of 3.4 s. A small
// value's deflate output always fits (deflate's worst case is its input plus
// a few bytes per 16 KiB); what inflates past the inflate buffer is inflated
// again by the one-shot call.
const ZLIB_MIN_CHUNK = 64; // the stream's own output buffer, never used here
const smallDeflate = new ReusableZlib(() => createDeflateRaw({ dictionary: DICTIONARY_V1_BYTES, chunkSize: ZLIB_MIN_CHUNK, windowBits: SMALL_STATE.windowBits, memLevel: SMALL_STATE.memLevel }), 2 * SMALL_STATE_MAX_BYTES);
const inflate = new ReusableZlib(() => createInflateRaw({ dictionary: DICTIONARY_V1_BYTES, chunkSize: ZLIB_MIN_CHUNK }), 64 * 1024);

// A packed value: the two header bytes, then `deflated` bytes of `from`.
function framed(from: Buffer, deflated: number): Buffer {
  const out = Buffer.allocUnsafe(deflated + 2);
  out[0] = PACKED;
  out[1] = DICTIONARY_V1;
  from.copy(out, 2, 0, deflated);
  return out;
}

// A small value's text is encoded here, not into a Buffer of its own: Buffer.from
// carves each from an 8 KiB pool and makes a new pool every dozen tasks, 2 %
// of a leader's busy time in a 5,000-node create (bench/scale.ts profile), for
// bytes that zlib reads once. UTF-8 takes at most 3 bytes per UTF-16 unit.
const scratch = Buffer.allocUnsafeSlow(3 * SMALL_STATE_MAX_BYTES);

// The bytes to store for `value`: packed when that is smaller (or when the
// value starts with 0x00, which would read as packed), else the text itself.
export function packValue(value: string): Buffer {
  const inScratch = value.length <= SMALL_STATE_MAX_BYTES;
  const plain = inScratch ? scratch.subarray(0, scratch.write(value)) : Buffer.from(value);
  // What is returned must outlive the next call.
  const asIs = (): Buffer => (inScratch ? Buffer.from(plain) : plain);
  const lead = plain.length > 0 && plain[0] === PACKED;
  if (plain.length < PACK_MIN_BYTES && !lead) return asIs();
  const keep = (deflated: number): boolean => lead || deflated + 2 < plain.length;
  if (plain.length <= SMALL_STATE_MAX_BYTES) {
    const packed = smallDeflate.run(plain, (out, n) => (keep(n) ? framed(out, n) : null)); // null: kept as text
    if (packed) return packed;
    if (packed === null) return asIs();
  }
  const packed = deflateOneShot(plain);
  return keep(packed.length) ? framed(packed, packed.length) : asIs();
}

// Raw deflate of `plain` through a zlib stream of its own: values past the
// small state, and every value where the kept stream is not available
// (bench/value-packing.ts times it beside the kept one).
export function deflateOneShot(plain: Buffer): Buffer {
  const chunkSize = chunkFor(plain.length);
  return plain.length <= SMALL_STATE_MAX_BYTES
    ? deflateRawSync(plain, { dictionary: DICTIONARY_V1_BYTES, chunkSize, windowBits: SMALL_STATE.windowBits, memLevel: SMALL_STATE.memLevel })
    : deflateRawSync(plain, { dictionary: DICTIONARY_V1_BYTES, chunkSize });
}

// The text of a packed value's raw deflate (`body`, after the two header
// bytes) through a zlib stream of its own: values past the kept buffer, and
// every value where the kept stream is not available. Throws as zlib does.
// Options as literals, never spread copies: a spread made inflating a task
// twice as slow under the daemon's malloc (a scratch measurement, not kept;
// not explained).
export function inflateOneShot(body: Buffer): string {
  return inflateRawSync(body, { dictionary: DICTIONARY_V1_BYTES, maxOutputLength: MAX_UNPACKED_BYTES, chunkSize: chunkFor((body.length + 2) * 4) }).toString();
}

export type Unpacked = { ok: true; value: string } | { ok: false; problem: string };

// The text of a stored value: plain values as they are, packed ones inflated.
// A packed value that does not inflate is a problem of its own key only.
export function unpackValue(stored: Buffer): Unpacked {
  if (stored.length < 2 || stored[0] !== PACKED || stored[1] !== DICTIONARY_V1) {
    if (stored.length >= 2 && stored[0] === PACKED) return { ok: false, problem: `packed with an unknown dictionary (version ${stored[1]}): written by a newer Shoal?` };
    return { ok: true, value: stored.toString() };
  }
  // The full window: values packed before the small state, or larger, may
  // refer back further than 4 KiB (a small window first paid nothing, measured).
  try {
    const body = stored.subarray(2);
    const value = inflate.run(body, (out, n) => out.toString('utf8', 0, n)) ?? inflateOneShot(body);
    return { ok: true, value };
  } catch (e) {
    return { ok: false, problem: `a packed value that does not inflate: ${(e as Error).message}` };
  }
}
