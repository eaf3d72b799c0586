// Alarm events: what external monitoring posts (monasca's `alarm-transitioned`, unchanged) and Herald's own
// alarm transitions, as kept on `<KEY_PREFIX>.alarm-events`. The same schema validates API requests, records
// read back from Kafka and the OpenAPI document; `encodeAlarmEvent` is the one way to write a record.
import { createHash } from 'node:crypto'
import { z } from 'zod'
import { type FieldProblem, problemsOf } from './config-topics/schemas.ts'

export const alarmEventStates = ['OK', 'ALARM', 'UNDETERMINED'] as const
export type AlarmEventState = (typeof alarmEventStates)[number]

/** Herald's kinds of transition: raised, escalated, a reminder while it lasts, cleared. */
export const alarmEventKinds = ['alarm', 'escalated', 'reminder', 'ok'] as const

/** The key monasca wraps its events in (its Jackson root name). */
export const wrappedAlarmEventKey = 'alarm-transitioned'

/** Largest record value: the topic keeps records of up to 1 MiB, and the key and headers need room too. */
export const maxAlarmEventBytes = 1024 * 1024 - 16 * 1024

/** Before this, a timestamp was written in seconds, not milliseconds (1e11 ms is March 1973). */
const minTimestampMs = 100_000_000_000

/** The message of a wrong type, or "is required" when the field is missing. */
const expected = (what: string) => (issue: { input?: unknown }) =>
  issue.input === undefined ? 'is required' : what

const state = z.enum(alarmEventStates, { error: expected('must be one of OK, ALARM, UNDETERMINED') })

/** monasca's Java model writes an unset string as null. */
const text = (max: number) =>
  z.string({ error: 'must be a string' }).max(max, `must be at most ${max} characters`).nullable().optional()

const identifier = z
  .string({ error: expected('must be a string') })
  .min(1, 'must not be empty')
  .max(255, 'must be at most 255 characters')

export const eventIdField = z
  .string({ error: 'must be a string' })
  .regex(/^[\w.:@-]{1,128}$/, 'must be 1-128 letters, digits, ".", ":", "_", "@" or "-"')

/**
 * One alarm event. Fields other than these (monasca's `alarmDescription`, `metrics`, `subAlarms`, ...) are
 * kept as they are. A missing `eventId` is derived from the event (see `deriveEventId`).
 */
export const alarmEventSchema = z
  .looseObject({
    alarmId: identifier.optional(),
    alarmDefinitionId: identifier.optional(),
    alarmName: identifier.describe('The record key: one alarm stays on one partition, in order'),
    oldState: state.optional(),
    newState: state,
    stateChangeReason: text(10_000),
    severity: text(64).describe('e.g. LOW, MEDIUM, HIGH, CRITICAL'),
    link: text(2048),
    lifecycleState: text(255),
    tenantId: text(255),
    timestamp: z
      .number({ error: expected('must be a number (milliseconds since the epoch)') })
      .int('must be a whole number of milliseconds')
      .min(minTimestampMs, 'must be milliseconds since the epoch (this looks like seconds)')
      .max(Number.MAX_SAFE_INTEGER, 'must be milliseconds since the epoch')
      .describe('When the transition happened, in milliseconds since the epoch'),
    actionsEnabled: z
      .boolean({ error: 'must be true or false' })
      .optional()
      .describe('false: the router skips the event (and counts it)'),
    kind: z
      .enum(alarmEventKinds, { error: 'must be one of alarm, escalated, reminder, ok' })
      .optional()
      .describe("Herald's alarms: what the transition is"),
    labels: z
      .record(
        z.string().min(1, 'must not be empty').max(255, 'must be at most 255 characters'),
        z.string({ error: 'must be a string' }).max(1024, 'must be at most 1024 characters'),
      )
      .optional()
      .describe('Routes may match on these'),
    value: z
      .number({ error: 'must be a number' })
      .optional()
      .describe('The value that caused the transition'),
    eventId: eventIdField
      .optional()
      .describe('Derived from alarmId, alarmDefinitionId, alarmName, newState and timestamp when absent'),
  })
  .transform((event) => ({ ...event, eventId: event.eventId ?? deriveEventId(event) }))

