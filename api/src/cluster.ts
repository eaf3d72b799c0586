// API_WORKERS > 1: the api as a node:cluster primary and its workers, sharing the port (round-robin: the
// primary accepts connections and hands each to a worker). The primary serves no HTTP; it forks, restarts
// and stops the workers, and answers their questions over IPC:
// - GET /metrics on any worker: the worker asks the primary, which asks every worker for its registry
//   (getMetricsAsJSON), sums them with prom-client's AggregatorRegistry.aggregate and adds its own
//   metrics (workers, restarts). A worker that does not answer fails the scrape (503) rather than leaving
//   its counters out (a sum that drops would read as a counter reset).
// - GET /readyz on any worker: the primary asks every worker for its own readiness; ready only when every
//   worker is listening and ready (a starting, frozen or unready worker makes every worker answer 503).
// - SIGTERM or SIGINT to the primary: SIGTERM to every worker, which stops as the single process does
//   (finishes its requests in flight); the primary exits 0 when all exited cleanly, 1 if one did not or
//   had to be killed at SHUTDOWN_TIMEOUT_MS (plus a grace, so that a worker's own bound comes first).
// - A worker that exits unexpectedly is replaced at once; more than `crashLoopLimit` such exits within a
//   minute stop the whole api (exit 1), so that the supervisor's own backoff takes over.
import cluster, { type Worker } from 'node:cluster'
import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import type { Logger } from '@herald/shared/logger'
import { AggregatorRegistry, Counter, Gauge, Registry } from 'prom-client'
import type { ClusterView, Readiness } from './app.ts'

// --- How many workers -------------------------------------------------------------------------------------

/**
 * Whole cores a cgroup v2 `cpu.max` ("<quota> <period>", or "max <period>") allows: the quota over the
 * period, rounded down, at least 1. Undefined when there is no limit or the text is not cpu.max.
 */
export function coresFromCpuMax(text: string): number | undefined {
  const match = /^\s*(max|\d+)\s+(\d+)\s*$/.exec(text)
  if (!match || match[1] === 'max') return undefined
  const quota = Number(match[1])
  const period = Number(match[2])
  if (!(period > 0)) return undefined
  return Math.max(1, Math.floor(quota / period))
}

/** `auto`: the cores the process may use, the fewest of the CPUs it may run on and each cgroup's quota. */
export function autoWorkers(available: number, cpuMaxes: readonly string[]): number {
  let cores = Math.max(1, available)
  for (const text of cpuMaxes) cores = Math.min(cores, coresFromCpuMax(text) ?? cores)
  return cores
}

/** cpu.max of the process's cgroup (v2) and of each of its ancestors that has one. */
function cgroupCpuMaxes(): string[] {
  const read = (file: string) => {
    try {
      return readFileSync(file, 'utf8')
    } catch {
      return undefined
    }
  }
  // "0::/some/path" on cgroup v2; "/" inside a container with its own cgroup namespace.
  const own = /^0::(\/.*)$/m.exec(read('/proc/self/cgroup') ?? '')?.[1] ?? '/'
  const found: string[] = []
  const parts = own.split('/').filter(Boolean)
  for (let depth = parts.length; depth >= 0; depth--) {
    const dir = ['/sys/fs/cgroup', ...parts.slice(0, depth)].join('/')
    const text = read(`${dir}/cpu.max`)
    if (text !== undefined) found.push(text)
  }
  return found
}

export function workerCount(setting: number | 'auto'): number {
  return setting === 'auto' ? autoWorkers(availableParallelism(), cgroupCpuMaxes()) : setting
}

// --- Questions over IPC -----------------------------------------------------------------------------------

interface Ask {
  herald: 'ask'
  id: number
  what: string
}
interface Reply {
  herald: 'reply'
  id: number
  value?: unknown
  error?: string
}
type Message = Ask | Reply | { herald: 'up' }

function isMessage(m: unknown): m is Message {
  return typeof m === 'object' && m !== null && typeof (m as { herald?: unknown }).herald === 'string'
}

/** Questions sent and not answered yet, each failing at its timeout. */
class Questions {
  #next = 0
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>()

  ask(send: (m: Ask, done: (error: Error | null) => void) => void, what: string, timeoutMs: number) {
    const id = this.#next++
    return new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id)
        reject(new Error(`no answer to ${what} within ${timeoutMs} ms`))
      }, timeoutMs)
      const settle = (fn: () => void) => {
        clearTimeout(timer)
        this.#pending.delete(id)
        fn()
      }
      this.#pending.set(id, {
        resolve: (v) => settle(() => resolve(v)),
        reject: (e) => settle(() => reject(e)),
      })
      try {
        send({ herald: 'ask', id, what }, (error) => {
          if (error) this.#pending.get(id)?.reject(error)
        })
      } catch (error) {
        this.#pending.get(id)?.reject(error as Error)
      }
    })
  }

  settle(reply: Reply): void {
    const pending = this.#pending.get(reply.id)
    if (!pending) return // answered after its timeout
    if (reply.error !== undefined) pending.reject(new Error(reply.error))
    else pending.resolve(reply.value)
  }
}

