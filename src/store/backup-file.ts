// The `shoal backup` file (pure: bytes in, bytes out). One line of header,
// then the payload:
//   SHOAL-BACKUP <format> <payload bytes> <sha256 of the payload, hex>\n
//   <payload: gzip of the contents as JSON>
// The header says what a reader needs before trusting anything: the format
// version (refused when unknown), the length (a truncated copy is caught
// before decompressing) and the checksum (a corrupt one too).
import { createHash } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { invalid } from '../common/errors';
import { isRecord } from './codec';

export const BACKUP_MAGIC = 'SHOAL-BACKUP';
export const BACKUP_FORMAT = 1;
// A header line is short; a file without a newline in its first bytes is not ours.
const MAX_HEADER = 256;
// Decompressed payload bound (a hostile file must not exhaust memory).
const MAX_PAYLOAD = 2 * 1024 ** 3;

// What a restore needs: the store's keys read at one etcd revision, and the
// keys that are never in etcd. The CA key is in the store, sealed with the
// data key (the cluster object's SealedCAKey); join tokens are in the cluster
// object too.
export interface BackupContents {
  clusterId: string;
  createdAt: string;        // ISO time of the read
  revision: number;         // the etcd revision every key was read at
  caCertPem: string;        // the swarm's root CA certificate
  dataKey: string;          // base64: the key that seals secret values and the CA key
  kvs: Array<[string, string]>;
}

const fail = (msg: string) => invalid(`invalid backup file: ${msg}`);

export function encodeBackup(c: BackupContents): Buffer {
  const payload = gzipSync(Buffer.from(JSON.stringify(c), 'utf8'));
  const sum = createHash('sha256').update(payload).digest('hex');
  return Buffer.concat([Buffer.from(`${BACKUP_MAGIC} ${BACKUP_FORMAT} ${payload.length} ${sum}\n`, 'utf8'), payload]);
}

// Checks everything before returning; every refusal says what is wrong.
export function decodeBackup(file: Buffer): BackupContents {
  const nl = file.subarray(0, MAX_HEADER).indexOf(0x0a);
  const head = (nl < 0 ? file.subarray(0, MAX_HEADER) : file.subarray(0, nl)).toString('latin1');
  if (!head.startsWith(`${BACKUP_MAGIC} `)) throw fail(`not a Shoal backup (it does not start with "${BACKUP_MAGIC}")`);
  if (nl < 0) throw fail('truncated: the header line is incomplete');
  const m = /^SHOAL-BACKUP (\d{1,6}) (\d{1,12}) ([0-9a-f]{64})$/.exec(head);
  const format = /^SHOAL-BACKUP (\d+)/.exec(head)?.[1];
  if (format !== undefined && Number(format) !== BACKUP_FORMAT) throw fail(`format version ${format} is not supported (this Shoal reads version ${BACKUP_FORMAT})`);
  if (!m) throw fail('corrupt header line');
  const length = Number(m[2]);
  const payload = file.subarray(nl + 1);
  if (payload.length < length) throw fail(`truncated: ${payload.length} of ${length} payload bytes`);
  if (payload.length > length) throw fail(`${payload.length - length} bytes after the end of the payload`);
  if (createHash('sha256').update(payload).digest('hex') !== m[3]) throw fail('corrupt: the checksum does not match its contents');
  let json: unknown;
  try {
    json = JSON.parse(gunzipSync(payload, { maxOutputLength: MAX_PAYLOAD }).toString('utf8'));
  } catch (e) {
    throw fail(`corrupt payload: ${(e as Error).message}`);
  }
  return checkContents(json);
}

function checkContents(v: unknown): BackupContents {
  if (!isRecord(v)) throw fail('the payload is not an object');
  const str = (k: string): string => {
    if (typeof v[k] !== 'string' || v[k] === '') throw fail(`the payload has no ${k}`);
    return v[k] as string;
  };
  const revision = v.revision;
  if (typeof revision !== 'number' || !Number.isSafeInteger(revision) || revision < 1) throw fail('the payload has no revision');
  if (!Array.isArray(v.kvs)) throw fail('the payload has no keys');
  const kvs: Array<[string, string]> = [];
  for (const kv of v.kvs as unknown[]) {
    if (!Array.isArray(kv) || kv.length !== 2 || typeof kv[0] !== 'string' || typeof kv[1] !== 'string') throw fail('a key-value entry is malformed');
    kvs.push([kv[0], kv[1]]);
  }
  const dataKey = str('dataKey');
  if (Buffer.from(dataKey, 'base64').length !== 32) throw fail('the data key is not 32 bytes');
  return { clusterId: str('clusterId'), createdAt: str('createdAt'), revision, caCertPem: str('caCertPem'), dataKey, kvs };
}
