// Threshold rules (seed 003, alert-exec): the values kept on the compacted rules topic, and the alerts
// engine's own shape of a rule, which compatibility mode imports. The same schemas validate API requests,
// records read back from Kafka, and generate the OpenAPI document.
//
//   herald.rules  key = rule name  value = a rule, tombstone = deleted
//
// A rule's outcome is the activation of the alarm named after it (alarm name = rule name), so a rule name
// is an alarm name; a rule whose query keeps failing raises a second alarm, `queryFailingAlarmName(name)`.
import { z } from 'zod'
import { alarmName } from '../alarms/schemas.ts'
import { type FieldProblem, problemsOf } from '../config-topics/schemas.ts'

/** Where a rule's query is answered: Prometheus' HTTP API (an instant query) or the alerts engine. */
export const ruleSources = ['prometheus', 'alerts-engine'] as const
export type RuleSource = (typeof ruleSources)[number]

/**
 * `above`: a threshold is crossed when the value is strictly greater than it; `below`: strictly less. A
 * value equal to the threshold passes, as in the alerts engine ("PASS if value <= warn threshold, WARN if
 * warn < value <= critical, CRITICAL if value > critical").
 */
export const ruleComparisons = ['above', 'below'] as const
export type RuleComparison = (typeof ruleComparisons)[number]

/** The thresholds of a rule, least severe first. */
export const ruleLevels = ['warn', 'critical'] as const
export type RuleLevel = (typeof ruleLevels)[number]

const queryFailingPrefix = 'herald.rules.'
const queryFailingSuffix = '.query-failing'
/** Alarm names are at most 128 characters; the query-failing alarm adds its prefix and suffix to the rule name. */
export const maxRuleNameLength = 128 - queryFailingPrefix.length - queryFailingSuffix.length

/**
 * The alarm raised while a rule's query keeps failing: `herald.rules.<name>.query-failing`, a valid alarm
 * name for every valid rule name (the length limit of rule names leaves room for it, and the `herald.`
 * prefix is refused in rule names, so no rule's own alarm can take this name).
 */
export function queryFailingAlarmName(ruleName: string): string {
  return `${queryFailingPrefix}${ruleName}${queryFailingSuffix}`
}

/** A rule's name: the record key, a path segment of the API, and the name of the rule's alarm. */
export const ruleName = alarmName
  .max(maxRuleNameLength, `must be at most ${maxRuleNameLength} characters`)
  .refine((name) => !/^herald\./i.test(name), 'must not start with "herald." (kept for Herald\'s own alarms)')

const day = 86_400
const week = 7 * day

const seconds = (min: number, max: number, maxText: string) =>
  z
    .number({ error: 'must be a number of seconds' })
    .int('must be a whole number of seconds')
    .min(min, `must be at least ${min}`)
    .max(max, `must be at most ${max} (${maxText})`)

const labels = z
  .record(
    z.string().min(1, 'must not be empty').max(255, 'must be at most 255 characters'),
    z.string({ error: 'must be a string' }).max(1024, 'must be at most 1024 characters'),
  )
  .refine((l) => Object.keys(l).length <= 64, 'must have at most 64 labels')

export const thresholdSchema = z.strictObject({
  value: z
    // zod 4 refuses NaN and the infinities as numbers already.
    .number({ error: 'must be a number' })
    .describe('The threshold; a value equal to it passes'),
  message: z
    .string({ error: 'must be a string' })
    .regex(/\S/, 'must not be empty')
    .max(10_000, 'must be at most 10000 characters')
    .describe("The activation's message (and the engine's notify message in compatibility mode)"),
})
export type Threshold = z.infer<typeof thresholdSchema>