function answer(
  ask: Ask,
  handlers: Record<string, () => Promise<unknown>>,
  send: (reply: Reply) => void,
): void {
  const handler = handlers[ask.what]
  const reply = (r: Omit<Reply, 'herald' | 'id'>) => {
    try {
      send({ herald: 'reply', id: ask.id, ...r })
    } catch {
      // The other side is gone: nobody waits for this answer.
    }
  }
  if (!handler) {
    reply({ error: `unknown question ${ask.what}` })
    return
  }
  handler().then(
    (value) => reply({ value }),
    (error: unknown) => reply({ error: String((error as Error)?.message ?? error) }),
  )
}

// --- The primary ------------------------------------------------------------------------------------------

export interface PrimaryOptions {
  workers: number
  shutdownTimeoutMs: number
  logger: Logger
  /** Unexpected worker exits within a minute beyond which the api stops (default: the larger of 5 and workers). */
  crashLoopLimit?: number
}

const readinessTimeoutMs = 2500
const metricsTimeoutMs = 4000
/** Between the workers' own shutdown bound and the primary's SIGKILL. */
const shutdownGraceMs = 2000
const crashLoopWindowMs = 60_000

/** Runs this process as the cluster's primary until it is stopped (it exits the process itself). */
export function runPrimary(options: PrimaryOptions): void {
  const { workers, logger } = options
  const crashLoopLimit = options.crashLoopLimit ?? Math.max(5, workers)
  const slots = new Map<number, { worker: Worker; up: boolean }>()
  const questions = new Questions()
  const exits: number[] = []
  let stopping = false
  let failed = false
  let announced = false

  const own = createPrimaryMetrics(slots)

  const ask = (worker: Worker, what: string, timeoutMs: number) =>
    questions.ask(
      (m, done) => {
        if (!worker.isConnected()) throw new Error('worker disconnected')
        worker.send(m, done)
      },
      what,
      timeoutMs,
    )

  const gatherMetrics = async (): Promise<string> => {
    const up = [...slots.values()].filter((s) => s.up)
    const registries = await Promise.all(up.map((s) => ask(s.worker, 'metrics', metricsTimeoutMs)))
    const all = [
      ...(registries as Parameters<typeof AggregatorRegistry.aggregate>[0]),
      await own.getMetricsAsJSON(),
    ]
    return AggregatorRegistry.aggregate(all).metrics()
  }

  const gatherReadiness = async (): Promise<Readiness> => {
    const each = await Promise.all(
      [...slots.values()].map(async ({ worker, up }): Promise<Readiness> => {
        const who = { worker: worker.id, pid: worker.process.pid }
        if (stopping) return { ready: false, body: { ...who, status: 'stopping' } }
        if (!up) return { ready: false, body: { ...who, status: 'starting' } }
        try {
          const r = (await ask(worker, 'readiness', readinessTimeoutMs)) as Readiness
          return { ready: r.ready, body: { ...who, ...r.body } }
        } catch {
          return { ready: false, body: { ...who, status: 'unresponsive' } }
        }
      }),
    )
    const ready = each.length === workers && each.every((r) => r.ready)
    const field = (name: string, good: string, bad: string) => {
      const seen = each.map((r) => r.body[name]).filter((v) => v !== undefined)
      return seen.length === 0 ? {} : { [name]: seen.every((v) => v === good) ? good : bad }
    }
    return {
      ready,
      body: {
        status: ready ? 'ready' : 'not_ready',
        ...field('kafka', 'ok', 'unreachable'),
        ...field('redis', 'ok', 'degraded'),
        ...field('config', 'loaded', 'loading'),
        workers: each.map((r) => r.body),
      },
    }
  }

  const fork = () => {
    const worker = cluster.fork()
    slots.set(worker.id, { worker, up: false })
    worker.on('message', (message: unknown) => {
      if (!isMessage(message)) return
      if (message.herald === 'reply') questions.settle(message)
      else if (message.herald === 'up') {
        const slot = slots.get(worker.id)
        if (slot) slot.up = true
        logger.info({ worker: worker.id, pid: worker.process.pid }, 'api worker listening')
        if (!announced && [...slots.values()].filter((s) => s.up).length === workers) {
          announced = true
          logger.info({ workers }, `all ${workers} api workers listening`)
        }
      } else if (message.herald === 'ask') {
        answer(
          message,
          { metrics: gatherMetrics, readiness: gatherReadiness },
          (reply) => worker.isConnected() && worker.send(reply),
        )
      }
    })
  }

  const finish = () => {
    logger.info({ failed }, failed ? 'stopped; a worker did not stop cleanly' : 'stopped')
    process.exit(failed ? 1 : 0)
  }

  const shutdown = (reason: string) => {
    if (stopping) return
    stopping = true
    logger.info(
      { reason, workers: slots.size },
      'shutting down: every worker finishes its requests in flight',
    )
    for (const { worker } of slots.values()) worker.process.kill('SIGTERM')
    const bound = setTimeout(() => {
      const left = [...slots.values()].map((s) => ({ worker: s.worker.id, pid: s.worker.process.pid }))
      logger.error({ workers: left }, 'shutdown bound reached; killing the workers still running')
      failed = true
      for (const { worker } of slots.values()) worker.process.kill('SIGKILL')
    }, options.shutdownTimeoutMs + shutdownGraceMs)
    bound.unref()
    if (slots.size === 0) finish()
  }

  cluster.on('exit', (worker, code, signal) => {
    slots.delete(worker.id)
    const who = { worker: worker.id, pid: worker.process.pid, code, signal }
    if (stopping) {
      // SIGTERM before the worker handled signals (still starting): it had no requests to finish.
      const clean = code === 0 || signal === 'SIGTERM'
      if (!clean) failed = true
      logger.info(who, clean ? 'api worker stopped' : 'api worker stopped uncleanly')
      if (slots.size === 0) finish()
      return
    }
    own.restarts.inc()
    const now = Date.now()
    exits.push(now)
    while ((exits[0] ?? now) <= now - crashLoopWindowMs) exits.shift()
    if (exits.length > crashLoopLimit) {
      logger.fatal(
        { ...who, exits: exits.length, limit: crashLoopLimit },
        `crash loop: ${exits.length} api workers exited unexpectedly within a minute; stopping the api`,
      )
      failed = true
      shutdown('crash loop')
      return
    }
    logger.error(who, 'api worker exited unexpectedly; starting another')
    fork()
  })

  logger.info({ workers, pid: process.pid }, `api primary: starting ${workers} workers on one port`)
  for (let i = 0; i < workers; i++) fork()
  process.once('SIGTERM', () => shutdown('SIGTERM'))
  process.once('SIGINT', () => shutdown('SIGINT'))
}

