// POST /api/v1/notification, POST /api/v1/notifications (batch), GET /api/v1/notification/:id.
import { hostname } from 'node:os'
import type { Config } from '@herald/shared/config'
import type { ConfigStores } from '@herald/shared/config-topics/stores'
import type { Logger } from '@herald/shared/logger'
import {
  encodeRecord,
  isRecipientInput,
  type NotificationInput,
  type NotificationRecord,
  type NotificationRequest,
  parseNotificationRequest,
  type RecipientInput,
  type RequestContext,
  recordVersion,
} from '@herald/shared/notification'
import type { Redis } from '@herald/shared/redis/client'
import { redisKeys } from '@herald/shared/redis/keys'
import type { StatusStore } from '@herald/shared/status'
import type { TopicNames } from '@herald/shared/topics'
import { type Request, type Response, Router } from 'express'
import { callerOf } from '../auth.ts'
import { ApiError, invalid, outcomeUnknown } from '../errors.ts'
import { childIdOf, type FanOutChild, type FanOutLink, FanOutLinks, planChildren } from '../fan-out.ts'
import { fingerprint, type IdempotencyStore, type StoredAnswer } from '../idempotency.ts'
import { randomHex, uuidv7 } from '../ids.ts'
import type { ApiMetrics } from '../metrics.ts'
import { type NotificationProducer, ProduceTimeoutError } from '../producer.ts'

export interface NotificationRoutesDeps {
  config: Config
  producer: NotificationProducer
  redis: Redis
  statuses: StatusStore
  idempotency: IdempotencyStore
  topics: TopicNames
  metrics: ApiMetrics
  logger: Logger
  maxBatch: number
  /** The recipients directory: a notification may name a `recipient` instead of `to`. */
  configStores?: ConfigStores
}

/** What one accepted request writes: its records, the answer, and the parent link of a fan-out. */
interface Prepared {
  id: string
  records: NotificationRecord[]
  answer: StoredAnswer
  link?: FanOutLink
}

const host = hostname()
const idempotencyKeyPattern = /^[\x21-\x7e]{1,200}$/

function traceIdOf(req: Request): string {
  // W3C traceparent: 00-<32 hex trace id>-<16 hex span id>-<flags>
  const traceparent = req.get('traceparent')
  const match = traceparent ? /^[\da-f]{2}-([\da-f]{32})-[\da-f]{16}-[\da-f]{2}$/.exec(traceparent) : null
  return match?.[1] ?? randomHex(16)
}