export const ruleSchema = z
  .strictObject({
    name: ruleName,
    source: z
      .enum(ruleSources, { error: 'must be one of prometheus, alerts-engine' })
      .default('prometheus')
      .describe('prometheus: an instant query against PROMETHEUS_URL; alerts-engine: GET /query'),
    query: z
      .string({ error: 'must be a string' })
      .regex(/\S/, 'must not be empty')
      .max(10_000, 'must be at most 10000 characters')
      .describe('A PromQL expression with a single value, or the alerts engine target'),
    intervalSecs: seconds(1, day, 'a day').describe('The rule is evaluated this often'),
    repeatIntervalSecs: seconds(1, week, 'a week').describe(
      "The alarm's reminder period (at least 10 s there), and the engine's notify repeat in compatibility mode",
    ),
    sustainSecs: seconds(0, day, 'a day')
      .optional()
      .describe('A threshold must be crossed continuously this long before the alarm is set'),
    comparison: z
      .enum(ruleComparisons, { error: 'must be above or below' })
      .default('above')
      .describe('above: crossed when value > threshold; below: crossed when value < threshold'),
    warn: thresholdSchema.optional(),
    critical: thresholdSchema.optional(),
    labels: labels.optional().describe("Carried by the rule's alarm registration (routes match on them)"),
  })
  .superRefine((r, ctx) => {
    if (r.warn === undefined && r.critical === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['warn'],
        message: 'warn or critical is required (a rule needs at least one threshold)',
      })
    }
    if (r.warn === undefined || r.critical === undefined) return
    const wrongSide =
      r.comparison === 'above' ? r.critical.value < r.warn.value : r.critical.value > r.warn.value
    if (wrongSide) {
      const side = r.comparison === 'above' ? 'at or above' : 'at or below'
      ctx.addIssue({
        code: 'custom',
        path: ['critical', 'value'],
        message: `must be ${side} warn.value (${r.warn.value}) with comparison ${r.comparison}`,
      })
    }
  })
/** A rule as read back (defaults applied). */
export type Rule = z.infer<typeof ruleSchema>
/** A rule as written (`source` and `comparison` may be left out). */
export type RuleInput = z.input<typeof ruleSchema>

export type ParsedRule = { ok: true; name: string; rule: Rule | null } | { ok: false; issues: FieldProblem[] }

/** A record of the rules topic (`value` null for a tombstone): the key must be the rule's name. */
export function parseRuleRecord(key: string, value: unknown): ParsedRule {
  if (!ruleName.safeParse(key).success) {
    return { ok: false, issues: [{ field: '(key)', reason: 'must be a rule name' }] }
  }
  if (value === null) return { ok: true, name: key, rule: null }
  const parsed = ruleSchema.safeParse(value)
  if (!parsed.success) return { ok: false, issues: problemsOf(parsed.error) }
  if (parsed.data.name !== key) {
    return { ok: false, issues: [{ field: 'name', reason: `must be ${key}, the record key` }] }
  }
  return { ok: true, name: key, rule: parsed.data }
}

const epochMs = z.number().int().min(100_000_000_000).max(Number.MAX_SAFE_INTEGER)

/**
 * What the evaluator remembers of a rule between evaluations (rules/src/evaluate.ts). Kept by the service
 * wherever it persists it, so a member that takes a rule over neither repeats nor loses a decision. Times
 * are milliseconds since the epoch.
 */
export const ruleStateSchema = z.strictObject({
  level: z
    .enum(['pass', 'warn', 'critical'])
    .describe("The level acted on: the rule's alarm is set with this level's severity, or cleared (pass)"),
  activeSince: epochMs
    .optional()
    .describe("While level is warn or critical: the activation's `at` (kept across an escalation)"),
  crossing: z
    .strictObject({ warn: epochMs.optional(), critical: epochMs.optional() })
    .describe('Since when each threshold has been crossed without a passing value in between'),
  notifiedAt: epochMs.optional().describe('Compatibility mode: when the last engine notify was due'),
  failures: z.number().int().min(0).describe('Failed evaluations in a row'),
  failingSince: epochMs.optional().describe('The first failure of the current run of failures'),
  failingReported: z.boolean().describe('queryFailing was emitted for the current run of failures'),
  lastValue: z.number().optional().describe('The value of the last successful evaluation'),
  evaluatedAt: epochMs.optional().describe('When the last evaluation (failed or not) was taken into account'),
})
export type RuleState = z.infer<typeof ruleStateSchema>

// The alerts engine (seed 003): GET /alerts answers a list of these. Unknown fields are ignored; the
// conversion to a Herald rule does the real validation, field by field.
const engineThresholdSchema = z.object(
  { value: z.unknown(), message: z.unknown() },
  { error: 'must be an object {value, message}' },
)