/** An alarm event as written to the topic: always with an `eventId`. */
export type AlarmEvent = z.infer<typeof alarmEventSchema>
/** An alarm event as a sender writes it (`eventId` optional). */
export type AlarmEventInput = z.input<typeof alarmEventSchema>

/** monasca's wrapped form, `{"alarm-transitioned": {...}}`. */
export const wrappedAlarmEventSchema = z.strictObject({ [wrappedAlarmEventKey]: alarmEventSchema })

/**
 * The id of an event that has none: the same transition of the same alarm gets the same id, so an event
 * posted again (a retry, a replayed monasca topic) is recognised downstream. A UUID in form (version 8, RFC
 * 9562's custom version) from SHA-256 of the fields that identify a transition.
 */
export function deriveEventId(event: {
  alarmId?: string | undefined
  alarmDefinitionId?: string | undefined
  alarmName: string
  newState: string
  timestamp: number
}): string {
  return hashedUuid([
    event.alarmId ?? null,
    event.alarmDefinitionId ?? null,
    event.alarmName,
    event.newState,
    event.timestamp,
  ])
}

/**
 * A UUID in form (version 8, RFC 9562's custom version) from SHA-256 of `identity` as JSON: the same
 * identity always gives the same id. Also the router's notification ids.
 */
export function hashedUuid(identity: readonly unknown[]): string {
  const bytes = createHash('sha256').update(JSON.stringify(identity)).digest().subarray(0, 16)
  bytes[6] = 0x80 | ((bytes[6] ?? 0) & 0x0f) // version 8
  bytes[8] = 0x80 | ((bytes[8] ?? 0) & 0x3f) // variant 10
  const hex = bytes.toString('hex')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}

export type ParsedAlarmEvent = { ok: true; event: AlarmEvent } | { ok: false; issues: FieldProblem[] }

/**
 * Validates one event, plain or in monasca's wrapped form (whose problems are named under
 * `alarm-transitioned.`). The event comes back unwrapped, with its fields unchanged and an `eventId`.
 */
export function parseAlarmEvent(body: unknown): ParsedAlarmEvent {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return { ok: false, issues: [{ field: '(body)', reason: 'must be a JSON object (one alarm event)' }] }
  }
  if (wrappedAlarmEventKey in body) {
    const wrapped = wrappedAlarmEventSchema.safeParse(body)
    if (!wrapped.success) return { ok: false, issues: problemsOf(wrapped.error) }
    return { ok: true, event: wrapped.data[wrappedAlarmEventKey] }
  }
  const parsed = alarmEventSchema.safeParse(body)
  if (!parsed.success) return { ok: false, issues: problemsOf(parsed.error) }
  return { ok: true, event: parsed.data }
}

/** The record of an event on the alarm-events topic: keyed by alarm name, the event as JSON. */
export function encodeAlarmEvent(event: AlarmEvent): { key: string; value: string } {
  return { key: event.alarmName, value: JSON.stringify(event) }
}

export type DecodedAlarmEvent = { kind: 'ok'; event: AlarmEvent } | { kind: 'poison'; reason: string }

/** Reads a record of an alarm-events topic (Herald's, or monasca's own, whose events are wrapped). */
export function decodeAlarmEvent(value: Buffer | null, maxBytes = 1024 * 1024): DecodedAlarmEvent {
  if (value === null) return { kind: 'poison', reason: 'empty record (null value)' }
  if (value.length > maxBytes) return { kind: 'poison', reason: `record too large (${value.length} bytes)` }
  let json: unknown
  try {
    json = JSON.parse(value.toString('utf8'))
  } catch {
    return { kind: 'poison', reason: 'not JSON' }
  }
  const parsed = parseAlarmEvent(json)
  if (parsed.ok) return { kind: 'ok', event: parsed.event }
  const first = parsed.issues[0]
  return { kind: 'poison', reason: `schema: ${first?.field ?? '(value)'} ${first?.reason ?? ''}`.trim() }
}
