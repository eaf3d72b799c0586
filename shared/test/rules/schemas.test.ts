import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { alarmName } from '@herald/shared/alarms/schemas'
import { problemsOf } from '@herald/shared/config-topics/schemas'
import {
  maxRuleNameLength,
  parseRuleRecord,
  queryFailingAlarmName,
  ruleSchema,
  ruleStateSchema,
  rulesFromEngine,
} from '@herald/shared/rules/schemas'
import type { z } from 'zod'

function problems(schema: z.ZodType, value: unknown): Record<string, string> {
  const result = schema.safeParse(value)
  return result.success ? {} : Object.fromEntries(problemsOf(result.error).map((p) => [p.field, p.reason]))
}

const minimal = {
  name: 'disk-full',
  query: 'disk_used_ratio',
  intervalSecs: 10,
  repeatIntervalSecs: 60,
  warn: { value: 0.8, message: 'disk above 80%' },
}

describe('rule schema', () => {
  test('the seed fields make a rule: source prometheus and comparison above by default', () => {
    assert.deepEqual(ruleSchema.parse(minimal), { ...minimal, source: 'prometheus', comparison: 'above' })
  })

  test('every field is accepted', () => {
    const full = {
      name: 'queue.depth_high@eu-1',
      source: 'alerts-engine',
      query: 'queue-depth',
      intervalSecs: 5,
      repeatIntervalSecs: 1,
      sustainSecs: 0,
      comparison: 'below',
      warn: { value: 10, message: 'few consumers' },
      critical: { value: 0, message: 'no consumers' },
      labels: { team: 'queues' },
    }
    assert.deepEqual(ruleSchema.parse(full), full)
  })

  test('a rule needs a threshold, and critical beyond warn on the side of the comparison', () => {
    const { warn: _, ...noThreshold } = minimal
    assert.deepEqual(problems(ruleSchema, noThreshold), {
      warn: 'warn or critical is required (a rule needs at least one threshold)',
    })
    assert.deepEqual(problems(ruleSchema, { ...minimal, critical: { value: 0.5, message: 'x' } }), {
      'critical.value': 'must be at or above warn.value (0.8) with comparison above',
    })
    assert.deepEqual(
      problems(ruleSchema, { ...minimal, comparison: 'below', critical: { value: 0.9, message: 'x' } }),
      { 'critical.value': 'must be at or below warn.value (0.8) with comparison below' },
    )
    const onlyCritical = { ...noThreshold, critical: { value: 0, message: 'zero' } }
    assert.deepEqual(problems(ruleSchema, onlyCritical), {})
  })

  test('bad values are named with a reason', () => {
    assert.deepEqual(
      problems(ruleSchema, {
        name: 'disk full',
        source: 'graphite',
        query: ' ',
        intervalSecs: 0,
        repeatIntervalSecs: 1.5,
        sustainSecs: -1,
        comparison: 'over',
        warn: { value: 'high', message: '' },
        critical: { value: Number.POSITIVE_INFINITY, message: 'x' },
        labels: { team: 1 },
        colour: 'red',
      }),
      {
        '(body)': 'unknown field(s): colour',
        name: 'must be 1-128 letters, digits, ".", "_", "@" or "-"',
        source: 'must be one of prometheus, alerts-engine',
        query: 'must not be empty',
        intervalSecs: 'must be at least 1',
        repeatIntervalSecs: 'must be a whole number of seconds',
        sustainSecs: 'must be at least 0',
        comparison: 'must be above or below',
        'warn.value': 'must be a number',
        'warn.message': 'must not be empty',
        'critical.value': 'must be a number',
        'labels.team': 'must be a string',
      },
    )
    assert.deepEqual(problems(ruleSchema, { ...minimal, intervalSecs: 86_401 }), {
      intervalSecs: 'must be at most 86400 (a day)',
    })
  })

  test('a rule name leaves room for its query-failing alarm, which is a valid alarm name', () => {
    const longest = 'r'.repeat(maxRuleNameLength)
    assert.deepEqual(problems(ruleSchema, { ...minimal, name: longest }), {})
    assert.ok(alarmName.safeParse(queryFailingAlarmName(longest)).success)
    assert.equal(queryFailingAlarmName('disk-full'), 'herald.rules.disk-full.query-failing')
    assert.deepEqual(problems(ruleSchema, { ...minimal, name: `${longest}r` }), {
      name: `must be at most ${maxRuleNameLength} characters`,
    })
  })

  test('names starting with herald. are kept for Herald, so no rule alarm takes a query-failing name', () => {
    for (const name of ['herald.rules.x.query-failing', 'Herald.x']) {
      assert.deepEqual(problems(ruleSchema, { ...minimal, name }), {
        name: 'must not start with "herald." (kept for Herald\'s own alarms)',
      })
    }
    assert.deepEqual(problems(ruleSchema, { ...minimal, name: 'heraldic' }), {})
  })
})

