// POST /api/v1/notification, POST /api/v1/notifications (batch), GET /api/v1/notification/:id.
import { hostname } from 'node:os'
import type { Config } from '@herald/shared/config'
import type { Logger } from '@herald/shared/logger'
import {
  type NotificationInput,
  type NotificationRecord,
  normaliseRecipient,
  parseNotificationRequest,
  type RequestContext,
  recordVersion,
} from '@herald/shared/notification'
import type { Redis } from '@herald/shared/redis/client'
import type { StatusStore } from '@herald/shared/status'
import type { TopicNames } from '@herald/shared/topics'
import { type Request, type Response, Router } from 'express'
import { callerOf } from '../auth.ts'
import { ApiError, invalid, outcomeUnknown } from '../errors.ts'
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
  const router = Router()

  function toRecord(input: NotificationInput, id = uuidv7()): NotificationRecord {
    return {
      v: recordVersion,
      id,
      channel: input.channel,
      to: input.to,
      ...(input.subject !== undefined ? { subject: input.subject } : {}),
      message: input.message,
      createdAt: new Date().toISOString(),
    }
  }

  function recordMessage(record: NotificationRecord, req: Request) {
    return {
      topic: topics.main(record.channel),
      message: {
        key: normaliseRecipient(record.channel, record.to),
        value: JSON.stringify(record),
        headers: {
          'herald-source': 'api',
          'herald-user': userOf(req),
          'herald-host': host,
          'herald-trace-id': traceIdOf(req),
        },
      },
    }
  }

  /** After the ack: the api creates `queued` only if no status exists (a distributor may be faster). */
  async function createStatus(record: NotificationRecord): Promise<void> {
    const write = statuses.set(record.id, 'queued', 'create', { channel: record.channel, attempts: 0 })
    const timeout = new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error('timeout')), 250).unref(),
    )
    await Promise.race([write, timeout]).catch((error: unknown) => {
      metrics.statusWriteFailures.inc()
      logger.warn(
        { err: error, id: record.id },
        'queued status not written (the notification is still accepted)',
      )
    })
  }

  /** A write that failed or outlived its deadline: counted, logged, answered 503 (outcome unknown). */
  function unconfirmed(record: NotificationRecord, error: unknown): ApiError {
    const reason = error instanceof ProduceTimeoutError ? 'timeout' : 'kafka_error'
    metrics.produceFailures.inc({ reason })
    logger.warn({ err: error, id: record.id, reason }, 'write to Kafka not confirmed: answering 503')
    return outcomeUnknown(retryAfter, error)
  }

  async function produce(record: NotificationRecord, req: Request): Promise<void> {
    const { topic, message } = recordMessage(record, req)
    try {
      await producer.send(topic, message.key, message.value, message.headers)
    } catch (error) {
      throw unconfirmed(record, error)
    }
    metrics.accepted.inc({ channel: record.channel })
  }

  function answer(res: Response, stored: StoredAnswer, replayed: boolean): void {
    res.status(stored.status).location(stored.location)
    if (replayed) res.set('idempotent-replayed', 'true')
    res.json(stored.body)
  }

  router.post('/notification', async (req, res) => {
    const started = Date.now()
    const parsed = parseNotificationRequest(req.body, context)
    if (!parsed.ok) throw invalid(parsed.issues)
    const input = parsed.value
    const key = req.get('idempotency-key')
    if (key === undefined) {
      const record = toRecord(input)
      await produce(record, req)
      createStatus(record)
      return answer(res, stored(record), false)
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
    const print = fingerprint(input)
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
    const record = toRecord(input, claim.id)
    const result = stored(record)
    const { topic, message } = recordMessage(record, req)
    const written = producer.track(topic, message.key, message.value, message.headers, budget)
    // The key follows the write's fate, not this request's deadline: acked once Kafka acknowledged the
    // record, released (keeping the id) once kafkajs gave up on it. Until then it stays pending, so a retry
    // can neither write another id nor be told "accepted" too early.
    const keyUpdated = written.fate
      .then(
        async () => {
          if (!(await idempotency.ack(user, key, result)))
            logger.warn({ id: record.id }, 'idempotency key expired before its write was acknowledged')
        },
        async () => {
          await idempotency.release(user, key, claim.owner)
        },
      )
      .catch((error: unknown) => {
        logger.warn(
          { err: error, id: record.id },
          'idempotency key not updated after its write (Redis error): it stays pending for its window',
        )
      })
    const failure = await written.answer.then(
      () => undefined,
      (error: unknown) => error ?? new Error('write failed'),
    )
    // Within the deadline the fate is known: answer once the key reflects it (a retry then finds the
    // key acked or free). Past the deadline, answer now; the key is updated whenever kafkajs is done.
    if (!(failure instanceof ProduceTimeoutError)) await keyUpdated
    if (failure !== undefined) throw unconfirmed(record, failure)
    metrics.accepted.inc({ channel: record.channel })
    createStatus(record)
    answer(res, result, false)
  })

  router.post('/notifications', async (req, res) => {
    const items: unknown = req.body
    if (!Array.isArray(items)) {
      throw invalid([{ field: '(body)', reason: 'must be a JSON array of notifications' }])
    }
    if (items.length === 0 || items.length > deps.maxBatch) {
      throw invalid([{ field: '(body)', reason: `must hold 1 to ${deps.maxBatch} notifications` }])
    }
    const results: Array<Record<string, unknown>> = new Array(items.length)
    const accepted: Array<{ index: number; record: NotificationRecord }> = []
    items.forEach((item, index) => {
      const parsed = parseNotificationRequest(item, context)
      if (!parsed.ok) {
        const error = invalid(parsed.issues)
        results[index] = { index, status: 400, ...error.body }
      } else accepted.push({ index, record: toRecord(parsed.value) })
    })
    const writes = producer.sendMany(accepted.map(({ record }) => recordMessage(record, req)))
    const outcomes = await Promise.allSettled(writes)
    await Promise.all(
      accepted.map(async ({ index, record }, i) => {
        if (outcomes[i]?.status === 'fulfilled') {
          metrics.accepted.inc({ channel: record.channel })
          createStatus(record)
          results[index] = { index, status: 202, id: record.id, channel: record.channel }
        } else {
          metrics.produceFailures.inc({ reason: 'batch' })
          results[index] = { index, status: 503, ...outcomeUnknown(retryAfter).body }
        }
      }),
    )
    res.status(207).json({ results })
  })

  router.get('/notification/:id', async (req, res) => {
    if (deps.redis.status !== 'ready') {
      throw new ApiError(503, 'unavailable', 'the status store (Redis) is unreachable; retry later', {
        headers: { 'retry-after': '1' },
      })
    }
    const view = await statuses.get(String(req.params.id))
    if (!view)
      throw new ApiError(
        404,
        'not_found',
        `no notification ${req.params.id} (unknown, or older than its status TTL)`,
      )
    res.json(view)
  })

  return router
}

function stored(record: NotificationRecord): StoredAnswer {
  return {
    status: 202,
    body: { id: record.id, channel: record.channel, status: 'queued' },
    location: `/api/v1/notification/${record.id}`,
  }
}

/** The API key's name set by the auth middleware ('anonymous' when the api runs open). */
function userOf(req: Request): string {
  return callerOf(req).name
}
