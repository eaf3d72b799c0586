// Alarms (seed 004, JAWS): the values kept on the compacted alarm topics. The same schemas validate API
// requests, records read back from Kafka, and generate the OpenAPI document.
//
//   herald.alarms.registered   key = alarm name             value = a registration, tombstone = unregistered
//   herald.alarms.activations  key = alarm name             value = an activation, tombstone = cleared
//   herald.alarms.overrides    key = `<alarm name>/<kind>`  value = an override of that kind, tombstone = removed
//   herald.alarms.effective    key = alarm name             value = the effective state, written by the processor
import { z } from 'zod'
import { configName, type FieldProblem, problemsOf } from '../config-topics/schemas.ts'

/**
 * An alarm's name: the record key of every alarm topic and a path segment of the API, so the rules of the
 * other configuration names (1-128 letters, digits, ".", "_", "@" or "-", starting with a letter or digit).
 * No "/": it separates the name from the kind in an override key, which therefore splits unambiguously, and
 * a name never needs escaping in a URL.
 */
export const alarmName = configName

export const alarmSeverities = ['LOW', 'MEDIUM', 'HIGH', 'CRITICAL'] as const
export type AlarmSeverity = (typeof alarmSeverities)[number]

/** Higher is more severe: an alarm whose severity rises while it is effectively active is `escalated`. */
export function severityRank(severity: AlarmSeverity): number {
  return alarmSeverities.indexOf(severity)
}

const severity = z.enum(alarmSeverities, {
  error: 'must be one of LOW, MEDIUM, HIGH, CRITICAL (in capitals)',
})

/** Before this, a time was written in seconds, not milliseconds (1e11 ms is March 1973). */
const minEpochMs = 100_000_000_000

const epochMs = z
  .number({ error: 'must be a number (milliseconds since the epoch)' })
  .int('must be a whole number of milliseconds')
  .min(minEpochMs, 'must be milliseconds since the epoch (this looks like seconds)')
  .max(Number.MAX_SAFE_INTEGER, 'must be milliseconds since the epoch')

const day = 86_400
const week = 7 * day

const seconds = (min: number, max: number, maxText: string) =>
  z
    .number({ error: 'must be a number of seconds' })
    .int('must be a whole number of seconds')
    .min(min, `must be at least ${min}`)
    .max(max, `must be at most ${max} (${maxText})`)

const text = (max: number) =>
  z
    .string({ error: 'must be a string' })
    .trim()
    .min(1, 'must not be empty')
    .max(max, `must be at most ${max} characters`)

const labels = z
  .record(
    z.string().min(1, 'must not be empty').max(255, 'must be at most 255 characters'),
    z.string({ error: 'must be a string' }).max(1024, 'must be at most 1024 characters'),
  )
  .refine((l) => Object.keys(l).length <= 64, 'must have at most 64 labels')

export const registrationSchema = z
  .strictObject({
    name: alarmName,
    class: text(255).optional().describe('The kind of alarm; alarm events carry it as alarmDefinitionId'),
    location: text(255).optional(),
    category: text(255).optional(),
    severity: severity.default('MEDIUM').describe('The severity of an activation that names none'),
    latching: z
      .boolean({ error: 'must be true or false' })
      .default(false)
      .describe('Once active, the alarm stays effectively active until acknowledged, even if it clears'),
    maxShelveSeconds: seconds(0, 365 * day, 'a year')
      .optional()
      .describe('The longest shelve allowed; 0 = never shelvable; absent = no limit'),
    onDelaySeconds: seconds(1, day, 'a day')
      .optional()
      .describe('An activation counts only once it has lasted this long'),
    offDelaySeconds: seconds(1, day, 'a day')
      .optional()
      .describe('A cleared alarm stays effectively active this long (so a flapping source alarms once)'),
    maskedBy: alarmName
      .optional()
      .describe('A parent alarm: while it is effectively active, this one is masked (no notifications)'),
    repeatSeconds: seconds(10, week, 'a week')
      .optional()
      .describe('A reminder is sent this often while the alarm is effectively active and not acknowledged'),
    docUrl: z
      .url({ protocol: /^https?$/, error: 'must be an http(s) URL' })
      .max(2048, 'must be at most 2048 characters')
      .optional()
      .describe('Documentation for whoever is notified; alarm events carry it as link'),
    labels: labels.optional().describe('Alarm events carry these (routes match on them)'),
  })
  .superRefine((r, ctx) => {
    if (r.maskedBy !== undefined && r.maskedBy === r.name) {
      ctx.addIssue({ code: 'custom', path: ['maskedBy'], message: 'must name another alarm, not this one' })
    }
  })
