// npm run infra:up | infra:down | infra:status — the local Kafka broker and Redis server, in the background.
// With `-- --cluster`: the clustered stack instead (three Kafka nodes, a six-node Redis Cluster).
import { clusterFromEnv, clusterStatus, startCluster, stopCluster } from './lib/cluster.ts'
import { ensureKafkaJars } from './lib/kafka.ts'
import { stackFromEnv, stackStatus, startStack, stopStack } from './lib/stack.ts'

const log = (line: string) => console.log(`[infra] ${line}`)

async function cluster(command: string | undefined): Promise<void> {
  const stack = clusterFromEnv()
  switch (command) {
    case 'up': {
      const started = Date.now()
      const up = await startCluster(stack, log)
      const secs = ((Date.now() - started) / 1000).toFixed(1)
      log(`Kafka cluster ${up.startedKafka ? 'started' : 'already running'}: KAFKA_BROKERS=${up.brokers}`)
      log(
        `Redis Cluster ${up.startedRedis ? 'started' : 'already running'}: REDIS_CLUSTER_NODES=${up.redisNodes}`,
      )
      log(`ready in ${secs} s (data in ${stack.dataDir}; stop with npm run infra:down -- --cluster)`)
      return
    }
    case 'down':
      for (const line of await stopCluster(stack)) log(line)
      return
    case 'status':
      for (const line of clusterStatus(stack)) log(line)
      return
    default:
      console.error('usage: node dev/infra.ts up|down|status --cluster')
      process.exitCode = 2
  }
}

async function main(command: string | undefined): Promise<void> {
  if (process.argv.includes('--cluster')) return cluster(command)
  const stack = stackFromEnv()
  switch (command) {
    case 'up': {
      const started = Date.now()
      const up = await startStack(stack, log)
      const secs = ((Date.now() - started) / 1000).toFixed(1)
      log(`Kafka ${up.startedKafka ? 'started' : 'already running'} on ${up.brokers}`)
      log(`Redis ${up.startedRedis ? 'started' : 'already running'} on ${up.redisUrl}`)
      log(`ready in ${secs} s (data in ${stack.dataDir}; stop with npm run infra:down)`)
      return
    }
    case 'down':
      for (const line of await stopStack(stack)) log(line)
      return
    case 'status': {
      const { kafka, redis } = stackStatus(stack)
      log(`Kafka: ${kafka ? `running (pid ${kafka}, port ${stack.kafka.port})` : 'not running'}`)
      log(`Redis: ${redis ? `running (pid ${redis}, port ${stack.redis.port})` : 'not running'}`)
      return
    }
    case 'jars':
      log(`Kafka jars in ${ensureKafkaJars(log)}`)
      return
    default:
      console.error('usage: node dev/infra.ts up|down|status|jars')
      process.exitCode = 2
  }
}

main(process.argv[2]).catch((error: Error) => {
  console.error(`[infra] ${error.message}`)
  process.exitCode = 1
})
