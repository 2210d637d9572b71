import pino from 'pino';

// One structured logger for the process; components take a child with their
// name (`component`), and a part of one a child of that with `part` (pino
// would write a second `component` into the same line, not replace it).
export type Logger = pino.Logger;

export function createLogger(level: string = process.env.SHOAL_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination(2));
}

export const silentLogger: Logger = pino({ level: 'silent' });
