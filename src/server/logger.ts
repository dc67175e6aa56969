import { type DestinationStream, type Logger, pino } from 'pino';

/**
 * Structured JSON logs. Authorization, cookies and anything named like a secret are redacted
 * wherever they appear, so a stray object in a log call cannot leak a credential.
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-keygate-assertion"]',
  'headers.authorization',
  'headers.cookie',
  '*.token',
  '*.secret',
  '*.clientSecret',
  '*.client_secret',
  '*.access_token',
  '*.refresh_token',
  '*.password',
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  // Buffered asynchronous writes keep the request path off the write(2) syscall; the buffer
  // is flushed at shutdown. Logs are not the durable record: the audit log is.
  const dest = destination ?? pino.destination({ dest: 1, sync: false, minLength: 4096 });
  return pino({ level, base: { service: 'keygate' }, redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, dest);
}

export function flushLogger(log: Logger): void {
  try {
    log.flush();
  } catch {
    // A destination that is not ready yet (nothing written) cannot be flushed; nothing is lost.
  }
}
