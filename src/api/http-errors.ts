import type { ServerResponse } from 'node:http';
import { ShoalError, type ErrorKind } from '../common/errors';
import { JsonText } from './json-text';

// The one place where error kinds become HTTP statuses (moby's httpstatus table).
const STATUS: Record<ErrorKind, number> = {
  invalid: 400,
  precondition: 400,
  not_found: 404,
  forbidden: 403,
  conflict: 409,
  unauthorized: 401,
  unavailable: 503,
  sequence: 500,
  internal: 500,
};

export function statusOf(err: unknown): number {
  return err instanceof ShoalError ? STATUS[err.kind] : 500;
}

// Docker's error body: {"message": "..."} and a newline, Content-Type exactly
// application/json (the CLI compares it with ==).
export function writeError(res: ServerResponse, err: unknown): void {
  const status = statusOf(err);
  const message = err instanceof Error ? err.message : String(err);
  writeJson(res, status, { message });
}

export function writeJson(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) { res.destroy(); return; }
  const data = body instanceof JsonText ? body.bytes : `${JSON.stringify(body)}\n`;
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) });
  res.end(data);
}