describe('rules topic records', () => {
  test('a record is a rule under its name, a tombstone deletes it', () => {
    assert.deepEqual(parseRuleRecord('disk-full', minimal), {
      ok: true,
      name: 'disk-full',
      rule: ruleSchema.parse(minimal),
    })
    assert.deepEqual(parseRuleRecord('disk-full', null), { ok: true, name: 'disk-full', rule: null })
  })

  test('a key that is not the name, or not a rule name, is refused', () => {
    assert.deepEqual(parseRuleRecord('other', minimal), {
      ok: false,
      issues: [{ field: 'name', reason: 'must be other, the record key' }],
    })
    assert.deepEqual(parseRuleRecord('a/b', null), {
      ok: false,
      issues: [{ field: '(key)', reason: 'must be a rule name' }],
    })
  })
})

describe('rule state schema', () => {
  test('a state round-trips through JSON', () => {
    const state = {
      level: 'warn',
      activeSince: 1_763_000_000_000,
      crossing: { warn: 1_762_999_990_000 },
      notifiedAt: 1_763_000_000_000,
      failures: 0,
      failingReported: false,
      lastValue: 0,
      evaluatedAt: 1_763_000_000_000,
    }
    assert.deepEqual(ruleStateSchema.parse(JSON.parse(JSON.stringify(state))), state)
    assert.ok(!ruleStateSchema.safeParse({ ...state, level: 'WARN' }).success)
  })
})

describe('alerts engine import', () => {
  const engineAlert = {
    name: 'alert-1',
    query: 'test-query-1',
    intervalSecs: 5,
    repeatIntervalSecs: 30,
    warn: { value: 50, message: 'warn: above 50' },
    critical: { value: 100, message: 'critical: above 100' },
  }

  test('an engine alert becomes a rule with source alerts-engine and comparison above', () => {
    const result = rulesFromEngine([engineAlert, { ...engineAlert, name: 'alert-2', sustainSecs: 10 }])
    assert.deepEqual(result, {
      ok: true,
      rules: [
        { ...engineAlert, source: 'alerts-engine', comparison: 'above' },
        { ...engineAlert, name: 'alert-2', sustainSecs: 10, source: 'alerts-engine', comparison: 'above' },
      ],
      refused: [],
    })
  })

  test('{"alerts": [...]} is read too; null thresholds and unknown fields are ignored', () => {
    const result = rulesFromEngine({
      alerts: [{ ...engineAlert, warn: null, sustainSecs: null, owner: 'team-a' }],
    })
    assert.ok(result.ok)
    const { warn: _, ...withoutWarn } = engineAlert
    assert.deepEqual(result.rules, [{ ...withoutWarn, source: 'alerts-engine', comparison: 'above' }])
  })

  test('a bad alert is refused with its problems and the others are kept; a repeated name too', () => {
    const result = rulesFromEngine([
      { ...engineAlert, name: 'bad name', intervalSecs: 0.5 },
      'not an object',
      engineAlert,
      { ...engineAlert, warn: { value: 1, message: 'other' } },
      { ...engineAlert, name: 'alert-3', critical: 'high' },
    ])
    assert.ok(result.ok)
    assert.deepEqual(
      result.rules.map((r) => r.name),
      ['alert-1'],
    )
    assert.deepEqual(result.refused, [
      {
        index: 0,
        name: 'bad name',
        problems: [
          { field: 'name', reason: 'must be 1-128 letters, digits, ".", "_", "@" or "-"' },
          { field: 'intervalSecs', reason: 'must be a whole number of seconds' },
        ],
      },
      { index: 1, problems: [{ field: '(body)', reason: 'must be an object' }] },
      {
        index: 3,
        name: 'alert-1',
        problems: [{ field: 'name', reason: 'repeats the name of an earlier alert in the list' }],
      },
      {
        index: 4,
        name: 'alert-3',
        problems: [{ field: 'critical', reason: 'must be an object {value, message}' }],
      },
    ])
  })

  test('an answer that is not a list is refused as a whole', () => {
    for (const body of [{ data: [] }, 'alerts', null]) {
      const result = rulesFromEngine(body)
      assert.equal(result.ok, false)
    }
  })
})