/** A registration as read back (defaults applied). */
export type Registration = z.infer<typeof registrationSchema>
/** A registration as written (`severity` and `latching` may be left out). */
export type RegistrationInput = z.input<typeof registrationSchema>

export const activationSchema = z.strictObject({
  severity: severity
    .optional()
    .describe("This activation's severity; the registration's severity when absent"),
  message: z.string({ error: 'must be a string' }).max(10_000, 'must be at most 10000 characters').optional(),
  value: z.number({ error: 'must be a number' }).optional().describe('The value that caused the activation'),
  source: text(255).describe('Who activated it: a rule, a script, "api" ...'),
  at: epochMs.describe(
    'When the alarm became active. An update of a still-active alarm keeps it; a new value is a new trip',
  ),
})
export type Activation = z.infer<typeof activationSchema>

/**
 * Override kinds in JAWS precedence, highest first (`shelved` covers one-shot and continuous). `shelved` and
 * `disabled` are written by operators; the others are written by the alarms processor only.
 */
export const overrideKinds = ['disabled', 'masked', 'ondelayed', 'shelved', 'offdelayed', 'latched'] as const
export type OverrideKind = (typeof overrideKinds)[number]
export const operatorOverrideKinds = ['shelved', 'disabled'] as const satisfies readonly OverrideKind[]
export const automaticOverrideKinds = [
  'masked',
  'ondelayed',
  'offdelayed',
  'latched',
] as const satisfies readonly OverrideKind[]

const reason = text(1000)
const user = text(255).describe('Who wrote it: the API key name or the CLI user')

export const shelvedOverrideSchema = z
  .strictObject({
    kind: z.literal('shelved'),
    until: epochMs.optional().describe('When the shelve ends'),
    oneshot: z
      .boolean({ error: 'must be true or false' })
      .optional()
      .describe('true: the shelve ends when the alarm clears (or at `until`, whichever comes first)'),
    reason,
    user,
  })
  .refine((s) => s.until !== undefined || s.oneshot === true, {
    path: ['until'],
    message: 'is required unless oneshot is true (a shelve ends at a time, or when the alarm clears)',
  })
export const disabledOverrideSchema = z.strictObject({ kind: z.literal('disabled'), reason, user })
export const latchedOverrideSchema = z.strictObject({
  kind: z.literal('latched'),
  at: epochMs.describe('The `at` of the activation that latched'),
})
export const ondelayedOverrideSchema = z.strictObject({
  kind: z.literal('ondelayed'),
  until: epochMs.describe('When the activation starts to count'),
})
export const offdelayedOverrideSchema = z.strictObject({
  kind: z.literal('offdelayed'),
  until: epochMs.describe('When the cleared alarm stops being effectively active'),
})
export const maskedOverrideSchema = z.strictObject({
  kind: z.literal('masked'),
  by: alarmName.describe('The parent alarm that masks this one'),
})

export const overrideSchema = z.discriminatedUnion(
  'kind',
  [
    disabledOverrideSchema,
    maskedOverrideSchema,
    ondelayedOverrideSchema,
    shelvedOverrideSchema,
    offdelayedOverrideSchema,
    latchedOverrideSchema,
  ],
  { error: `kind must be one of ${overrideKinds.join(', ')}` },
)
export type Override = z.infer<typeof overrideSchema>
export type OverrideOf<K extends OverrideKind> = Extract<Override, { kind: K }>
export type ShelvedOverride = OverrideOf<'shelved'>
/** An alarm's overrides in force on the topic: at most one of each kind (the key is per kind). */
export type Overrides = { [K in OverrideKind]?: OverrideOf<K> }

/** The record key of an override: `<alarm name>/<kind>`. */
export function overrideKey(name: string, kind: OverrideKind): string {
  return `${name}/${kind}`
}

/** The alarm name and kind of an override key; undefined for a key `overrideKey` does not make. */
export function parseOverrideKey(key: string): { name: string; kind: OverrideKind } | undefined {
  const slash = key.lastIndexOf('/')
  if (slash < 0) return undefined
  const name = key.slice(0, slash)
  const kind = key.slice(slash + 1)
  if (!alarmName.safeParse(name).success) return undefined
  if (!(overrideKinds as readonly string[]).includes(kind)) return undefined
  return { name, kind: kind as OverrideKind }
}

export type ParsedOverride =
  | { ok: true; name: string; kind: OverrideKind; override: Override | null }
  | { ok: false; issues: FieldProblem[] }

/**
 * An override record (`value` null for a tombstone): the key must be an override key, and the value's
 * `kind` the key's kind.
 */
