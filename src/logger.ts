// corsgate's pino logger, apart from the gateway's modules: the CLI's supervising primary
// logs with it and loads nothing else.
import { pino, type Logger } from 'pino'
import type { Config } from './config/schema.js'

/** Log lines never carry secrets: credentials in headers or URLs are censored. */
export function createLogger (config: Config): Logger {
  return pino({
    level: config.log.level,
    redact: {
      paths: ['req.headers.authorization', 'req.headers.cookie', 'req.headers["proxy-authorization"]', 'headers.authorization', 'headers.cookie', 'redisUrl', 'password'],
      censor: '[redacted]'
    }
  })
}
