// Kafka clients for Herald's services: kafkajs with its logs routed to pino and auto-create off.
import { createRequire } from 'node:module'
import { Kafka, type KafkaConfig, logLevel } from 'kafkajs'
import type { Logger } from './logger.ts'

interface RequestQueueInternals {
  pending: unknown[]
  scheduleCheckPendingRequests(this: RequestQueueInternals): void
}

/**
 * kafkajs 2.2.4 (network/requestQueue) re-arms a timer after every response, even with nothing queued:
 * `setTimeout(check, throttledUntil - Date.now())` where `throttledUntil` is -1 unless the broker
 * throttled, i.e. a delay of about -Date.now(). Node 24 warns (TimeoutNegativeWarning: -17960…) and runs
 * it after 1 ms, and the check re-arms it: a 1 ms timer loop per broker connection for the client's
 * lifetime (kafkajs issues #1704, #1751). Requests only wait in `pending` when throttled or at the
 * in-flight limit, and `push` schedules the check itself in both cases, so the timer is needed only while
 * something is pending; with an empty queue this skips it. Installed once, when this module loads.
 */
function skipIdleRequestQueueTimer(): void {
  const require = createRequire(import.meta.url)
  const RequestQueue = require('kafkajs/src/network/requestQueue/index.js') as {
    prototype: RequestQueueInternals
  }
  const schedule = RequestQueue.prototype.scheduleCheckPendingRequests
  if (typeof schedule !== 'function')
    throw new Error('kafkajs RequestQueue changed: review shared/src/kafka.ts')
  RequestQueue.prototype.scheduleCheckPendingRequests = function (this: RequestQueueInternals) {
    if (this.pending.length === 0) return
    schedule.call(this)
  }
}
skipIdleRequestQueueTimer()

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
