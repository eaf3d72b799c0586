// The api process: npm run api. The only module that reads the environment and handles signals.
// API_WORKERS > 1: this process becomes a node:cluster primary (cluster.ts) and each worker runs this same
// entry again, taking the single-process path below with cluster hooks.
import cluster from 'node:cluster'
import { loadConfig } from '@herald/shared/config'
import { ConfigError } from '@herald/shared/errors'
import { createLogger } from '@herald/shared/logger'
import dotenv from 'dotenv'
import { clusterWorker, runPrimary, workerCount } from './cluster.ts'
import { startApi } from './server.ts'

dotenv.config({ quiet: true })

/** What a caller may compose into the process; production passes nothing (tests use test/support/entries/). */
export interface ApiMainOptions {
  /** Retains memory per request, to show that the hostile-input memory bound can fail. */
  leakForTests?: boolean
}

export async function main(options: ApiMainOptions = {}): Promise<void> {
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
  const root = createLogger({ service: 'api', level: config.logLevel })
  const workers = cluster.isPrimary ? workerCount(config.apiWorkers) : 1
  // Said once: by the single process or by the primary, not by every worker.
  if (cluster.isPrimary && config.apiKeys.size === 0) {
    root.warn('API_KEYS is empty: the api accepts notifications from anyone (set API_KEYS=name:key,...)')
  }
  if (workers > 1) {
    runPrimary({
      workers,
      shutdownTimeoutMs: config.shutdownTimeoutMs,
      logger: root.child({ role: 'primary' }),
    })
    return
  }
  const worker = cluster.isWorker ? clusterWorker() : undefined
  const logger = worker ? root.child({ worker: worker.view.workerId, pid: process.pid }) : root
  const leakForTests = options.leakForTests === true
  if (leakForTests) logger.warn('TEST-ONLY LEAK: this api retains 64 KiB per request')
  const api = await startApi(config, logger, { leakForTests, ...(worker ? { cluster: worker.view } : {}) })
  logger.info({ port: api.port }, `api listening on http://127.0.0.1:${api.port}`)
  worker?.serve(api)

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
    await api.stop()
    logger.info('stopped')
    process.exit(0)
  }
  process.once('SIGTERM', () => void shutdown('SIGTERM'))
  process.once('SIGINT', () => void shutdown('SIGINT'))
}

if (import.meta.main) {
  main().catch((error: unknown) => {
    console.error('api failed to start:', error)
    process.exit(1)
  })
}
