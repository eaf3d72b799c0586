// The api process: npm run api. The only module that reads the environment, listens and handles signals.
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { channels, loadConfig } from '@herald/shared/config'
import { ConfigError } from '@herald/shared/errors'
import { createKafka } from '@herald/shared/kafka'
import { createLogger } from '@herald/shared/logger'
import { checkRedisDurability, createRedis, defineScripts, sharedScripts } from '@herald/shared/redis/client'
import { redisKeys } from '@herald/shared/redis/keys'
import { StatusStore } from '@herald/shared/status'
import { ensureTopics, topicNames, topicSpecs } from '@herald/shared/topics'
import dotenv from 'dotenv'
import { Partitioners } from 'kafkajs'
import { createApp } from './app.ts'
import { IdempotencyStore } from './idempotency.ts'
import { createApiMetrics } from './metrics.ts'
import { NotificationProducer } from './producer.ts'

dotenv.config({ quiet: true })

async function main(): Promise<void> {
  let config: ReturnType<typeof loadConfig>
  try {
    config = loadConfig(process.env, 'api')
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`api: ${error.message}`)
      process.exit(1)
    }
    throw error
  }
  const logger = createLogger({ service: 'api', level: config.logLevel })
  if (config.apiKeys.size === 0) {
    logger.warn('API_KEYS is empty: the api accepts notifications from anyone (set API_KEYS=name:key,...)')
  }
  const deadline = config.kafka.produceTimeoutMs

  const redis = createRedis(config.redisUrl, { maxRetriesPerRequest: 1, enableOfflineQueue: false })
  redis.on('error', (error) => logger.debug({ err: error }, 'redis connection error'))
  defineScripts(redis, sharedScripts)
  await redis.connect().catch((error: unknown) => {
    logger.warn(
      { err: error },
      'Redis unreachable at start: accepting plain sends; idempotency and status reads answer 503',
    )
  })
  if (redis.status === 'ready') await checkRedisDurability(redis, logger)

  const kafka = createKafka({
    brokers: config.kafka.brokers,
    clientId: 'herald-api',
    logger,
    overrides: {
      requestTimeout: deadline,
      // Retries stay inside the produce deadline; the answer never waits longer than the deadline anyway.
      retry: { retries: 3, initialRetryTime: 100, maxRetryTime: Math.max(200, Math.floor(deadline / 4)) },
    },
  })
  const names = topicNames(config.topics.prefix)
  const admin = kafka.admin()
  for (let attempt = 1; ; attempt++) {
    try {
      await admin.connect()
      await ensureTopics(admin, {
        specs: topicSpecs(names, channels, config.topics.replication),
        partitions: config.topics.partitions,
        replication: config.topics.replication,
        brokers: config.kafka.brokers,
        logger,
      })
      break
    } catch (error) {
      if (error instanceof ConfigError || (error as { code?: string }).code === 'HERALD_TOPIC_MISMATCH')
        throw error
      logger.warn({ err: error, attempt }, 'Kafka not ready at start; retrying')
      await sleep(Math.min(5000, 500 * attempt))
    }
  }
  const kafkaProducer = kafka.producer({
    allowAutoTopicCreation: false,
    createPartitioner: Partitioners.DefaultPartitioner,
    idempotent: false,
    maxInFlightRequests: 5,
  })
  await kafkaProducer.connect()

  const metrics = createApiMetrics()
  const producer = new NotificationProducer(kafkaProducer, {
    deadlineMs: deadline,
    onBatch: (records, seconds, error) => {
      metrics.produceBatchSize.observe(records)
      if (!error) metrics.produceDuration.observe(seconds)
    },
  })
  const keys = redisKeys(config.keyPrefix)
  let kafkaCheck = { at: 0, ok: true }
  const app = createApp({
    config,
    producer,
    redis,
    statuses: new StatusStore(redis, keys, config.statusTtlSeconds),
    idempotency: new IdempotencyStore(redis, keys, {
      pendingTtlMs: deadline + 1000,
      ackedTtlSeconds: config.idempotencyTtlSeconds,
    }),
    topics: names,
    metrics,
    logger,
    kafkaReady: async () => {
      if (Date.now() - kafkaCheck.at < 1000) return kafkaCheck.ok
      const ok = await Promise.race([
        admin.describeCluster().then(() => true),
        sleep(1000).then(() => false),
      ]).catch(() => false)
      kafkaCheck = { at: Date.now(), ok }
      return ok
    },
  })
  const server = app.listen(config.port)
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve)
    server.once('error', reject)
  })
  server.keepAliveTimeout = 65_000
  server.headersTimeout = 66_000
  server.requestTimeout = 30_000
  logger.info(
    { port: (server.address() as AddressInfo).port },
    `api listening on http://127.0.0.1:${config.port}`,
  )

  let stopping = false
  const shutdown = async (signal: string) => {
    if (stopping) return
    stopping = true
    logger.info({ signal }, 'shutting down: no new connections, finishing requests in flight')
    const bound = setTimeout(() => {
      logger.error('shutdown bound reached; exiting')
      process.exit(1)
    }, config.shutdownTimeoutMs)
    bound.unref()
    server.close()
    server.closeIdleConnections()
    await new Promise<void>((resolve) => server.once('close', () => resolve()))
    await producer.drain()
    await kafkaProducer.disconnect().catch(() => {})
    await admin.disconnect().catch(() => {})
    await redis.quit().catch(() => redis.disconnect())
    logger.info('stopped')
    process.exit(0)
  }
  process.once('SIGTERM', () => void shutdown('SIGTERM'))
  process.once('SIGINT', () => void shutdown('SIGINT'))
}

main().catch((error: unknown) => {
  console.error('api failed to start:', error)
  process.exit(1)
})