export function parseOverride(key: string, value: unknown): ParsedOverride {
  const parsedKey = parseOverrideKey(key)
  if (parsedKey === undefined) {
    return {
      ok: false,
      issues: [
        { field: '(key)', reason: `must be <alarm name>/<kind>, kind one of ${overrideKinds.join(', ')}` },
      ],
    }
  }
  if (value === null) return { ok: true, ...parsedKey, override: null }
  const parsed = overrideSchema.safeParse(value)
  if (!parsed.success) return { ok: false, issues: problemsOf(parsed.error) }
  if (parsed.data.kind !== parsedKey.kind) {
    return {
      ok: false,
      issues: [{ field: 'kind', reason: `must be ${parsedKey.kind}, the kind in the key` }],
    }
  }
  return { ok: true, ...parsedKey, override: parsed.data }
}

/**
 * Effective states, JAWS' names: the override of highest precedence in force, with a `normal-` variant
 * when the alarm is not active (on-delayed exists only while active, off-delayed only while not).
 */
export const effectiveStates = [
  'disabled',
  'normal-disabled',
  'masked',
  'normal-masked',
  'on-delayed',
  'oneshot-shelved',
  'normal-oneshot-shelved',
  'continuous-shelved',
  'normal-continuous-shelved',
  'off-delayed',
  'latched',
  'normal-latched',
  'active',
  'normal',
] as const
export type EffectiveStateName = (typeof effectiveStates)[number]

/** The states in which an alarm is effectively active: people are told about it. */
export const effectivelyActiveStates = [
  'off-delayed',
  'latched',
  'normal-latched',
  'active',
] as const satisfies readonly EffectiveStateName[]

export function isEffectivelyActive(state: EffectiveStateName): boolean {
  return (effectivelyActiveStates as readonly string[]).includes(state)
}

const count = z.number().int().min(0)

/**
 * What the processor needs, besides the input topics, to carry on after a restart or a rebalance without
 * repeating or losing a decision. Kept in the effective record, which is the processor's own output;
 * other readers may ignore it.
 */
export const alarmMemorySchema = z.strictObject({
  handledActivationAt: epochMs
    .optional()
    .describe('The activation whose onset was handled (on-delay); unset once its clear was handled'),
  latchedFor: epochMs.optional().describe('The activation whose latch was decided (so an ack sticks)'),
  episodeAt: epochMs.optional().describe('The activation the event ids are counted from'),
  events: count.describe('alarm, escalated and ok events sent for episodeAt'),
  notifiedAt: epochMs.optional().describe('When the last alarm or escalated event was sent'),
  reminders: count.describe('Reminders sent since notifiedAt'),
})
export type AlarmMemory = z.infer<typeof alarmMemorySchema>

export const effectiveSchema = z.strictObject({
  name: alarmName,
  state: z.enum(effectiveStates),
  active: z.boolean().describe('An activation is present'),
  effectivelyActive: z.boolean().describe('People are told: off-delayed, latched, normal-latched or active'),
  severity,
  overrides: z.array(z.enum(overrideKinds)).describe('The overrides in force, highest precedence first'),
  since: epochMs.describe('When the alarm entered this state'),
  acknowledged: z
    .boolean()
    .optional()
    .describe('Latching alarms only: false while a latch waits for an acknowledgement'),
  memory: alarmMemorySchema.optional(),
})
export type Effective = z.infer<typeof effectiveSchema>

/**
 * Whether an operator may shelve this alarm so (the API refuses the write otherwise; the processor trusts
 * what is on the topic). With a `maxShelveSeconds`, every shelve needs an `until` within it, a one-shot one
 * too: a one-shot shelve of an alarm that never clears would otherwise last for ever.
 */
export function checkShelve(
  registration: Pick<Registration, 'name' | 'maxShelveSeconds'>,
  shelve: Pick<ShelvedOverride, 'until' | 'oneshot'>,
  now: number,
): FieldProblem | undefined {
  const max = registration.maxShelveSeconds
  if (max === 0) {
    return {
      field: 'until',
      reason: `alarm ${registration.name} may not be shelved (its maxShelveSeconds is 0)`,
    }
  }
  if (shelve.until === undefined) {
    if (shelve.oneshot !== true) {
      return { field: 'until', reason: 'is required unless oneshot is true' }
    }
    if (max !== undefined) {
      return {
        field: 'until',
        reason: `is required: alarm ${registration.name} may be shelved for at most ${max} seconds, one-shot too`,
      }
    }
    return undefined
  }
  if (shelve.until <= now) return { field: 'until', reason: 'must be in the future' }
  if (max !== undefined && shelve.until - now > max * 1000) {
    const asked = Math.ceil((shelve.until - now) / 1000)
    return {
      field: 'until',
      reason: `must be at most ${max} seconds from now (the maxShelveSeconds of alarm ${registration.name}); asked for ${asked}`,
    }
  }
  return undefined
}