function createPrimaryMetrics(slots: Map<number, { up: boolean }>) {
  const registry = new Registry()
  new Gauge({
    name: 'herald_api_workers',
    help: 'api worker processes by state (up: listening; starting: forked, not listening yet).',
    labelNames: ['state'] as const,
    registers: [registry],
    collect() {
      const up = [...slots.values()].filter((s) => s.up).length
      this.set({ state: 'up' }, up)
      this.set({ state: 'starting' }, slots.size - up)
    },
  })
  const restarts = new Counter({
    name: 'herald_api_worker_restarts_total',
    help: 'api workers that exited unexpectedly and were replaced.',
    registers: [registry],
  })
  return Object.assign(registry, { restarts })
}

// --- A worker ---------------------------------------------------------------------------------------------

/**
 * This process as a cluster worker: `view` answers /metrics and /readyz for the whole cluster (through
 * the primary); `serve` answers the primary's questions about this worker and tells it that it listens.
 */
export function clusterWorker(): {
  view: ClusterView
  serve(local: { registry: Registry; readiness(): Promise<Readiness> }): void
} {
  const id = cluster.worker?.id ?? 0
  const questions = new Questions()
  let handlers: Record<string, () => Promise<unknown>> = {}
  const send = (m: Message, done?: (error: Error | null) => void) => {
    if (!process.send || !process.connected) throw new Error('no primary')
    process.send(m, undefined, {}, done)
  }
  process.on('message', (message: unknown) => {
    if (!isMessage(message)) return
    if (message.herald === 'reply') questions.settle(message)
    else if (message.herald === 'ask') answer(message, handlers, (reply) => send(reply))
  })
  const askPrimary = (what: string) => questions.ask(send, what, metricsTimeoutMs + 1000)
  return {
    view: {
      workerId: id,
      metrics: async () => (await askPrimary('metrics')) as string,
      readiness: async () => (await askPrimary('readiness')) as Readiness,
    },
    serve(local) {
      handlers = { metrics: () => local.registry.getMetricsAsJSON(), readiness: () => local.readiness() }
      send({ herald: 'up' })
    },
  }
}
