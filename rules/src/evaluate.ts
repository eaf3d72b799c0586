// The evaluator's decision for one rule, one evaluation at a time: a pure state machine. The service asks
// the query, hands the outcome here with the rule's previous state, persists the new state and carries out
// the actions (alarm activations on Kafka, and in compatibility mode the engine's POST /notify and
// POST /resolve). Nothing here reads a clock, the network or the environment.
//
// Levels: pass < warn < critical. A threshold is crossed when the value is strictly beyond it (above:
// value > threshold, below: value < threshold), as in the alerts engine; a value equal to a threshold, and
// 0, are values like any other. A rule acts on the most severe level whose threshold has been crossed
// continuously for `sustainSecs`; it leaves a level at once when the value falls back (no sustain on the
// way down). A failed evaluation changes no level: it is counted, and reported once the failures in a row
// reach `queryFailingAfter`.
import type { Activation, AlarmSeverity } from '@herald/shared/alarms/schemas'
import {
  queryFailingAlarmName,
  type Rule,
  type RuleLevel,
  type RuleState,
  ruleLevels,
} from '@herald/shared/rules/schemas'

/**
 * The severity of a rule's alarm at each level. warn is MEDIUM, the alarms' default severity; critical is
 * CRITICAL, so warn → critical is a severity rise the alarms processor turns into an `escalated` event.
 */
export const levelSeverity: Readonly<Record<RuleLevel, AlarmSeverity>> = {
  warn: 'MEDIUM',
  critical: 'CRITICAL',
}

/** The severity of the query-failing alarm: the rule cannot tell, which is worth a look, not a page. */
export const queryFailingSeverity: AlarmSeverity = 'MEDIUM'

/** Failed evaluations in a row before `queryFailing` when the options name none. */
export const defaultQueryFailingAfter = 3

/** Timers and members' clocks run a little early or late: this much early still counts as on time. */
const maxClockToleranceMs = 1000

/** What one evaluation of a rule's query gave: a value, or why there is none (after the service's retries). */
export type EvaluationOutcome = { ok: true; value: number } | { ok: false; error: string }

export interface EvaluateOptions {
  /**
   * Compatibility mode (alert-exec): also emit `notify` on the first crossing, on every change of level
   * and every `repeatIntervalSecs` while the level holds, and `resolve` when the rule passes again.
   * Default false.
   */
  engineNotices?: boolean
  /** Failed evaluations in a row (one per interval) before `queryFailing` is emitted; at least 1, default 3. */
  queryFailingAfter?: number
}

/** The rule's alarm (named after the rule) is set at `level`; write `activation` under `alarmName`. */
interface SetsActivation {
  alarmName: string
  level: RuleLevel
  activation: Activation
}

/**
 * What the service does after an evaluation, in the order given. Each alarm action is one write:
 * `activate`, `escalated` and `deescalated` write their `activation` under `alarmName` on the activations
 * topic, `clear` writes its tombstone, `queryFailing` writes its activation under the query-failing alarm
 * and `queryRecovered` its tombstone. `notify` and `resolve` are emitted only with `engineNotices`; their
 * request bodies are `{alertName, message}` and `{alertName}` (the other fields are for logs).
 */
export type RuleAction =
  /** pass → warn or critical: a new trip, `activation.at` is now. */
  | ({ type: 'activate' } & SetsActivation)
  /** warn → critical, at once: the same trip (`activation.at` kept) with CRITICAL severity. */
  | ({ type: 'escalated'; from: 'warn' } & SetsActivation)
  /** critical → warn: the same trip with the warn severity and message. */
  | ({ type: 'deescalated'; from: 'critical' } & SetsActivation)
  /** warn or critical → pass: the rule's alarm is cleared (`value` absent when a deleted rule is retired). */
  | { type: 'clear'; alarmName: string; from: RuleLevel; value?: number }
  | {
      type: 'notify'
      alertName: string
      message: string
      level: RuleLevel
      reason: 'crossed' | 'escalated' | 'deescalated' | 'repeat'
    }
  | { type: 'resolve'; alertName: string }
  /** The query has failed `failures` evaluations in a row since `since`: set the query-failing alarm. */
  | {
      type: 'queryFailing'
      alarmName: string
      since: number
      failures: number
      error: string
      activation: Activation
    }
  /** A value again after a reported run of failures: clear the query-failing alarm. */
  | { type: 'queryRecovered'; alarmName: string; since: number; failures: number }

