// Builds and starts the api from a validated config: Redis, topics, the Kafka producer, the express app,
// the HTTP server. main.ts adds the environment and signals; tests call startApi directly.
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { AlarmPartitioner } from '@herald/shared/alarms/partitioner'
import { createAlarmStores, startAlarmStores, stopAlarmStores } from '@herald/shared/alarms/stores'
import { type Config, channels } from '@herald/shared/config'
import { ConfigTopicStore } from '@herald/shared/config-topics/store'
import {
  createConfigStores,
  startConfigStores,
  startTopicStores,
  stopConfigStores,
} from '@herald/shared/config-topics/stores'
import { DeadLetterStore } from '@herald/shared/dead-letters'
import { ConfigError } from '@herald/shared/errors'
import { createKafka } from '@herald/shared/kafka'
import type { Logger } from '@herald/shared/logger'
import { HeraldPartitioner } from '@herald/shared/partitioner'
import { checkRedisDurability, createRedis, defineScripts, sharedScripts } from '@herald/shared/redis/client'
import { redisKeys } from '@herald/shared/redis/keys'
import { ruleSchema } from '@herald/shared/rules/schemas'
import { rulesTopicName, rulesTopicSpec } from '@herald/shared/rules/topics'
import { StatusStore } from '@herald/shared/status'
import {
  alarmEventTopicName,
  alarmEventTopicSpec,
  alarmTopicNames,
  alarmTopicSpecs,
  configTopicNames,
  configTopicSpecs,
  ensureTopics,
  topicNames,
  topicSpecs,
} from '@herald/shared/topics'
import type { Registry } from 'prom-client'
import { type AppDeps, type ClusterView, createApp, type Readiness, readinessOf } from './app.ts'
import { ChannelLagReader } from './channels.ts'
import { IdempotencyStore } from './idempotency.ts'
import { createApiMetrics } from './metrics.ts'
import { NotificationProducer } from './producer.ts'

export interface RunningApi {
  server: Server
  port: number
  url: string
  /** Stops accepting, finishes requests in flight, flushes the producer, closes connections. */
  stop(): Promise<void>
  /** This process's readiness (what /readyz answers when it is alone). */
  readiness(): Promise<Readiness>
  /** This process's metrics. */
  registry: Registry
}

