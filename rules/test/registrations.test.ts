import assert from 'node:assert/strict'
import { test } from 'node:test'
import { queryFailingRegistration, ruleAlarmRegistration } from '@herald/rules/registrations'
import { registrationSchema } from '@herald/shared/alarms/schemas'
import { type RuleInput, ruleSchema } from '@herald/shared/rules/schemas'

const rule = (overrides: Partial<RuleInput> = {}) =>
  ruleSchema.parse({
    name: 'cpu-high',
    query: 'cpu',
    intervalSecs: 10,
    repeatIntervalSecs: 300,
    warn: { value: 50, message: 'cpu above 50' },
    labels: { team: 'infra' },
    ...overrides,
  })

test("a rule's alarm is named after it, latches (an ack stops its repeats), reminds every repeatIntervalSecs and carries its labels", () => {
  const registration = registrationSchema.parse(ruleAlarmRegistration(rule()))
  assert.deepEqual(registration, {
    name: 'cpu-high',
    class: 'herald-rule',
    severity: 'MEDIUM',
    latching: true,
    repeatSeconds: 300,
    labels: { team: 'infra' },
  })
})

test("a repeat shorter than the alarms' 10 s is raised to 10 s; a rule with critical defaults to CRITICAL", () => {
  const registration = ruleAlarmRegistration(
    rule({ repeatIntervalSecs: 2, critical: { value: 90, message: 'x' }, labels: undefined }),
  )
  assert.deepEqual(registrationSchema.parse(registration), {
    name: 'cpu-high',
    class: 'herald-rule',
    severity: 'CRITICAL',
    latching: true,
    repeatSeconds: 10,
  })
})

test('the query-failing alarm is a valid registration with the rule labels, even for the longest name', () => {
  assert.deepEqual(registrationSchema.parse(queryFailingRegistration(rule())), {
    name: 'herald.rules.cpu-high.query-failing',
    class: 'herald-rule-query-failing',
    severity: 'MEDIUM',
    latching: false,
    labels: { team: 'infra' },
  })
  assert.ok(registrationSchema.safeParse(queryFailingRegistration(rule({ name: 'r'.repeat(101) }))).success)
})
