// Kafka clients for Herald's services: kafkajs with its logs routed to pino and auto-create off.
import { createRequire } from 'node:module'
import { Kafka, type KafkaConfig, logLevel, type Producer, type ProducerConfig } from 'kafkajs'
import type { Logger } from './logger.ts'
import { HeraldPartitioner } from './partitioner.ts'

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

/** What a consumer's fetch throws once the consumer stopped (see endFetchersMadeAfterStop). */
export class ConsumerStoppedError extends Error {
  constructor() {
    super('the consumer stopped: this fetcher ends')
    this.name = 'ConsumerStoppedError'
  }
}

interface RunnerInternals {
  running: boolean
  fetch(this: RunnerInternals, nodeId: number): Promise<unknown[]>
}

/**
 * kafkajs 2.2.4 (consumer/runner, consumer/fetchManager): when the brokers' node ids change while a consumer
 * stops (a broker killed or restarted meanwhile), the fetch manager makes new fetchers after stop() stopped
 * the old ones, and nothing stops the new ones. Their loop calls the runner's fetch, which returns [] at once
 * when the consumer is not running: a loop of promises that never yields to the event loop, at full CPU,
 * starving every timer and socket, so the process never exits after SIGTERM (seen in the cluster failover
 * test, issue 20; related to kafkajs issues #1384 and #1387, which fixed the case with no broker at all).
 * Here a stopped consumer's fetch throws instead: that fetcher ends, the fetch manager rejects, the runner's
 * retrier tries again after its backoff, sees the consumer stopped, and the stop completes. A running
 * consumer's fetch is unchanged. Installed once, when this module loads.
 */
function endFetchersMadeAfterStop(): void {
  const require = createRequire(import.meta.url)
  const Runner = require('kafkajs/src/consumer/runner.js') as { prototype: RunnerInternals }
  const fetch = Runner.prototype.fetch
  if (typeof fetch !== 'function') throw new Error('kafkajs Runner changed: review shared/src/kafka.ts')
  Runner.prototype.fetch = function (this: RunnerInternals, nodeId: number) {
    if (!this.running) return Promise.reject(new ConsumerStoppedError())
    return fetch.call(this, nodeId)
  }
}
endFetchersMadeAfterStop()

const levels: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
  [logLevel.ERROR]: 'error',
  [logLevel.WARN]: 'warn',
  [logLevel.INFO]: 'info',
  [logLevel.DEBUG]: 'debug',
}

/**
 * kafkajs' client whose producers partition with HeraldPartitioner (murmur2 of the key, as Java clients and
 * kafkajs' DefaultPartitioner do: one recipient, one partition) unless a producer names another. Named here
 * once, for every producer of every service, so kafkajs 2 has no "switched default partitioner" notice to
 * log for any of them.
 */
class HeraldKafka extends Kafka {
  override producer(config?: ProducerConfig): Producer {
    return super.producer({ createPartitioner: HeraldPartitioner, ...config })
  }
}

export function createKafka(options: {
  brokers: string[]
  clientId: string
  logger: Logger
  overrides?: Partial<KafkaConfig>
}): Kafka {
  const log = options.logger.child({ component: 'kafkajs' })
  return new HeraldKafka({
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
