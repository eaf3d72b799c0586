// npm run test:cluster: the end-to-end and at-least-once tests, unchanged, and the failover tests of
// test/cluster/, on the clustered stack (three Kafka nodes, a Redis Cluster; see dev/lib/cluster.ts).
// Not part of npm test: three JVMs and six Redis nodes on a small machine take minutes. It starts the
// cluster when it is not running and stops it afterwards only when it started it. The single-node stack
// (9092/6379) is not touched. Arguments: parts of test file paths, as for npm test.
import { spawn } from 'node:child_process'
import { globSync } from 'node:fs'
import { clusterFromEnv, startCluster, stopCluster } from './lib/cluster.ts'
import { repoRoot } from './lib/process.ts'

const log = (line: string) => console.log(`[test:cluster] ${line}`)

/** Existing integration tests that run unchanged on the cluster (the test context reads the env below). */
const unchanged = ['test/e2e/channels.int.test.ts', 'test/distributor/at-least-once.int.test.ts']

function run(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: 'inherit', cwd: repoRoot, env })
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)))
    child.on('error', (error) => {
      console.error(error.message)
      resolve(1)
    })
  })
}

async function main(): Promise<number> {
  const filters = process.argv.slice(2).filter((a) => !a.startsWith('--'))
  const files = [
    ...unchanged,
    ...globSync('test/cluster/*.cluster-test.ts', { cwd: repoRoot }).sort(),
  ].filter((f) => filters.length === 0 || filters.some((part) => f.includes(part)))
  if (files.length === 0) {
    console.error(`[test:cluster] no test file path contains ${filters.map((p) => `"${p}"`).join(', ')}`)
    return 1
  }
  const stack = clusterFromEnv()
  const started = Date.now()
  log('starting the cluster stack (three Kafka nodes, six Redis nodes; a few minutes on two cores)')
  const up = await startCluster(stack, log)
  log(
    `cluster ready in ${((Date.now() - started) / 1000).toFixed(0)} s: ${up.brokers}; Redis ${up.redisNodes}`,
  )
  try {
    const first = up.redisNodes.split(',')[0]
    const env = {
      ...process.env,
      KAFKA_BROKERS: up.brokers,
      REDIS_URL: `redis://${first}`,
      REDIS_CLUSTER_NODES: up.redisNodes,
      TOPIC_REPLICATION: '3',
    }
    log(`${files.length} test files: ${files.join(', ')}`)
    return await run(
      process.execPath,
      ['--test', '--test-reporter=spec', '--test-timeout=600000', '--test-concurrency=1', ...files],
      env,
    )
  } finally {
    if (up.startedKafka || up.startedRedis) {
      for (const line of await stopCluster(stack)) log(`stopped: ${line}`)
    } else log('the cluster was running before: left running')
  }
}

main().then(
  (code) => {
    process.exitCode = code
  },
  (error: Error) => {
    console.error(`[test:cluster] ${error.stack ?? error.message}`)
    process.exitCode = 1
  },
)
