// The local infrastructure as one unit: a Kafka broker and a Redis server sharing a data folder.
// Ports and folder come from the environment so tests can run private instances beside a developer's stack.
import { join, resolve } from 'node:path'
import { isKafkaReady, type KafkaInstance, kafkaPid, startKafka, stopKafka } from './kafka.ts'
import { defaultDataDir, isPortOpen } from './process.ts'
import { isRedisReady, type RedisInstance, redisPid, startRedis, stopRedis } from './redis.ts'

export interface Stack {
  dataDir: string
  kafka: KafkaInstance
  redis: RedisInstance
}

function portFrom(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name]
  if (raw === undefined || raw === '') return fallback
  const port = Number(raw)
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new Error(`${name} must be a TCP port, got "${raw}"`)
  return port
}

/** KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093), REDIS_PORT (6379), HERALD_DATA_DIR (.data/dev). */
export function stackFromEnv(env: NodeJS.ProcessEnv = process.env): Stack {
  const dataDir = env.HERALD_DATA_DIR ? resolve(env.HERALD_DATA_DIR) : defaultDataDir
  return defineStack({
    dataDir,
    kafkaPort: portFrom(env, 'KAFKA_PORT', 9092),
    controllerPort: portFrom(env, 'KAFKA_CONTROLLER_PORT', 9093),
    redisPort: portFrom(env, 'REDIS_PORT', 6379),
  })
}

export function defineStack(o: {
  dataDir: string
  kafkaPort: number
  controllerPort: number
  redisPort: number
  kafkaOverrides?: Record<string, string>
}): Stack {
  return {
    dataDir: o.dataDir,
    kafka: {
      port: o.kafkaPort,
      controllerPort: o.controllerPort,
      dataDir: join(o.dataDir, 'kafka'),
      ...(o.kafkaOverrides ? { overrides: o.kafkaOverrides } : {}),
    },
    redis: { port: o.redisPort, dataDir: join(o.dataDir, 'redis') },
  }
}

export interface StackUp {
  brokers: string
  redisUrl: string
  /** What this call started (false = it was already running and is left alone). */
  startedKafka: boolean
  startedRedis: boolean
}

/**
 * Starts Redis and Kafka in parallel; returns once both are ready. With `adoptRunning`, servers already
 * answering on the ports (started by someone else) are used as they are and left alone.
 */
export async function startStack(
  stack: Stack,
  log: (line: string) => void = () => {},
  options: { adoptRunning?: boolean } = {},
): Promise<StackUp> {
  if (options.adoptRunning) {
    const brokers = `127.0.0.1:${stack.kafka.port}`
    const [redisUp, kafkaUp] = await Promise.all([
      isRedisReady(stack.redis.port),
      isPortOpen(stack.kafka.port).then((open) => open && isKafkaReady(brokers, 10_000).catch(() => false)),
    ])
    if (redisUp && kafkaUp) {
      log('using the Kafka and Redis already running on their ports')
      return {
        brokers,
        redisUrl: `redis://127.0.0.1:${stack.redis.port}`,
        startedKafka: false,
        startedRedis: false,
      }
    }
  }
  const [redis, kafka] = await Promise.allSettled([
    startRedis(stack.redis, log),
    startKafka(stack.kafka, log),
  ])
  if (redis.status === 'rejected' || kafka.status === 'rejected') {
    // Leave nothing half-started behind.
    if (redis.status === 'fulfilled' && !redis.value.reused) await stopRedis(stack.redis)
    if (kafka.status === 'fulfilled' && !kafka.value.reused) await stopKafka(stack.kafka)
    const reasons = [redis, kafka].flatMap((r) =>
      r.status === 'rejected' ? [String(r.reason?.message ?? r.reason)] : [],
    )
    throw new Error(reasons.join('\n'))
  }
  return {
    brokers: kafka.value.brokers,
    redisUrl: redis.value.url,
    startedKafka: !kafka.value.reused,
    startedRedis: !redis.value.reused,
  }
}

export async function stopStack(stack: Stack, what = { kafka: true, redis: true }): Promise<string[]> {
  const lines: string[] = []
  if (what.kafka) lines.push(`Kafka: ${await stopKafka(stack.kafka)}`)
  if (what.redis) lines.push(`Redis: ${await stopRedis(stack.redis)}`)
  return lines
}

export function stackStatus(stack: Stack): { kafka?: number; redis?: number } {
  return { kafka: kafkaPid(stack.kafka), redis: redisPid(stack.redis) }
}
