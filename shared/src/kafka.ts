// Kafka clients for Herald's services: kafkajs with its logs routed to pino and auto-create off.
import { Kafka, type KafkaConfig, logLevel } from 'kafkajs'
import type { Logger } from './logger.ts'

const levels: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
  [logLevel.ERROR]: 'error',
  [logLevel.WARN]: 'warn',
  [logLevel.INFO]: 'info',
  [logLevel.DEBUG]: 'debug',
}

export function createKafka(options: {
  brokers: string[]
  clientId: string
  logger: Logger
  overrides?: Partial<KafkaConfig>
}): Kafka {
  const log = options.logger.child({ component: 'kafkajs' })
  return new Kafka({
    clientId: options.clientId,
    brokers: options.brokers,
    connectionTimeout: 3000,
    // kafkajs logs every retried request at ERROR; Herald reports what it handles itself.
    logLevel: logLevel.WARN,
    logCreator:
      () =>
      ({ level, log: entry }) => {
        const { message, timestamp: _t, logger: _l, ...rest } = entry
        // kafkajs logs every error answer it retries ("Response Metadata(...)", not the leader, ...) at
        // ERROR; the retry outcome is what matters, so those go to debug.
        const retried = typeof message === 'string' && message.startsWith('Response ')
        log[retried ? 'debug' : (levels[level] ?? 'info')](rest, message)
      },
    ...options.overrides,
  })
}
