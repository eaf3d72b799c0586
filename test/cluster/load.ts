// For the failover tests on the clustered stack: the api (in this process) and an email distributor of a
// test namespace, and a steady stream of POSTs whose answers are counted while a server is killed.
import { loadConfig } from '@herald/shared/config'
import { createLogger } from '@herald/shared/logger'
import { type RunningApi, startApi } from '../../api/src/server.ts'
import type { TestContext } from '../support/context.ts'
import { serviceEnv, type TestNamespace } from '../support/fixtures.ts'
import { eventually, type ServiceProcess } from '../support/service-process.ts'

export interface Pipeline {
  ns: TestNamespace
  api: RunningApi
  distributors: ServiceProcess[]
}

/** A namespace with replicated topics, the api and two email distributors that claimed their partitions. */
export async function startPipeline(ctx: TestContext, label: string): Promise<Pipeline> {
  const ns = await ctx.setup(label)
  const env = serviceEnv(ns, { SMTP_URL: ctx.smtp.url }, { PORT: '0', LOG_LEVEL: 'silent' })
  const api = await startApi(loadConfig(env, 'api'), createLogger({ service: 'api', level: 'silent' }))
  const distributors = [1, 2].map((n) => ctx.distributor(ns, `${label}-${n}`, { CHANNEL: 'email' }))
  ctx.teardown(async () => {
    for (const d of distributors) d.kill('SIGTERM')
    await Promise.all(distributors.map((d) => exitedOrKilled(d)))
    await api.stop()
  })
  await Promise.all(distributors.map((d) => ctx.claimed(d)))
  return { ns, api, distributors }
}

/**
 * Longer than the distributors' shutdown bound (SHUTDOWN_TIMEOUT_MS, 20 s) and their last flush. A
 * distributor that is not gone by then is SIGKILLed and named: a stuck shutdown must not hold the file, and
 * the next test files on the cluster, for the test timeout (issue 20: kafkajs spun at full CPU in one).
 */
const stopBoundMs = 45_000

async function exitedOrKilled(d: ServiceProcess): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), stopBoundMs)
  })
  const how = await Promise.race([d.exited, late]).finally(() => clearTimeout(timer))
  if (how !== 'late') return
  console.error(`${d.name}: not stopped ${stopBoundMs / 1000} s after SIGTERM; SIGKILLed`)
  d.kill('SIGKILL')
  await d.exited
}

export interface Load {
  /** Ids answered 202, with the time of the answer. */
  readonly accepted: ReadonlyArray<{ id: string; at: number }>
  /** Answers by HTTP status; `network` for a request that got none. */
  readonly answers: ReadonlyMap<string, number>
  /** Resolves once `count` more ids were accepted after this call. */
  acceptedMore(count: number, timeoutMs: number): Promise<void>
  stop(): Promise<void>
}

/** `workers` loops posting email notifications one after another until `stop`. */
export function startLoad(api: RunningApi, label: string, workers = 3): Load {
  const accepted: Array<{ id: string; at: number }> = []
  const answers = new Map<string, number>()
  let running = true
  let sent = 0
  const count = (what: string) => answers.set(what, (answers.get(what) ?? 0) + 1)
  const worker = async () => {
    while (running) {
      const n = sent++
      try {
        const r = await fetch(`${api.url}/api/v1/notification`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            channel: 'email',
            to: `user${n % 50}@example.com`,
            subject: `${label} ${n}`,
            message: `load ${n}`,
          }),
          signal: AbortSignal.timeout(30_000),
        })
        count(String(r.status))
        const body = (await r.json().catch(() => ({}))) as { id?: string }
        if (r.status === 202 && body.id) accepted.push({ id: body.id, at: Date.now() })
        // A 503 is the api saying "not now": back off a little, as a client would.
        if (r.status !== 202) await new Promise((resolve) => setTimeout(resolve, 200))
      } catch {
        count('network')
        await new Promise((resolve) => setTimeout(resolve, 200))
      }
    }
  }
  const loops = Array.from({ length: workers }, worker)
  return {
    accepted,
    answers,
    async acceptedMore(more, timeoutMs) {
      const target = accepted.length + more
      await eventually(
        `${more} more accepted`,
        async () => accepted.length >= target || undefined,
        timeoutMs,
        50,
      )
    },
    async stop() {
      running = false
      await Promise.all(loops)
    },
  }
}

export interface Tally {
  accepted: number
  lost: string[]
  /** Deliveries beyond the first of an id. */
  duplicates: number
}

/** Waits until every accepted id reached the file's SMTP stand-in (bounded), then counts lost and duplicates. */
export async function tallyDeliveries(
  ctx: TestContext,
  ids: readonly string[],
  timeoutMs: number,
): Promise<Tally> {
  const counts = () => {
    const seen = new Map<string, number>()
    // The api's ids carry no namespace prefix: every message of the file's own SMTP stand-in counts.
    for (const m of ctx.smtp.messages()) if (m.heraldId) seen.set(m.heraldId, (seen.get(m.heraldId) ?? 0) + 1)
    return seen
  }
  await eventually(
    `all ${ids.length} accepted ids delivered`,
    async () => {
      const seen = counts()
      return ids.every((id) => seen.has(id)) || undefined
    },
    timeoutMs,
    250,
  ).catch(() => {})
  const seen = counts()
  return {
    accepted: ids.length,
    lost: ids.filter((id) => !seen.has(id)),
    duplicates: [...seen.values()].reduce((sum, n) => sum + n - 1, 0),
  }
}

export const describeAnswers = (answers: ReadonlyMap<string, number>): string =>
  [...answers]
    .sort()
    .map(([status, n]) => `${status}: ${n}`)
    .join(', ')