export function notificationRoutes(deps: NotificationRoutesDeps): Router {
  const { config, producer, statuses, idempotency, topics, metrics, logger } = deps
  const context: RequestContext = {
    defaults: {
      ...(config.email.defaultTo ? { email: config.email.defaultTo } : {}),
      ...(config.sms.defaultTo ? { sms: config.sms.defaultTo } : {}),
      ...(config.slack.webhooks.default ? { slack: 'default' } : {}),
    },
    slackDestinations: Object.keys(config.slack.webhooks),
    webhookDestinations: Object.keys(config.webhook.destinations),
  }
  const deadline = config.kafka.produceTimeoutMs
  const retryAfter = Math.max(1, Math.ceil(deadline / 1000))
  /** A request that waited for another holder of its key writes only with at least this much time left. */
  const minWriteMs = Math.min(250, Math.floor(deadline / 4))

  const links = new FanOutLinks(deps.redis, redisKeys(config.keyPrefix), config.statusTtlSeconds)
  const router = Router()

  function toRecord(input: NotificationInput, id: string, createdAt: string): NotificationRecord {
    return {
      v: recordVersion,
      id,
      channel: input.channel,
      to: input.to,
      ...(input.subject !== undefined ? { subject: input.subject } : {}),
      message: input.message,
      createdAt,
    }
  }

  /** The headers of every record one request writes (one trace id for all the children of a fan-out). */
  function headersOf(req: Request): Record<string, string> {
    return {
      'herald-source': 'api',
      'herald-user': userOf(req),
      'herald-host': host,
      'herald-trace-id': traceIdOf(req),
    }
  }

  function recordMessage(record: NotificationRecord, headers: Record<string, string>) {
    return {
      topic: topics.main(record.channel),
      message: { ...encodeRecord(record), headers },
    }
  }

  /** Bounds a best-effort Redis write: logged and counted when it fails, never thrown. */
  async function bestEffort(write: Promise<unknown>, id: string, what: string): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('timeout')), 250)
    })
    await Promise.race([write, timeout])
      .catch((error: unknown) => {
        metrics.statusWriteFailures.inc()
        logger.warn({ err: error, id }, `${what} not written (the notification is still accepted)`)
      })
      .finally(() => clearTimeout(timer))
  }

  /** After the ack: the api creates `queued` only if no status exists (a distributor may be faster). */
  function createStatus(record: NotificationRecord): Promise<void> {
    return bestEffort(
      statuses.set(record.id, 'queued', 'create', { channel: record.channel, attempts: 0 }),
      record.id,
      'queued status',
    )
  }

  /**
   * The parent link, written while the children are being written (a parent GET finds it once the answer
   * is out); a link whose children were not confirmed is harmless: the client learnt no parent id, or
   * retries with its Idempotency-Key, which writes the same children again.
   */
  function saveLink(prepared: Prepared): Promise<void> {
    if (!prepared.link) return Promise.resolve()
    return bestEffort(links.save(prepared.id, prepared.link), prepared.id, 'parent → children link')
  }

  /** A write that failed or outlived its deadline: counted, logged, answered 503 (outcome unknown). */
  function unconfirmed(id: string, error: unknown): ApiError {
    const reason = error instanceof ProduceTimeoutError ? 'timeout' : 'kafka_error'
    metrics.produceFailures.inc({ reason })
    logger.warn({ err: error, id, reason }, 'write to Kafka not confirmed: answering 503')
    return outcomeUnknown(retryAfter, error)
  }

  /** Every record of `prepared` is in Kafka: count them and create their statuses. */
  function accepted(prepared: Prepared): void {
    for (const record of prepared.records) {
      metrics.accepted.inc({ channel: record.channel })
      void createStatus(record)
    }
  }

  /** The recipient's children, or the 422 (or 503 while the directory loads) that says why not. */
  function childrenFor(request: RecipientInput): NotificationInput[] {
    const store = deps.configStores?.recipients
    if (store && !store.ready) {
      throw new ApiError(503, 'unavailable', 'recipients are still being loaded from Kafka; retry shortly', {
        headers: { 'retry-after': '1' },
      })
    }
    const recipient = store?.get(request.recipient)
    if (recipient === undefined) {
      const reason = store
        ? `no recipient "${request.recipient}" (create it with PUT /api/v1/recipients/${request.recipient})`
        : 'this api has no recipients directory'
      throw unprocessable([{ field: 'recipient', reason }])
    }
    const plan = planChildren(request, recipient, context.slackDestinations)
    if (!plan.ok) throw unprocessable(plan.issues)
    return plan.children
  }

  /**
   * What a request writes under an id still to be chosen: one record, or, for a recipient, one child per
   * channel whose id is derived from the parent's. The recipient is looked up now, like a validation: its
   * 422 comes before any Idempotency-Key is taken, so a refused request leaves its key unused.
   */
  function plan(request: NotificationRequest): (id: string) => Prepared {
    if (!isRecipientInput(request)) {
      return (id) => {
        const record = toRecord(request, id, new Date().toISOString())
        return {
          id,
          records: [record],
          answer: {
            status: 202,
            body: { id, channel: record.channel, status: 'queued' },
            location: `/api/v1/notification/${id}`,
          },
        }
      }
    }
    const inputs = childrenFor(request)
    return (id) => {
      const createdAt = new Date().toISOString()
      const records = inputs.map((child) =>
        toRecord(child, childIdOf(id, child.channel as FanOutChild['channel']), createdAt),
      )
      const children = records.map((r) => ({ id: r.id, channel: r.channel as FanOutChild['channel'] }))
      return {
        id,
        records,
        answer: {
          status: 202,
          body: { id, recipient: request.recipient, status: 'queued', children },
          location: `/api/v1/notification/${id}`,
        },
        link: { recipient: request.recipient, createdAt, children },
      }
    }
  }

  /**
   * The answer, written with Node's own writeHead/end: express's res.json and res.send (charset handling,
   * freshness check, location encoding) were a measurable share of the CPU of every accepted request, and
   * this answer needs none of it (ids and locations are URL-safe). Headers set before (herald-worker) stay.
   */
  function answer(res: Response, stored: StoredAnswer, replayed: boolean): void {
    const body = JSON.stringify(stored.body)
    res
      .writeHead(stored.status, {
        'content-type': 'application/json; charset=utf-8',
        'content-length': Buffer.byteLength(body),
        location: stored.location,
        ...(replayed ? { 'idempotent-replayed': 'true' } : {}),
      })
      .end(body)
  }

  router.post('/notification', async (req, res) => {
    const started = Date.now()
    const parsed = parseNotificationRequest(req.body, context)
    if (!parsed.ok) throw invalid(parsed.issues)
    const request = parsed.value
    const prepare = plan(request)
    const headers = headersOf(req)
    const key = req.get('idempotency-key')
    if (key === undefined) {
      const prepared = prepare(uuidv7())
      const writes = producer.sendMany(prepared.records.map((r) => recordMessage(r, headers)))
      const [outcomes] = await Promise.all([Promise.allSettled(writes), saveLink(prepared)])
      const failure = firstFailure(outcomes)
      if (failure !== undefined) throw unconfirmed(prepared.id, failure)
      accepted(prepared)
      return answer(res, prepared.answer, false)
    }
    if (!idempotencyKeyPattern.test(key)) {
      throw new ApiError(
        400,
        'invalid_request',
        'Idempotency-Key must be 1 to 200 visible ASCII characters',
        {
          details: [{ field: 'Idempotency-Key', reason: 'must be 1 to 200 visible ASCII characters' }],
        },
      )
    }
    if (deps.redis.status !== 'ready') {
      throw new ApiError(
        503,
        'unavailable',
        'idempotency keys need Redis, which is unreachable; retry later',
        {
          headers: { 'retry-after': String(retryAfter) },
        },
      )
    }
    const user = userOf(req)
    const print = fingerprint(request)
    // Every answer comes within about the produce deadline: waiting for a concurrent holder of the key
    // and our own write share one budget.
    const claim = await idempotency.begin(user, key, print, deadline, uuidv7())
    if (claim.kind === 'acked') {
      metrics.idempotency.inc({ result: 'replayed' })
      return answer(res, claim.answer, true)
    }
    if (claim.kind === 'mismatch') {
      metrics.idempotency.inc({ result: 'mismatch' })
      throw new ApiError(422, 'idempotency_key_reused', 'this Idempotency-Key was used with a different body')
    }
    if (claim.kind === 'busy') {
      metrics.idempotency.inc({ result: 'conflict' })
      throw new ApiError(
        409,
        'idempotency_key_in_flight',
        'a request with this Idempotency-Key is still in flight',
        {
          headers: { 'retry-after': String(retryAfter) },
        },
      )
    }
    const budget = deadline - (Date.now() - started)
    if (budget < minWriteMs) {
      metrics.idempotency.inc({ result: 'out_of_time' })
      // We took the key over from a request whose write failed while we waited for it: its outcome is
      // unknown, and too little of our deadline is left to write ourselves.
      await idempotency.release(user, key, claim.owner).catch(() => false)
      throw outcomeUnknown(retryAfter)
    }
    metrics.idempotency.inc({ result: 'new' })
    // The key's id: new, or the one an earlier write for this key carried (it may be in Kafka already).
    const prepared = prepare(claim.id)
    const written = prepared.records.map((record) => {
      const { topic, message } = recordMessage(record, headers)
      return producer.track(topic, message.key, message.value, message.headers, budget)
    })
    const linked = saveLink(prepared)
    // The key follows the writes' fate, not this request's deadline: acked once Kafka acknowledged every
    // record, released (keeping the id, so a retry writes the same records) once kafkajs gave up on one.
    // Until then it stays pending, so a retry can neither write other ids nor be told "accepted" too early.
    const keyUpdated = Promise.allSettled(written.map((w) => w.fate))
      .then(async (fates) => {
        if (firstFailure(fates) === undefined) {
          if (!(await idempotency.ack(user, key, prepared.answer)))
            logger.warn({ id: prepared.id }, 'idempotency key expired before its write was acknowledged')
        } else await idempotency.release(user, key, claim.owner)
      })
      .catch((error: unknown) => {
        logger.warn(
          { err: error, id: prepared.id },
          'idempotency key not updated after its write (Redis error): it stays pending for its window',
        )
      })
    const failure = firstFailure(await Promise.allSettled(written.map((w) => w.answer)))
    // Within the deadline the fate is known: answer once the key reflects it (a retry then finds the
    // key acked or free). Past the deadline, answer now; the key is updated whenever kafkajs is done.
    if (!(failure instanceof ProduceTimeoutError)) await keyUpdated
    await linked
    if (failure !== undefined) throw unconfirmed(prepared.id, failure)
    accepted(prepared)
    answer(res, prepared.answer, false)
  })

  router.post('/notifications', async (req, res) => {
    const items: unknown = req.body
    if (!Array.isArray(items)) {
      throw invalid([{ field: '(body)', reason: 'must be a JSON array of notifications' }])
    }
    if (items.length === 0 || items.length > deps.maxBatch) {
      throw invalid([{ field: '(body)', reason: `must hold 1 to ${deps.maxBatch} notifications` }])
    }
    const headers = headersOf(req)
    const results: Array<Record<string, unknown>> = new Array(items.length)
    const accepting: Array<{ index: number; prepared: Prepared }> = []
    items.forEach((item, index) => {
      const parsed = parseNotificationRequest(item, context)
      if (!parsed.ok) {
        results[index] = { index, status: 400, ...invalid(parsed.issues).body }
        return
      }
      try {
        accepting.push({ index, prepared: plan(parsed.value)(uuidv7()) })
      } catch (error) {
        if (!(error instanceof ApiError)) throw error
        results[index] = { index, status: error.status, ...error.body }
      }
    })
    const writes = producer.sendMany(
      accepting.flatMap(({ prepared }) => prepared.records.map((r) => recordMessage(r, headers))),
    )
    const [outcomes] = await Promise.all([
      Promise.allSettled(writes),
      Promise.all(accepting.map(({ prepared }) => saveLink(prepared))),
    ])
    let next = 0
    for (const { index, prepared } of accepting) {
      const mine = outcomes.slice(next, next + prepared.records.length)
      next += prepared.records.length
      if (firstFailure(mine) === undefined) {
        accepted(prepared)
        const { status: _queued, ...body } = prepared.answer.body
        results[index] = { index, status: 202, ...body }
      } else {
        metrics.produceFailures.inc({ reason: 'batch' })
        results[index] = { index, status: 503, ...outcomeUnknown(retryAfter).body }
      }
    }
    res.status(207).json({ results })
  })

  router.get('/notification/:id', async (req, res) => {
    if (deps.redis.status !== 'ready') {
      throw new ApiError(503, 'unavailable', 'the status store (Redis) is unreachable; retry later', {
        headers: { 'retry-after': '1' },
      })
    }
    const id = String(req.params.id)
    const [view, link] = await Promise.all([statuses.get(id), links.get(id)])
    if (view) return res.json(view)
    if (link) {
      // A child's status is missing only until its `queued` is written (its record is in Kafka: the
      // link is kept no longer than the statuses, which every change refreshes).
      const children = await Promise.all(
        link.children.map(async (child) => {
          const status = await statuses.get(child.id)
          return {
            ...(status ?? { id: child.id, status: 'queued', attempts: 0, history: [] }),
            channel: child.channel,
          }
        }),
      )
      return res.json({ id, recipient: link.recipient, createdAt: link.createdAt, children })
    }
    throw new ApiError(404, 'not_found', `no notification ${id} (unknown, or older than its status TTL)`)
  })

  return router
}

/** The first failure of settled writes, a timeout first (its outcome is still unknown); undefined if none. */
function firstFailure(outcomes: ReadonlyArray<PromiseSettledResult<unknown>>): unknown {
  const failures = outcomes
    .filter((o): o is PromiseRejectedResult => o.status === 'rejected')
    .map((o) => (o.reason ?? new Error('write failed')) as unknown)
  return failures.find((e) => e instanceof ProduceTimeoutError) ?? failures[0]
}

/** A recipient that cannot be reached as asked: 422 with the field and the reason. */
function unprocessable(issues: Array<{ field: string; reason: string }>): ApiError {
  return new ApiError(422, 'recipient_unreachable', issues.map((i) => `${i.field} ${i.reason}`).join('; '), {
    details: issues,
  })
}

/** The API key's name set by the auth middleware ('anonymous' when the api runs open). */
function userOf(req: Request): string {
  return callerOf(req).name
}
