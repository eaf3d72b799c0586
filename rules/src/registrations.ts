// The alarms a rule uses, as registrations: the service registers them on first use (herald.alarms.registered),
// so an operator need not before a rule can raise anything.
import type { RegistrationInput } from '@herald/shared/alarms/schemas'
import { queryFailingAlarmName, type Rule } from '@herald/shared/rules/schemas'
import { levelSeverity, queryFailingSeverity } from './evaluate.ts'

/** The bounds of an alarm's `repeatSeconds` (shared/src/alarms/schemas.ts). */
const minRepeatSeconds = 10
const maxRepeatSeconds = 7 * 86_400

/** The `class` of rules' alarms (alarm events carry it as alarmDefinitionId, routes may match on it). */
export const ruleAlarmClass = 'herald-rule'
export const queryFailingAlarmClass = 'herald-rule-query-failing'

/**
 * The rule's own alarm: named after the rule, reminding every `repeatIntervalSecs` (raised to 10 s, the
 * alarms' shortest period; compatibility mode's engine notices keep the rule's own period), with the
 * rule's labels. Its severity is only the default of an activation naming none, which the rule's never do.
 * It latches: only a latching alarm takes an acknowledgement (JAWS), and an ack is how a person stops the
 * repeats of a crossed threshold; a threshold that passes before anyone acknowledged it stays
 * `normal-latched` (still told) until someone does, so a short crossing is not missed.
 */
export function ruleAlarmRegistration(rule: Rule): RegistrationInput {
  return {
    name: rule.name,
    class: ruleAlarmClass,
    severity: rule.critical === undefined ? levelSeverity.warn : levelSeverity.critical,
    latching: true,
    repeatSeconds: Math.min(maxRepeatSeconds, Math.max(minRepeatSeconds, rule.repeatIntervalSecs)),
    ...(rule.labels === undefined ? {} : { labels: { ...rule.labels } }),
  }
}

/** The alarm raised while the rule's query keeps failing, with the rule's labels so it reaches the same people. */
export function queryFailingRegistration(rule: Rule): RegistrationInput {
  return {
    name: queryFailingAlarmName(rule.name),
    class: queryFailingAlarmClass,
    severity: queryFailingSeverity,
    ...(rule.labels === undefined ? {} : { labels: { ...rule.labels } }),
  }
}
