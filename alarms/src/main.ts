// The alarms process: npm run alarms. Registers nothing itself: it follows the alarm topics written through
// the api and keeps each alarm's effective state, timers and notifications (processor.ts). The only module
// that reads the environment, opens sockets and handles signals.
import type { AddressInfo } from 'node:net'
import { effectiveSchema } from '@herald/shared/alarms/schemas'
import { loadConfig } from '@herald/shared/config'
import { ConfigTopicStore } from '@herald/shared/config-topics/store'
import { ConfigError } from '@herald/shared/errors'
import { createHealthServer } from '@herald/shared/health'
import { createKafka } from '@herald/shared/kafka'
import { createLogger } from '@herald/shared/logger'
import { HeraldPartitioner } from '@herald/shared/partitioner'
import {
  alarmEventTopicName,
  alarmEventTopicSpec,
  alarmTopicNames,
  alarmTopicSpecs,
  ensureTopics,
} from '@herald/shared/topics'
import dotenv from 'dotenv'
import { createAlarmsMetrics } from './metrics.ts'
import { AlarmProcessor } from './processor.ts'

dotenv.config({ quiet: true })

export async function main(): Promise<void> {
  let config: ReturnType<typeof loadConfig>
  try {
    config = loadConfig(process.env, 'tool')
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`alarms: ${error.message}`)
      process.exit(1)
    }
    throw error
  }
  const logger = createLogger({ service: 'alarms', level: config.logLevel })
  const kafka = createKafka({ brokers: config.kafka.brokers, clientId: 'herald-alarms', logger })
  const topics = alarmTopicNames(config.keyPrefix)
  const eventsTopic = alarmEventTopicName(config.keyPrefix)
  const admin = kafka.admin()
  await admin.connect()
  await ensureTopics(admin, {
    specs: [
      ...alarmTopicSpecs(topics, config.topics.replication),
      alarmEventTopicSpec(eventsTopic, config.topics.replication),
    ],
    partitions: config.topics.partitions,
    replication: config.topics.replication,
    brokers: config.kafka.brokers,
    logger,
  })
  await admin.disconnect()

  const producer = kafka.producer({
    allowAutoTopicCreation: false,
    createPartitioner: HeraldPartitioner,
  })
  await producer.connect()
  // Every alarm's effective state, whichever member owns it: the parents of masked alarms.
  const parents = new ConfigTopicStore(kafka, {
    topic: topics.effective,
    schema: effectiveSchema,
    producer,
    logger,
    groupPrefix: `${config.keyPrefix}.alarms`,
  })
  const metrics = createAlarmsMetrics()
  const processor = new AlarmProcessor({
    kafka,
    logger,
    metrics,
    topics,
    eventsTopic,
    groupId: `${config.keyPrefix}.alarms`,
    sessionTimeoutMs: config.kafka.sessionTimeoutMs,
    parents,
  })

  const health = createHealthServer(metrics.registry, {
    live: () => true,
    ready: () => {
      const owned = processor.ownedPartitions
      const loaded = processor.loadedPartitions
      const ok = processor.running && parents.ready && loaded.length === owned.length
      return { ok, details: { consumer: processor.running, parents: parents.ready, owned, loaded } }
    },
  })
  await new Promise<void>((resolve) => health.listen(config.metricsPort, resolve))
  const port = (health.address() as AddressInfo).port

  let stopping = false
  const shutdown = async (signal: string) => {
    if (stopping) return
    stopping = true
    logger.info({ signal }, 'shutting down')
    const bound = setTimeout(() => process.exit(1), config.shutdownTimeoutMs)
    try {
      await processor.stop()
      await parents.stop()
      await producer.disconnect().catch(() => {})
      health.close()
      clearTimeout(bound)
      logger.info('stopped')
      process.exit(0)
    } catch (error) {
      logger.error({ err: error }, 'shutdown failed')
      process.exit(1)
    }
  }
  process.once('SIGTERM', () => void shutdown('SIGTERM'))
  process.once('SIGINT', () => void shutdown('SIGINT'))

  for (let attempt = 1; !stopping; attempt++) {
    try {
      await parents.start()
      await parents.whenReady()
      break
    } catch (error) {
      logger.warn({ err: error, attempt }, 'effective states not read yet; retrying')
      await new Promise((r) => setTimeout(r, Math.min(5000, 500 * attempt)))
    }
  }
  if (stopping) return
  await processor.start((error) => {
    logger.fatal({ err: error }, 'kafkajs consumer crashed for good; exiting')
    process.exit(1)
  })
  logger.info(
    { metricsPort: port, topics, group: `${config.keyPrefix}.alarms` },
    `alarms running; metrics on http://127.0.0.1:${port}/metrics`,
  )
}

if (import.meta.main) {
  main().catch((error: unknown) => {
    console.error('alarms failed to start:', error)
    process.exit(1)
  })
}
