// Shoal's own endpoints for `shoal backup` and `shoal restore` (not Docker
// API paths; the docker CLI never calls them). The backup file travels as the
// raw body in both directions.
import type { Router } from '../router';
import { invalid } from '../../common/errors';

export interface Recovery {
  backup(): Promise<Buffer>;
  restore(file: Buffer): Promise<string>;   // the new node's ID
}

export const BACKUP_PATH = '/shoal/backup';
export const RESTORE_PATH = '/shoal/restore';
// A backup holds the whole store: far above the JSON body limit, still bounded.
export const MAX_BACKUP_BYTES = 1024 ** 3;
const BODY_TIMEOUT_MS = 120_000;

export function registerRecoveryRoutes(router: Router, recovery: Recovery): void {
  router.on('GET', BACKUP_PATH, async (_req, res) => {
    const file = await recovery.backup();
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': file.length });
    res.end(file);
    return undefined;
  });

  router.on('POST', RESTORE_PATH, async (req) => {
    const file = await readRawBody(req.raw, req.headers['content-length']);
    return { status: 200, body: { NodeID: await recovery.restore(file) } };
  });
}

// The whole body, bounded in size and time.
function readRawBody(body: NodeJS.ReadableStream, declared: string | undefined): Promise<Buffer> {
  if (declared !== undefined && Number(declared) > MAX_BACKUP_BYTES) return Promise.reject(invalid(`backup file too large: the limit is ${MAX_BACKUP_BYTES} bytes`));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (err?: Error): void => {
      clearTimeout(timer);
      body.off('data', onData); body.off('end', onEnd); body.off('error', onError);
      if (err) reject(err); else resolve(Buffer.concat(chunks));
    };
    const onData = (c: Buffer): void => {
      size += c.length;
      if (size > MAX_BACKUP_BYTES) { done(invalid(`backup file too large: the limit is ${MAX_BACKUP_BYTES} bytes`)); return; }
      chunks.push(c);
    };
    const onEnd = (): void => done();
    const onError = (err: Error): void => done(invalid(`reading the backup file: ${err.message}`));
    const timer = setTimeout(() => done(invalid(`the backup file did not arrive within ${BODY_TIMEOUT_MS / 1000} s`)), BODY_TIMEOUT_MS);
    body.on('data', onData);
    body.on('end', onEnd);
    body.on('error', onError);
    body.resume();
  });
}
