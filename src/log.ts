/** Operational logs: JSON lines on stderr (stdout is the default audit sink). */
import pino from 'pino';

export type Logger = pino.Logger;

export function createLogger(level = process.env.DOCKWARD_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: { name: 'dockward' }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ fd: 2, sync: true }));
}