export const engineAlertSchema = z.object(
  {
    name: z.unknown(),
    query: z.unknown(),
    intervalSecs: z.unknown(),
    repeatIntervalSecs: z.unknown(),
    sustainSecs: z.unknown().optional(),
    warn: engineThresholdSchema.optional().nullable(),
    critical: engineThresholdSchema.optional().nullable(),
  },
  { error: 'must be an object' },
)
/** An alert as the engine serves it: `{name, query, intervalSecs, repeatIntervalSecs, warn?, critical?, sustainSecs?}`. */
export interface EngineAlert {
  name: string
  query: string
  intervalSecs: number
  repeatIntervalSecs: number
  sustainSecs?: number
  warn?: { value: number; message: string }
  critical?: { value: number; message: string }
}

/** An engine alert as a Herald rule (source alerts-engine, comparison above): not yet validated. */
export function ruleInputFromEngineAlert(alert: z.infer<typeof engineAlertSchema>): Record<string, unknown> {
  const input: Record<string, unknown> = {
    name: alert.name,
    source: 'alerts-engine',
    query: alert.query,
    intervalSecs: alert.intervalSecs,
    repeatIntervalSecs: alert.repeatIntervalSecs,
    comparison: 'above',
  }
  // The engine writes "no such threshold" as a missing field or null; Herald only as a missing one.
  if (alert.sustainSecs !== undefined && alert.sustainSecs !== null) input.sustainSecs = alert.sustainSecs
  if (alert.warn) input.warn = { value: alert.warn.value, message: alert.warn.message }
  if (alert.critical) input.critical = { value: alert.critical.value, message: alert.critical.message }
  return input
}

/** An engine alert that cannot be a Herald rule: its place in the list, its name when it has one, why. */
export interface RefusedEngineAlert {
  index: number
  name?: string
  problems: FieldProblem[]
}

export type EngineRules =
  | { ok: true; rules: Rule[]; refused: RefusedEngineAlert[] }
  | { ok: false; problem: string }

/**
 * The rules of a `GET /alerts` answer (a list, or `{alerts: [...]}`). Each alert is converted and
 * validated on its own: a bad one is refused with its problems and the others are kept; a name seen
 * before in the same answer is refused (the first one wins). `ok: false` when the answer is not a list
 * at all, so a caller keeps the rules it has rather than deleting them all.
 */
export function rulesFromEngine(body: unknown): EngineRules {
  const list =
    typeof body === 'object' && body !== null && !Array.isArray(body) && 'alerts' in body
      ? (body as { alerts: unknown }).alerts
      : body
  if (!Array.isArray(list)) {
    return { ok: false, problem: 'GET /alerts must answer a JSON list of alerts (or {"alerts": [...]})' }
  }
  const rules: Rule[] = []
  const refused: RefusedEngineAlert[] = []
  const seen = new Set<string>()
  for (const [index, entry] of list.entries()) {
    const name =
      typeof entry === 'object' && entry !== null && typeof (entry as { name?: unknown }).name === 'string'
        ? (entry as { name: string }).name
        : undefined
    const checked = checkEngineAlert(entry, seen)
    if (checked.ok) {
      seen.add(checked.rule.name)
      rules.push(checked.rule)
    } else {
      refused.push(
        name === undefined ? { index, problems: checked.issues } : { index, name, problems: checked.issues },
      )
    }
  }
  return { ok: true, rules, refused }
}

function checkEngineAlert(
  entry: unknown,
  seen: ReadonlySet<string>,
): { ok: true; rule: Rule } | { ok: false; issues: FieldProblem[] } {
  const shape = engineAlertSchema.safeParse(entry)
  if (!shape.success) return { ok: false, issues: problemsOf(shape.error) }
  const parsed = ruleSchema.safeParse(ruleInputFromEngineAlert(shape.data))
  if (!parsed.success) return { ok: false, issues: problemsOf(parsed.error) }
  if (seen.has(parsed.data.name)) {
    return {
      ok: false,
      issues: [{ field: 'name', reason: 'repeats the name of an earlier alert in the list' }],
    }
  }
  return { ok: true, rule: parsed.data }
}