export interface Evaluation {
  state: RuleState
  actions: RuleAction[]
}

/** The state of a rule never evaluated: passing, nothing crossed, no failures. */
export function initialRuleState(): RuleState {
  return { level: 'pass', crossing: {}, failures: 0, failingReported: false }
}

/** The `source` of the activations a rule writes. */
export function activationSource(ruleName: string): string {
  return `rule:${ruleName}`
}

/**
 * The state to start from when none was kept but the rule's alarm is still set on the activations topic
 * (written by this rule: `activation.source` is `activationSource(name)`): the level of its severity, the
 * trip's `at`, thresholds taken as crossed since then (no second sustain), and, in compatibility mode, a
 * notify taken as sent at `now` (the engine heard of it before; the next repeat comes a period later).
 */
export function stateFromActivation(activation: Activation | undefined, now: number): RuleState {
  const state = initialRuleState()
  if (activation === undefined) return state
  const level: RuleLevel = activation.severity === levelSeverity.critical ? 'critical' : 'warn'
  state.level = level
  state.activeSince = activation.at
  state.crossing =
    level === 'critical' ? { warn: activation.at, critical: activation.at } : { warn: activation.at }
  state.notifiedAt = now
  if (activation.value !== undefined) state.lastValue = activation.value
  return state
}

const rank = (level: RuleLevel | 'pass') => (level === 'pass' ? 0 : ruleLevels.indexOf(level) + 1)

/** Whether `value` is beyond the threshold of `level` (strictly: a value equal to it passes). */
export function crosses(rule: Rule, level: RuleLevel, value: number): boolean {
  const threshold = rule[level]?.value
  if (threshold === undefined) return false
  return rule.comparison === 'below' ? value < threshold : value > threshold
}

/**
 * One evaluation of `rule`: `state` is what the previous one returned (undefined for a rule never
 * evaluated), `now` the time the evaluation stands for, in ms. Best is the due time from schedule.ts:
 * sustain and repeats then count in whole intervals, whatever the query's latency and retries. A NaN
 * value is a failed evaluation (Prometheus' NaN says nothing about the threshold).
 */
