import { pino, type Logger } from 'pino';

export type { Logger };

/** JSON lines on stdout (stderr would mix with crash output in process supervisors). */
export function createLogger(level: string): Logger {
  return pino({ level, base: { service: 'sluice' } });
}
