// One bounded HTTP request over a unix socket (a host's shoal.sock or
// docker.sock); never rejects: a time-out or a connection error is a result.
import { request } from 'node:http';
import type { Entry, Outcome } from './history';

export interface HttpResult { status?: number; body: string; error?: string }

export function call(socketPath: string, method: string, path: string, body: unknown, timeoutMs: number): Promise<HttpResult> {
  return new Promise((resolve) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    let done = false;
    const finish = (r: HttpResult): void => { if (!done) { done = true; clearTimeout(timer); resolve(r); } };
    const req = request({
      socketPath, method, path,
      headers: data === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { if (text.length < 64_000) text += c; });
      res.on('end', () => finish({ ...(res.statusCode !== undefined ? { status: res.statusCode } : {}), body: text }));
      res.on('error', (err) => finish({ body: text, error: err.message }));
    });
    const timer = setTimeout(() => { req.destroy(); finish({ body: '', error: `no answer within ${timeoutMs} ms` }); }, timeoutMs);
    req.on('error', (err) => finish({ body: '', error: err.message }));
    if (data !== undefined) req.write(data);
    req.end();
  });
}

// Docker answers a stale version with 500 "update out of sequence": a
// definite refusal (the store checked the version and wrote nothing).
// A connection that never opened (no socket file, nobody listening) sent
// nothing: a definite failure too.
export function outcomeOf(r: HttpResult): Outcome {
  if (r.status === undefined) return /^connect (ENOENT|ECONNREFUSED)\b/.test(r.error ?? '') ? 'fail' : 'unknown';
  if (r.status >= 200 && r.status < 300) return 'ok';
  if (r.status >= 400 && r.status < 500) return 'fail';
  if (/update out of sequence/.test(r.body)) return 'fail';
  return 'unknown';
}

export function json(r: HttpResult): any {
  try { return JSON.parse(r.body); } catch { return undefined; }
}

// What a write's answer puts in its history entry (clients.ts, probe.ts):
// the outcome, the status when one came, the body or error trimmed, and the
// new object's ID from an acknowledged create.
export function answerOf(r: HttpResult, create: boolean): Pick<Entry, 'outcome' | 'status' | 'body' | 'createdId'> {
  const outcome = outcomeOf(r);
  const createdId = create && outcome === 'ok' ? json(r)?.ID : undefined;
  return {
    outcome,
    ...(r.status !== undefined ? { status: r.status } : {}),
    body: (r.error ?? r.body).trim().slice(0, 300),
    ...(typeof createdId === 'string' ? { createdId } : {}),
  };
}