export function evaluate(
  rule: Rule,
  state: RuleState | undefined,
  outcome: EvaluationOutcome,
  now: number,
  options: EvaluateOptions = {},
): Evaluation {
  const queryFailingAfter = options.queryFailingAfter ?? defaultQueryFailingAfter
  if (!Number.isInteger(queryFailingAfter) || queryFailingAfter < 1) {
    throw new RangeError(`queryFailingAfter must be a whole number >= 1, not ${queryFailingAfter}`)
  }
  const previous = state ?? initialRuleState()
  const next: RuleState = structuredClone(previous)
  next.evaluatedAt = now
  const actions: RuleAction[] = []
  const result =
    outcome.ok && Number.isNaN(outcome.value) ? { ok: false as const, error: 'the query gave NaN' } : outcome

  if (!result.ok) {
    next.failures = previous.failures + 1
    next.failingSince = previous.failingSince ?? now
    if (next.failures >= queryFailingAfter && !previous.failingReported) {
      next.failingReported = true
      actions.push(queryFailingAction(rule, next.failingSince, next.failures, result.error))
    }
    return { state: next, actions }
  }

  if (previous.failingReported && previous.failingSince !== undefined) {
    actions.push({
      type: 'queryRecovered',
      alarmName: queryFailingAlarmName(rule.name),
      since: previous.failingSince,
      failures: previous.failures,
    })
  }
  next.failures = 0
  delete next.failingSince
  next.failingReported = false

  const value = result.value
  next.lastValue = value
  // A failed evaluation in between neither breaks nor proves a crossing: it continues from its first value.
  next.crossing = {}
  for (const level of ruleLevels) {
    if (crosses(rule, level, value)) next.crossing[level] = previous.crossing[level] ?? now
  }

  const intervalMs = rule.intervalSecs * 1000
  const toleranceMs = Math.min(maxClockToleranceMs, intervalMs / 4)
  const sustainMs = (rule.sustainSecs ?? 0) * 1000
  // A level the rule already acts on (or a less severe one) needs no second sustain; a new one does, and
  // with a sustain it needs two values at least, so a spike seen once is never acted on.
  const holds = (level: RuleLevel) => {
    const since = next.crossing[level]
    if (since === undefined) return false
    if (rank(level) <= rank(previous.level) || sustainMs === 0) return true
    return now > since && now - since >= sustainMs - toleranceMs
  }
  const target: RuleLevel | 'pass' = holds('critical') ? 'critical' : holds('warn') ? 'warn' : 'pass'
  const notices = options.engineNotices === true

  if (target === 'pass') {
    if (previous.level !== 'pass') {
      actions.push({ type: 'clear', alarmName: rule.name, from: previous.level, value })
      if (notices) actions.push({ type: 'resolve', alertName: rule.name })
    }
    next.level = 'pass'
    delete next.activeSince
    delete next.notifiedAt
    return { state: next, actions }
  }

  const message = rule[target]?.message ?? ''
  const notify = (reason: Extract<RuleAction, { type: 'notify' }>['reason']) => {
    if (!notices) return
    actions.push({ type: 'notify', alertName: rule.name, message, level: target, reason })
    next.notifiedAt = now
  }
  const activating = (at: number): SetsActivation => ({
    alarmName: rule.name,
    level: target,
    activation: { severity: levelSeverity[target], message, value, source: activationSource(rule.name), at },
  })
  next.level = target
  if (previous.level === 'pass') {
    next.activeSince = now
    actions.push({ type: 'activate', ...activating(now) })
    notify('crossed')
  } else if (target !== previous.level) {
    const at = previous.activeSince ?? now
    next.activeSince = at
    if (target === 'critical') {
      actions.push({ type: 'escalated', from: 'warn', ...activating(at) })
      notify('escalated')
    } else {
      actions.push({ type: 'deescalated', from: 'critical', ...activating(at) })
      notify('deescalated')
    }
  } else if (notices) {
    const repeatMs = rule.repeatIntervalSecs * 1000
    const last = previous.notifiedAt
    if (last === undefined || now - last >= repeatMs - Math.min(maxClockToleranceMs, repeatMs / 4)) {
      notify('repeat')
    }
  }
  return { state: next, actions }
}

function queryFailingAction(
  rule: Rule,
  since: number,
  failures: number,
  error: string,
): Extract<RuleAction, { type: 'queryFailing' }> {
  const message =
    `The query of rule ${rule.name} has failed ${failures} evaluations in a row since ` +
    `${new Date(since).toISOString()}; the rule's own alarm keeps its last state. Last error: ${error}`
  return {
    type: 'queryFailing',
    alarmName: queryFailingAlarmName(rule.name),
    since,
    failures,
    error,
    activation: {
      severity: queryFailingSeverity,
      message: message.slice(0, 10_000),
      source: activationSource(rule.name),
      at: since,
    },
  }
}

/**
 * What to undo when a rule is deleted (or stops being this member's for good with nobody taking it
 * over): clear its alarm when set, resolve it at the engine in compatibility mode when it was notified,
 * and clear the query-failing alarm when it was raised.
 */
export function retireRule(
  name: string,
  state: RuleState | undefined,
  options: EvaluateOptions = {},
): RuleAction[] {
  const actions: RuleAction[] = []
  if (state === undefined) return actions
  if (state.failingReported && state.failingSince !== undefined) {
    actions.push({
      type: 'queryRecovered',
      alarmName: queryFailingAlarmName(name),
      since: state.failingSince,
      failures: state.failures,
    })
  }
  if (state.level !== 'pass') {
    actions.push({ type: 'clear', alarmName: name, from: state.level })
    if (options.engineNotices === true) actions.push({ type: 'resolve', alertName: name })
  }
  return actions
}
