// The rules process: npm run rules. Evaluates the threshold rules of the rules topic (written through the
// api, or imported from an alerts engine with RULES_FROM_ENGINE=true) and sets or clears their alarms.
// The only module that reads the environment, opens sockets and handles signals.
import type { AddressInfo } from 'node:net'
import { activationSchema } from '@herald/shared/alarms/schemas'
import { loadConfig } from '@herald/shared/config'
import { ConfigTopicStore } from '@herald/shared/config-topics/store'
import { ConfigError } from '@herald/shared/errors'
import { createHealthServer } from '@herald/shared/health'
import { createKafka } from '@herald/shared/kafka'
import { createLogger } from '@herald/shared/logger'
import { HeraldPartitioner } from '@herald/shared/partitioner'
import { checkRedisDurability, createRedis } from '@herald/shared/redis/client'
import { redisKeys } from '@herald/shared/redis/keys'
import { ruleSchema } from '@herald/shared/rules/schemas'
import { rulesTopicName, rulesTopicSpec } from '@herald/shared/rules/topics'
import { alarmTopicNames, alarmTopicSpecs, ensureTopics } from '@herald/shared/topics'
import dotenv from 'dotenv'
import { importEngineRules } from './engine-import.ts'
import { RulesEvaluator } from './evaluator.ts'
import { createRulesMetrics } from './metrics.ts'

dotenv.config({ quiet: true })

export async function main(): Promise<void> {
  let config: ReturnType<typeof loadConfig>
  try {
    config = loadConfig(process.env, 'rules')
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`rules: ${error.message}`)
      process.exit(1)
    }
    throw error
  }
  const logger = createLogger({ service: 'rules', level: config.logLevel })
  if (!config.rules.prometheusUrl && !config.rules.alertsEngineUrl)
    logger.warn('neither PROMETHEUS_URL nor ALERTS_ENGINE_URL is set: every rule query will fail')

  const redis = createRedis(config.redisUrl, {}, config.redisClusterNodes)
  redis.on('error', (error) => logger.warn({ err: error }, 'redis connection error'))
  await redis.connect()
  await checkRedisDurability(redis, logger)

  const kafka = createKafka({ brokers: config.kafka.brokers, clientId: 'herald-rules', logger })
  const rulesTopic = rulesTopicName(config.keyPrefix)
  const alarmTopics = alarmTopicNames(config.keyPrefix)
  const admin = kafka.admin()
  await admin.connect()
  await ensureTopics(admin, {
    specs: [
      rulesTopicSpec(rulesTopic, config.topics.replication),
      ...alarmTopicSpecs(alarmTopics, config.topics.replication),
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
  const groupPrefix = `${config.keyPrefix}.rules`
  const activations = new ConfigTopicStore(kafka, {
    topic: alarmTopics.activations,
    schema: activationSchema,
    producer,
    logger,
    groupPrefix,
  })
  const rulesStore = config.rules.fromEngine
    ? new ConfigTopicStore(kafka, { topic: rulesTopic, schema: ruleSchema, producer, logger, groupPrefix })
    : undefined
  const metrics = createRulesMetrics()
  const evaluator = new RulesEvaluator({
    kafka,
    redis,
    keys: redisKeys(config.keyPrefix),
    config,
    logger,
    metrics,
    topics: { rules: rulesTopic, registered: alarmTopics.registered, activations: alarmTopics.activations },
    groupId: `${config.keyPrefix}.rules`,
    activations,
  })

  const health = createHealthServer(metrics.registry, {
    live: () => true,
    ready: () => {
      const owned = evaluator.ownedPartitions
      const loaded = evaluator.loadedPartitions
      const ok =
        evaluator.running && activations.ready && loaded.length === owned.length && redis.status === 'ready'
      return { ok, details: { consumer: evaluator.running, redis: redis.status, owned, loaded } }
    },
  })
  await new Promise<void>((resolve) => health.listen(config.metricsPort, resolve))
  const port = (health.address() as AddressInfo).port

  const stop = new AbortController()
  let importer: NodeJS.Timeout | undefined
  let stopping = false
  const shutdown = async (signal: string) => {
    if (stopping) return
    stopping = true
    stop.abort()
    clearInterval(importer)
    logger.info({ signal }, 'shutting down: finishing the evaluations in flight')
    const bound = setTimeout(() => process.exit(1), config.shutdownTimeoutMs + 5000)
    try {
      await evaluator.stop()
      await Promise.all([activations.stop(), rulesStore?.stop()])
      await producer.disconnect().catch(() => {})
      await redis.quit().catch(() => redis.disconnect())
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

  for (const store of [activations, rulesStore]) {
    for (let attempt = 1; store && !stopping; attempt++) {
      try {
        await store.start()
        await store.whenReady()
        break
      } catch (error) {
        logger.warn({ err: error, topic: store.topic, attempt }, 'topic not read yet; retrying')
        await new Promise((r) => setTimeout(r, Math.min(5000, 500 * attempt)))
      }
    }
  }
  if (stopping) return
  await evaluator.start((error) => {
    logger.fatal({ err: error }, 'kafkajs consumer crashed for good; exiting')
    process.exit(1)
  })
  const engineUrl = config.rules.alertsEngineUrl
  if (rulesStore && engineUrl) {
    const importOnce = async () => {
      // One importer at a time: the owner of partition 0 of the rules topic.
      if (stopping || !evaluator.ownedPartitions.includes(0)) return
      await importEngineRules(engineUrl, rulesStore, logger, stop.signal).catch((error: unknown) =>
        logger.warn({ err: error }, 'importing the engine rules failed; trying at the next refresh'),
      )
    }
    importer = setInterval(() => void importOnce(), config.rules.refreshSeconds * 1000)
    setTimeout(() => void importOnce(), 1000)
  }
  logger.info(
    {
      metricsPort: port,
      topic: rulesTopic,
      group: `${config.keyPrefix}.rules`,
      fromEngine: config.rules.fromEngine,
    },
    `rules running; metrics on http://127.0.0.1:${port}/metrics`,
  )
}

if (import.meta.main) {
  main().catch((error: unknown) => {
    console.error('rules failed to start:', error)
    process.exit(1)
  })
}
