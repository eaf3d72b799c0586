// The router process: npm run router. Follows Herald's alarm-events topic and any ALARM_EVENTS_TOPICS (e.g.
// monasca's alarm-state-transitions), each with its own consumer group, and turns events into notifications.
// The only module that reads the environment, opens sockets and handles signals.
import type { AddressInfo } from 'node:net'
import { channels, loadConfig } from '@herald/shared/config'
import {
  configStoresReady,
  createConfigStores,
  startConfigStores,
  stopConfigStores,
} from '@herald/shared/config-topics/stores'
import { ConfigError } from '@herald/shared/errors'
import { createHealthServer } from '@herald/shared/health'
import { createKafka } from '@herald/shared/kafka'
import { createLogger } from '@herald/shared/logger'
import { HeraldPartitioner } from '@herald/shared/partitioner'
import { checkRedisDurability, createRedis, defineScripts, sharedScripts } from '@herald/shared/redis/client'
import { redisKeys } from '@herald/shared/redis/keys'
import { StatusStore } from '@herald/shared/status'
import {
  alarmEventDeadLetterTopicName,
  alarmEventDeadLetterTopicSpec,
  alarmEventTopicName,
  alarmEventTopicSpec,
  configTopicNames,
  configTopicSpecs,
  ensureTopics,
  topicNames,
  topicSpecs,
} from '@herald/shared/topics'
import dotenv from 'dotenv'
import type { Kafka } from 'kafkajs'
import { createRouterMetrics } from './metrics.ts'
import { Router } from './router.ts'

dotenv.config({ quiet: true })

export interface RouterMainOptions {
  /** Wraps the Kafka client the routers consume and produce with (a test adds a crash point this way). */
  wrapKafka?: (kafka: Kafka) => Kafka
  /** Logged once at start, so a run with a crash point is never mistaken for a real one. */
  warning?: string
}

export async function main(options: RouterMainOptions = {}): Promise<void> {
  let config: ReturnType<typeof loadConfig>
  try {
    config = loadConfig(process.env, 'router')
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`router: ${error.message}`)
      process.exit(1)
    }
    throw error
  }
  const logger = createLogger({ service: 'router', level: config.logLevel })
  if (options.warning) logger.warn(options.warning)

  const redis = createRedis(config.redisUrl, {}, config.redisClusterNodes)
  redis.on('error', (error) => logger.warn({ err: error }, 'redis connection error'))
  defineScripts(redis, sharedScripts)
  await redis.connect()
  await checkRedisDurability(redis, logger)

  const kafka = createKafka({ brokers: config.kafka.brokers, clientId: 'herald-router', logger })
  const names = topicNames(config.topics.prefix)
  const configNames = configTopicNames(config.keyPrefix)
  const ownTopic = alarmEventTopicName(config.keyPrefix)
  const replication = config.topics.replication
  const admin = kafka.admin()
  await admin.connect()
  await ensureTopics(admin, {
    specs: [
      ...topicSpecs(names, channels, replication),
      ...configTopicSpecs(configNames, replication),
      alarmEventTopicSpec(ownTopic, replication),
      alarmEventDeadLetterTopicSpec(alarmEventDeadLetterTopicName(ownTopic), replication),
    ],
    partitions: config.topics.partitions,
    replication,
    brokers: config.kafka.brokers,
    logger,
  })
  await admin.disconnect()

  const producer = kafka.producer({
    allowAutoTopicCreation: false,
    createPartitioner: HeraldPartitioner,
  })
  await producer.connect()
  const stores = createConfigStores(kafka, {
    names: configNames,
    producer,
    logger,
    groupPrefix: `${config.keyPrefix}.router`,
  })
  const metrics = createRouterMetrics()
  const keys = redisKeys(config.keyPrefix)
  const statuses = new StatusStore(redis, keys, config.statusTtlSeconds)
  // Herald's own topic in the group herald.router; an external topic in a group of its own, so each is
  // claimed and scaled by its own partitions. Unreadable events go to `<topic>.dlq` (created for Herald's).
  const followed = [ownTopic, ...config.alarmEvents.externalTopics.filter((t) => t !== ownTopic)]
  const routerKafka = options.wrapKafka?.(kafka) ?? kafka
  const routers = followed.map(
    (topic) =>
      new Router({
        kafka: routerKafka,
        redis,
        keys,
        statuses,
        stores,
        config,
        logger,
        metrics,
        topic,
        deadLetterTopic: alarmEventDeadLetterTopicName(ownTopic),
        notificationTopics: names,
        groupId: topic === ownTopic ? `${config.keyPrefix}.router` : `${config.keyPrefix}.router.${topic}`,
      }),
  )

  const health = createHealthServer(metrics.registry, {
    live: () => true,
    ready: () => {
      const consuming = routers.every((r) => r.running)
      const configured = configStoresReady(stores)
      return {
        ok: consuming && configured && redis.status === 'ready',
        details: {
          consumer: consuming,
          config: configured,
          redis: redis.status,
          topics: Object.fromEntries(followed.map((t, i) => [t, routers[i]?.heldPartitions ?? []])),
        },
      }
    },
  })
  await new Promise<void>((resolve) => health.listen(config.metricsPort, resolve))
  const port = (health.address() as AddressInfo).port

  const stopSignal = new AbortController()
  let stopping = false
  const shutdown = async (signal: string) => {
    if (stopping) return
    stopping = true
    stopSignal.abort()
    logger.info({ signal }, 'shutting down: finishing the batch in progress')
    const started = Date.now()
    const bound = setTimeout(() => {
      logger.error('shutdown bound reached; exiting (unfinished events are routed again by the next owner)')
      process.exit(1)
    }, config.shutdownTimeoutMs)
    try {
      await Promise.all(routers.map((r) => r.stop()))
      await stopConfigStores(stores)
      await producer.disconnect().catch(() => {})
      await redis.quit().catch(() => redis.disconnect())
      health.close()
      clearTimeout(bound)
      logger.info({ ms: Date.now() - started }, 'stopped')
      process.exit(0)
    } catch (error) {
      logger.error({ err: error }, 'shutdown failed')
      process.exit(1)
    }
  }
  process.once('SIGTERM', () => void shutdown('SIGTERM'))
  process.once('SIGINT', () => void shutdown('SIGINT'))

  // Routes, recipients and templates are read to their end before the first event is routed.
  await startConfigStores(stores, { logger, signal: stopSignal.signal })
  if (stopping) return
  const crashed = (error: Error) => {
    logger.fatal({ err: error }, 'kafkajs consumer crashed for good; exiting')
    process.exit(1)
  }
  await Promise.all(routers.map((r) => r.start(crashed)))
  logger.info(
    { metricsPort: port, topics: followed, group: `${config.keyPrefix}.router` },
    `router running; metrics on http://127.0.0.1:${port}/metrics`,
  )
}

if (import.meta.main) {
  main().catch((error: unknown) => {
    console.error('router failed to start:', error)
    process.exit(1)
  })
}
