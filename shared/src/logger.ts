// One pino root logger per process. API keys are never logged; recipients and message bodies are redacted
// unless the level is debug or trace.
import { type Logger, pino } from 'pino'

export type { Logger }

const secretPaths = [
  'req.headers.authorization',
  'headers.authorization',
  'authorization',
  'apiKey',
  'config.apiKeys',
  'config.sms.authToken',
]
const personalPaths = [
  'to',
  'message',
  'subject',
  'body',
  '*.to',
  '*.message',
  '*.subject',
  'record.to',
  'record.message',
]

export function createLogger(options: { service: string; level?: string; channel?: string }): Logger {
  const level = options.level ?? 'info'
  const verbose = level === 'debug' || level === 'trace'
  return pino({
    level,
    base: { service: options.service, ...(options.channel ? { channel: options.channel } : {}) },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: verbose ? secretPaths : [...secretPaths, ...personalPaths], censor: '[redacted]' },
    formatters: { level: (label) => ({ level: label }) },
  })
}
