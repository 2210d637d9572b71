import type { IncomingMessage } from 'node:http';
import { expectOk, type EngineClient } from '../../engine/client';
import { inspectContainer, toExecutorError } from './docker-executor';

// A container's log as messages, read from the engine's
// `GET /containers/{id}/logs?timestamps=1`: stdcopy frames for ordinary
// containers, a raw byte stream for TTY ones.

export interface LogLine {
  stream: 'stdout' | 'stderr';
  timestamp: string;   // RFC 3339 with exactly 9 fractional digits, as moby prints it
  line: Buffer;        // the message as logged, its newline included
}

export interface ContainerLogOptions {
  follow?: boolean;
  since?: string;      // unix seconds, possibly fractional
  until?: string;
  tail?: string;       // 'all' or a number of lines
  stdout: boolean;
  stderr: boolean;
}

export async function* readContainerLogs(
  engine: EngineClient,
  containerId: string,
  opts: ContainerLogOptions,
  signal?: AbortSignal,
): AsyncGenerator<LogLine> {
  let tty = false;
  try {
    tty = !!(await inspectContainer(engine, containerId, { signal })).Config.Tty;
  } catch (err) {
    if (toExecutorError(err).statusCode === 404) return;
    throw toExecutorError(err);
  }
  if (signal?.aborted) return;
  const query: Record<string, string> = {
    stdout: opts.stdout ? '1' : '0',
    stderr: opts.stderr ? '1' : '0',
    timestamps: '1',
    follow: opts.follow ? '1' : '0',
  };
  if (opts.since) query['since'] = opts.since;
  if (opts.until) query['until'] = opts.until;
  if (opts.tail && opts.tail !== 'all') query['tail'] = opts.tail;
  let res: IncomingMessage;
  try {
    res = await expectOk(await engine.stream('GET', `/containers/${encodeURIComponent(containerId)}/logs`, { query, signal }));
  } catch (err) {
    if (toExecutorError(err).statusCode === 404) return;
    throw toExecutorError(err);
  }
  const onAbort = (): void => { res.destroy(); };
  signal?.addEventListener('abort', onAbort, { once: true });
  const parser = tty ? new RawLineParser() : new StdcopyParser();
  try {
    for await (const chunk of res) {
      for (const m of parser.push(chunk as Buffer)) yield m;
    }
    for (const m of parser.end()) yield m;
  } catch (err) {
    if (signal?.aborted) return;
    throw err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    res.destroy();
  }
}

// stdcopy: [stream, 0, 0, 0, size BE32] then `size` bytes; one log message a frame.
export class StdcopyParser {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): LogLine[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: LogLine[] = [];
    while (this.buf.length >= 8) {
      const size = this.buf.readUInt32BE(4);
      if (this.buf.length < 8 + size) break;
      const kind = this.buf[0];
      const payload = this.buf.subarray(8, 8 + size);
      this.buf = this.buf.subarray(8 + size);
      if (kind === 1 || kind === 2) out.push(splitTimestamp(payload, kind === 2 ? 'stderr' : 'stdout'));
    }
    return out;
  }

  end(): LogLine[] { return []; }
}

// TTY containers: no frames, everything is stdout; cut at newlines.
export class RawLineParser {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): LogLine[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: LogLine[] = [];
    let nl;
    while ((nl = this.buf.indexOf(0x0a)) >= 0) {
      out.push(splitTimestamp(this.buf.subarray(0, nl + 1), 'stdout'));
      this.buf = this.buf.subarray(nl + 1);
    }
    return out;
  }

  end(): LogLine[] {
    if (!this.buf.length) return [];
    const last = splitTimestamp(this.buf, 'stdout');
    this.buf = Buffer.alloc(0);
    return [last];
  }
}

// "<ts> <message>" as the engine writes with timestamps=1.
export function splitTimestamp(payload: Buffer, stream: 'stdout' | 'stderr'): LogLine {
  const sp = payload.indexOf(0x20);
  const head = sp > 0 ? payload.subarray(0, sp).toString('latin1') : '';
  const ts = sp > 0 ? fixedNanos(head) : undefined;
  if (ts === undefined) return { stream, timestamp: fixedNanos(new Date().toISOString())!, line: payload };
  return { stream, timestamp: ts, line: payload.subarray(sp + 1) };
}

// Go's RFC3339Nano drops trailing zeros; moby's log streams print RFC3339NanoFixed.
export function fixedNanos(ts: string): string | undefined {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(ts);
  if (!m) return undefined;
  return `${m[1]}.${(m[2] ?? '').padEnd(9, '0')}${m[3]}`;
}
