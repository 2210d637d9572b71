import { Writable } from 'node:stream';
import pino from 'pino';
import type { Logger } from '../../src/common/log';

// A logger (debug level unless told) whose lines the test reads back, parsed.
export function capturingLogger(level: pino.Level = 'debug'): { log: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: pino({ level }, stream), lines };
}