export async function startApi(
  config: Config,
  logger: Logger,
  options: { leakForTests?: boolean; cluster?: ClusterView } = {},
): Promise<RunningApi> {
  const deadline = config.kafka.produceTimeoutMs

  const redis = createRedis(
    config.redisUrl,
    { maxRetriesPerRequest: 1, enableOfflineQueue: false },
    config.redisClusterNodes,
  )
  redis.on('error', (error) => logger.debug({ err: error }, 'redis connection error'))
  defineScripts(redis, sharedScripts)
  await redis.connect().catch((error: unknown) => {
    logger.warn(
      { err: error },
      'Redis unreachable at start: accepting plain sends; idempotency and status reads answer 503',
    )
  })
  if (redis.status === 'ready') await checkRedisDurability(redis, logger)

  // Admin work (topics, readiness, dead letters) runs on kafkajs' default timeouts.
  const kafka = createKafka({ brokers: config.kafka.brokers, clientId: 'herald-api', logger })
  // The producer gets its own client so its timeouts can sit under the produce deadline: a request that
  // hangs (a frozen broker) gives up after half the deadline, leaving room for one retry, and quick
  // failures (refused connection, a moved leader) are retried a few times with short backoffs. The
  // deadline timer in NotificationProducer answers the request whatever kafkajs does; these settings bound
  // what kafkajs keeps doing in the background afterwards (about 4 × requestTimeout plus backoffs).
  const requestTimeout = Math.max(250, Math.floor(deadline / 2))
  const producerRetry = {
    retries: 3,
    initialRetryTime: 100,
    maxRetryTime: Math.max(200, Math.floor(deadline / 4)),
  }
  const connectionTimeout = Math.min(3000, requestTimeout)
  const producerKafka = createKafka({
    brokers: config.kafka.brokers,
    clientId: 'herald-api-producer',
    logger,
    overrides: {
      requestTimeout,
      connectionTimeout,
      retry: producerRetry,
    },
  })
  // How long kafkajs may go on with one write: every attempt may wait for a connection and a reply, with
  // backoffs between attempts; plus a margin. An Idempotency-Key stays pending that long at most (its
  // holder crashed if it never heard back), then a retry may take it over and write the same id again.
  const pendingWindowMs =
    (producerRetry.retries + 1) * (connectionTimeout + requestTimeout) +
    producerRetry.retries * producerRetry.maxRetryTime +
    deadline
  const names = topicNames(config.topics.prefix)
  const admin = kafka.admin()
  for (let attempt = 1; ; attempt++) {
    try {
      await admin.connect()
      await ensureTopics(admin, {
        specs: [
          ...topicSpecs(names, channels, config.topics.replication),
          ...configTopicSpecs(configTopicNames(config.keyPrefix), config.topics.replication),
          alarmEventTopicSpec(alarmEventTopicName(config.keyPrefix), config.topics.replication),
          ...alarmTopicSpecs(alarmTopicNames(config.keyPrefix), config.topics.replication),
          rulesTopicSpec(rulesTopicName(config.keyPrefix), config.topics.replication),
        ],
        partitions: config.topics.partitions,
        replication: config.topics.replication,
        brokers: config.kafka.brokers,
        logger,
      })
      break
    } catch (error) {
      if (error instanceof ConfigError || (error as { code?: string }).code === 'HERALD_TOPIC_MISMATCH') {
        await admin.disconnect().catch(() => {})
        redis.disconnect()
        throw error
      }
      logger.warn({ err: error, attempt }, 'Kafka not ready at start; retrying')
      await sleep(Math.min(5000, 500 * attempt))
    }
  }
  const kafkaProducer = producerKafka.producer({
    allowAutoTopicCreation: false,
    createPartitioner: HeraldPartitioner,
    // kafkajs' idempotent producer is experimental (issue #1005) and retries forever by default.
    idempotent: false,
    maxInFlightRequests: 5,
    // Given here, not only on the client: without it kafkajs' producer replaces the client's retry count
    // with its own default of 5 (producer/index.js: `retry || { retries: 5 }`).
    retry: producerRetry,
  })
  await kafkaProducer.connect()
  // The alarm topics need their own partitioner: an override keyed `<name>/<kind>` goes to the partition of
  // <name>, where the processor that owns the alarm reads it.
  const alarmProducer = producerKafka.producer({
    allowAutoTopicCreation: false,
    createPartitioner: AlarmPartitioner,
    idempotent: false,
    maxInFlightRequests: 5,
    retry: producerRetry,
  })
  await alarmProducer.connect()

  const metrics = createApiMetrics()
  const producer = new NotificationProducer(kafkaProducer, {
    deadlineMs: deadline,
    // The broker answers (REQUEST_TIMED_OUT) before the client gives up on the request.
    ackTimeoutMs: Math.floor(requestTimeout * 0.8),
    onBatch: (records, seconds, error) => {
      metrics.produceBatchSize.observe(records)
      if (!error) metrics.produceDuration.observe(seconds)
    },
  })
  // Recipients, templates and routes: read from their topics in the background; /readyz waits for them.
  const configStores = createConfigStores(kafka, {
    names: configTopicNames(config.keyPrefix),
    producer: kafkaProducer,
    logger,
    groupPrefix: config.keyPrefix,
    ackTimeoutMs: Math.floor(requestTimeout * 0.8),
  })
  // Registrations, activations, overrides and effective states: likewise, every partition.
  const alarmStores = createAlarmStores(kafka, {
    names: alarmTopicNames(config.keyPrefix),
    producer: alarmProducer,
    logger,
    groupPrefix: config.keyPrefix,
    ackTimeoutMs: Math.floor(requestTimeout * 0.8),
  })
  // The rules: likewise. Keyed by rule name with the default partitioner, as the rules service expects (it
  // owns rules by partition).
  const ruleStore = new ConfigTopicStore(kafka, {
    topic: rulesTopicName(config.keyPrefix),
    schema: ruleSchema,
    producer: kafkaProducer,
    logger,
    groupPrefix: config.keyPrefix,
    ackTimeoutMs: Math.floor(requestTimeout * 0.8),
  })
  const storesAbort = new AbortController()
  void startConfigStores(configStores, { logger, signal: storesAbort.signal })
  void startAlarmStores(alarmStores, { logger, signal: storesAbort.signal })
  void startTopicStores([ruleStore], { logger, signal: storesAbort.signal })
  const keys = redisKeys(config.keyPrefix)
  const deadLetters = new DeadLetterStore(kafka, names, new StatusStore(redis, keys, config.statusTtlSeconds))
  let kafkaCheck = { at: 0, ok: true }
  const deps: AppDeps = {
    config,
    producer,
    redis,
    statuses: new StatusStore(redis, keys, config.statusTtlSeconds),
    idempotency: new IdempotencyStore(redis, keys, {
      pendingWindowMs,
      ttlSeconds: config.idempotencyTtlSeconds,
    }),
    topics: names,
    metrics,
    deadLetters,
    channelLag: new ChannelLagReader({
      admin,
      redis,
      keys,
      topics: names,
      channels,
      keyPrefix: config.keyPrefix,
    }),
    configStores,
    alarmStores,
    ruleStore,
    ...(options.leakForTests ? { leakForTests: true } : {}),
    ...(options.cluster ? { cluster: options.cluster } : {}),
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
  }
  const app = createApp(deps)
  const server = app.listen(config.port, '0.0.0.0')
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve)
    server.once('error', reject)
  })
  server.keepAliveTimeout = 65_000
  server.headersTimeout = 66_000
  server.requestTimeout = 30_000
  const port = (server.address() as AddressInfo).port
  return {
    server,
    port,
    url: `http://127.0.0.1:${port}`,
    registry: metrics.registry,
    readiness: () => readinessOf(deps),
    async stop() {
      // 'close' comes once every connection ended, so requests in flight (even one whose body is still
      // arriving) are answered first. A keep-alive connection busy at close() would stay open after its
      // answer until keepAliveTimeout: connections are closed as they become idle.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      server.closeIdleConnections()
      const sweep = setInterval(() => server.closeIdleConnections(), 100)
      await closed
      clearInterval(sweep)
      await producer.drain()
      storesAbort.abort()
      await Promise.all([stopConfigStores(configStores), stopAlarmStores(alarmStores), ruleStore.stop()])
      await kafkaProducer.disconnect().catch(() => {})
      await alarmProducer.disconnect().catch(() => {})
      await deadLetters.close().catch(() => {})
      await admin.disconnect().catch(() => {})
      await redis.quit().catch(() => redis.disconnect())
    },
  }
}
