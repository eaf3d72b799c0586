// POST /api/v1/alarm-events: one alarm event, or a JSON array of them, written to the alarm-events topic
// with acks=all and answered 202 with the event ids once Kafka acknowledged every one of them.
import { hostname } from 'node:os'
import {
  type AlarmEvent,
  encodeAlarmEvent,
  maxAlarmEventBytes,
  parseAlarmEvent,
} from '@herald/shared/alarm-events'
import type { FieldProblem } from '@herald/shared/config-topics/schemas'
import type { Logger } from '@herald/shared/logger'
import { type Request, Router } from 'express'
import { callerOf } from '../auth.ts'
import { ApiError, invalid } from '../errors.ts'
import type { ApiMetrics } from '../metrics.ts'
import { type NotificationProducer, ProduceTimeoutError } from '../producer.ts'

export const alarmEventsPath = '/api/v1/alarm-events'

/** The route table entry of this endpoint. */
export const alarmEventRouteTable: Record<string, string[]> = { [alarmEventsPath]: ['POST'] }

export interface AlarmEventRoutesDeps {
  producer: NotificationProducer
  /** The alarm-events topic (`<KEY_PREFIX>.alarm-events`). */
  topic: string
  metrics: ApiMetrics
  logger: Logger
  /** The produce deadline (PRODUCE_TIMEOUT_MS): a 503 asks to retry after about that long. */
  deadlineMs: number
  /** Most events in one request: the notification batch limit. */
  maxBatch: number
}

const host = hostname()

/** A problem of the item at `index` of a batch: `[3].newState`, or `[3]` for the item as a whole. */
function atIndex(index: number, problem: FieldProblem): FieldProblem {
  const field = problem.field === '(body)' ? `[${index}]` : `[${index}].${problem.field}`
  return { field, reason: problem.reason }
}

export function alarmEventRoutes(deps: AlarmEventRoutesDeps): Router {
  const { producer, topic, metrics, logger, maxBatch } = deps
  const retryAfter = String(Math.max(1, Math.ceil(deps.deadlineMs / 1000)))
  const router = Router()

  function validate(body: unknown): { events: AlarmEvent[]; batch: boolean } {
    const batch = Array.isArray(body)
    const items: unknown[] = batch ? body : [body]
    if (batch && (items.length === 0 || items.length > maxBatch)) {
      throw invalid([{ field: '(body)', reason: `must hold 1 to ${maxBatch} alarm events` }])
    }
    const events: AlarmEvent[] = []
    const problems: FieldProblem[] = []
    items.forEach((item, index) => {
      const parsed = parseAlarmEvent(item)
      const found: FieldProblem[] = parsed.ok ? [] : parsed.issues
      if (parsed.ok) {
        const bytes = Buffer.byteLength(encodeAlarmEvent(parsed.event).value)
        if (bytes > maxAlarmEventBytes) {
          found.push({
            field: '(body)',
            reason: `is ${bytes} bytes as a record, more than ${maxAlarmEventBytes}`,
          })
        } else events.push(parsed.event)
      }
      problems.push(...(batch ? found.map((p) => atIndex(index, p)) : found))
    })
    // All or nothing: a sender fixes the items named and posts the batch again.
    if (problems.length > 0) throw invalid(problems)
    return { events, batch }
  }

  async function write(events: AlarmEvent[], req: Request): Promise<void> {
    const headers = { 'herald-source': 'api', 'herald-user': callerOf(req).name, 'herald-host': host }
    const writes = producer.sendMany(
      events.map((event) => ({ topic, message: { ...encodeAlarmEvent(event), headers } })),
    )
    const failed = (await Promise.allSettled(writes)).find((w) => w.status === 'rejected')
    if (failed === undefined) return
    const error: unknown = failed.reason
    const reason = error instanceof ProduceTimeoutError ? 'timeout' : 'kafka_error'
    metrics.produceFailures.inc({ reason })
    logger.warn(
      { err: error, events: events.length, reason },
      'alarm events not confirmed by Kafka: answering 503',
    )
    throw new ApiError(
      503,
      'unavailable',
      'the alarm events could not be confirmed by Kafka in time; outcome unknown — post them again (an event ' +
        'keeps its eventId, so a repeat is recognised)',
      { headers: { 'retry-after': retryAfter }, cause: error },
    )
  }

  router.post('/alarm-events', async (req, res) => {
    const { events, batch } = validate(req.body)
    await write(events, req)
    metrics.alarmEventsAccepted.inc(events.length)
    const ids = events.map((e) => e.eventId)
    res.status(202).json(batch ? { eventIds: ids } : { eventId: ids[0] })
  })

  return router
}
