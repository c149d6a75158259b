import { type Logger, pino } from "pino";

export type { Logger };

/**
 * The one logger factory. Secrets never reach a line: the fields below are censored wherever
 * they appear, as a second line of defence behind code that never logs them.
 */
export function createLogger(options: {
  name: string;
  level?: string;
  destination?: NodeJS.WritableStream;
}): Logger {
  const level = options.level ?? process.env["UNDERPASS_LOG_LEVEL"] ?? "info";
  return pino(
    {
      name: options.name,
      level,
      redact: {
        paths: [
          "token",
          "password",
          "*.token",
          "*.password",
          "authorization",
          "*.authorization",
          "req.headers.authorization",
          "headers.authorization",
        ],
        censor: "[redacted]",
      },
    },
    options.destination ?? pino.destination({ dest: 2, sync: false }),
  );
}

/** A logger that drops everything, for tests and embedded use. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
