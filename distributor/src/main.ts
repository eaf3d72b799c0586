// The distributor process: CHANNEL=email|sms|slack|webhook npm run distributor. The only module that reads
// the environment, opens sockets and handles signals.
import type { AddressInfo } from 'node:net'
import { channels, loadConfig } from '@herald/shared/config'
import { ConfigError } from '@herald/shared/errors'
import { createHealthServer } from '@herald/shared/health'
import { createKafka } from '@herald/shared/kafka'
import { createLogger } from '@herald/shared/logger'
import { checkRedisDurability, createRedis, defineScripts, sharedScripts } from '@herald/shared/redis/client'
import { redisKeys } from '@herald/shared/redis/keys'
import { StatusStore } from '@herald/shared/status'
import { ensureTopics, topicNames, topicSpecs } from '@herald/shared/topics'
import dotenv from 'dotenv'
import type { Channel } from './channels/channel.ts'
import { createChannel } from './channels/index.ts'
import { Distributor, type ProtocolFaults } from './consumer.ts'
import { createDistributorMetrics } from './metrics.ts'

dotenv.config({ quiet: true })

/** What a caller may compose into the process; production passes nothing (tests use test/support/entries/). */
export interface DistributorMainOptions {
  /** Wraps the channel the configuration built (a test adds a crash point this way). */
  wrapChannel?: (channel: Channel) => Channel
  /** Breaks one rule of the offset protocol, for negative controls. */
  faults?: ProtocolFaults
  /** Logged once at start, so a run with faults is never mistaken for a real one. */
  warning?: string
}

export async function main(options: DistributorMainOptions = {}): Promise<void> {
  let config: ReturnType<typeof loadConfig>
  try {
    config = loadConfig(process.env, 'distributor')
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`distributor: ${error.message}`)
      process.exit(1)
    }
    throw error
  }
  const channelName = config.channel ?? 'email'
  const logger = createLogger({ service: 'distributor', level: config.logLevel, channel: channelName })
  if (options.warning) logger.warn(options.warning)

  const redis = createRedis(config.redisUrl, {}, config.redisClusterNodes)
  redis.on('error', (error) => logger.warn({ err: error }, 'redis connection error'))
  defineScripts(redis, sharedScripts)
  await redis.connect()
  await checkRedisDurability(redis, logger)

  const kafka = createKafka({
    brokers: config.kafka.brokers,
    clientId: `herald-distributor-${channelName}`,
    logger,
  })
  const names = topicNames(config.topics.prefix)
  const admin = kafka.admin()
  await admin.connect()
  await ensureTopics(admin, {
    specs: topicSpecs(names, channels, config.topics.replication),
    partitions: config.topics.partitions,
    replication: config.topics.replication,
    brokers: config.kafka.brokers,
    logger,
  })
  await admin.disconnect()

  const metrics = createDistributorMetrics({ channel: channelName })
  const built = createChannel(config)
  const channel = options.wrapChannel ? options.wrapChannel(built) : built
  const keys = redisKeys(config.keyPrefix)
  const distributor = new Distributor({
    kafka,
    redis,
    keys,
    statuses: new StatusStore(redis, keys, config.statusTtlSeconds),
    channel,
    config,
    logger,
    metrics,
    topics: {
      main: names.main(channelName),
      deadLetter: names.deadLetter(channelName),
      events: names.events,
    },
    groupId: `${config.keyPrefix}.distributor.${channelName}`,
    ...(options.faults ? { faults: options.faults } : {}),
  })

  const health = createHealthServer(metrics.registry, {
    live: () => true,
    ready: () => {
      const redisOk = redis.status === 'ready'
      return {
        ok: distributor.running && redisOk,
        details: {
          consumer: distributor.running,
          redis: redis.status,
          partitions: distributor.heldPartitions,
        },
      }
    },
  })
  await new Promise<void>((resolve) => health.listen(config.metricsPort, resolve))
  const port = (health.address() as AddressInfo).port

  let stopping = false
  const shutdown = async (signal: string) => {
    if (stopping) return
    stopping = true
    logger.info({ signal }, 'shutting down: finishing in-flight deliveries')
    const started = Date.now()
    try {
      const { abandoned } = await distributor.stop()
      await channel.close()
      await redis.quit().catch(() => redis.disconnect())
      health.close()
      if (abandoned > 0) {
        logger.warn(
          { ms: Date.now() - started, abandoned },
          'stopped with deliveries abandoned at the shutdown bound; they will be delivered again',
        )
        process.exit(1)
      }
      logger.info({ ms: Date.now() - started }, 'stopped')
      process.exit(0)
    } catch (error) {
      logger.error({ err: error }, 'shutdown failed')
      process.exit(1)
    }
  }
  process.once('SIGTERM', () => void shutdown('SIGTERM'))
  process.once('SIGINT', () => void shutdown('SIGINT'))

  await distributor.start((error) => {
    logger.fatal({ err: error }, 'kafkajs consumer crashed for good; exiting')
    process.exit(1)
  })
  logger.info(
    {
      metricsPort: port,
      topic: names.main(channelName),
      group: `${config.keyPrefix}.distributor.${channelName}`,
    },
    `distributor ${channelName} running; metrics on http://127.0.0.1:${port}/metrics`,
  )
}

if (import.meta.main) {
  main().catch((error: unknown) => {
    console.error('distributor failed to start:', error)
    process.exit(1)
  })
}
