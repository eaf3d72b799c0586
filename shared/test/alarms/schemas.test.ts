import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  activationSchema,
  checkShelve,
  effectiveSchema,
  overrideKey,
  overrideKinds,
  overrideSchema,
  parseOverride,
  parseOverrideKey,
  registrationSchema,
  severityRank,
} from '@herald/shared/alarms/schemas'
import { problemsOf } from '@herald/shared/config-topics/schemas'
import type { z } from 'zod'

const t0 = 1_763_000_000_000

function problems(schema: z.ZodType, value: unknown): Record<string, string> {
  const result = schema.safeParse(value)
  return result.success ? {} : Object.fromEntries(problemsOf(result.error).map((p) => [p.field, p.reason]))
}

describe('registration schema', () => {
  test('a bare name is a registration: MEDIUM, not latching, no limits', () => {
    assert.deepEqual(registrationSchema.parse({ name: 'pump-7' }), {
      name: 'pump-7',
      severity: 'MEDIUM',
      latching: false,
    })
  })

  test('every field is accepted', () => {
    const full = {
      name: 'hall-2.pump_7@site-a',
      class: 'pumps',
      location: 'hall 2',
      category: 'cooling',
      severity: 'CRITICAL',
      latching: true,
      maxShelveSeconds: 0,
      onDelaySeconds: 5,
      offDelaySeconds: 30,
      maskedBy: 'mains',
      repeatSeconds: 10,
      docUrl: 'https://wiki.example.com/pumps#7',
      labels: { team: 'plant', env: 'prod' },
    }
    assert.deepEqual(registrationSchema.parse(full), full)
  })

  test('names are usable as Kafka keys and URL path segments: no "/", spaces or leading punctuation', () => {
    for (const name of ['a/b', 'pump 7', '.hidden', '', 'x'.repeat(129), 'é']) {
      assert.ok(problems(registrationSchema, { name }).name, `${JSON.stringify(name)} is refused`)
    }
    assert.deepEqual(problems(registrationSchema, { name: 'x'.repeat(128) }), {})
  })

  test('bad values are named with a reason', () => {
    assert.deepEqual(
      problems(registrationSchema, {
        name: 'pump-7',
        severity: 'high',
        latching: 'yes',
        maxShelveSeconds: -1,
        onDelaySeconds: 0,
        offDelaySeconds: 1.5,
        repeatSeconds: 9,
        maskedBy: 'pump-7',
        docUrl: 'ftp://example.com/x',
        labels: { team: 7 },
        colour: 'red',
      }),
      {
        '(body)': 'unknown field(s): colour',
        severity: 'must be one of LOW, MEDIUM, HIGH, CRITICAL (in capitals)',
        latching: 'must be true or false',
        maxShelveSeconds: 'must be at least 0',
        onDelaySeconds: 'must be at least 1',
        offDelaySeconds: 'must be a whole number of seconds',
        repeatSeconds: 'must be at least 10',
        docUrl: 'must be an http(s) URL',
        'labels.team': 'must be a string',
      },
    )
    assert.deepEqual(problems(registrationSchema, { name: 'pump-7', maskedBy: 'pump-7' }), {
      maskedBy: 'must name another alarm, not this one',
    })
    assert.deepEqual(problems(registrationSchema, { name: 'pump-7', repeatSeconds: 604_801 }), {
      repeatSeconds: 'must be at most 604800 (a week)',
    })
  })

  test('severities rank LOW < MEDIUM < HIGH < CRITICAL', () => {
    assert.ok(severityRank('LOW') < severityRank('MEDIUM'))
    assert.ok(severityRank('MEDIUM') < severityRank('HIGH'))
    assert.ok(severityRank('HIGH') < severityRank('CRITICAL'))
  })
})

describe('activation schema', () => {
  test('source and at are required; severity, message and value are not', () => {
    assert.deepEqual(activationSchema.parse({ source: 'rules', at: t0 }), { source: 'rules', at: t0 })
    assert.deepEqual(problems(activationSchema, {}), {
      source: 'must be a string',
      at: 'must be a number (milliseconds since the epoch)',
    })
  })

  test('a time in seconds is refused with a hint', () => {
    assert.deepEqual(problems(activationSchema, { source: 'rules', at: 1_763_000_000 }), {
      at: 'must be milliseconds since the epoch (this looks like seconds)',
    })
  })
})

describe('overrides', () => {
  test('each kind validates its own fields', () => {
    const valid = [
      { kind: 'shelved', until: t0, reason: 'maintenance', user: 'ann' },
      { kind: 'shelved', oneshot: true, reason: 'known', user: 'ann' },
      { kind: 'shelved', oneshot: true, until: t0, reason: 'known', user: 'ann' },
      { kind: 'disabled', reason: 'sensor broken', user: 'bob' },
      { kind: 'latched', at: t0 },
      { kind: 'ondelayed', until: t0 },
      { kind: 'offdelayed', until: t0 },
      { kind: 'masked', by: 'mains' },
    ]
    for (const value of valid) assert.deepEqual(overrideSchema.parse(value), value)
  })

  test('a shelve needs an until or oneshot: true, a reason and a user', () => {
    assert.deepEqual(
      problems(overrideSchema, { kind: 'shelved', oneshot: false, reason: ' ', user: 'ann' }),
      {
        reason: 'must not be empty',
        until: 'is required unless oneshot is true (a shelve ends at a time, or when the alarm clears)',
      },
    )
    assert.deepEqual(problems(overrideSchema, { kind: 'disabled', reason: 'x' }), {
      user: 'must be a string',
    })
  })

  test('an unknown kind and a field of another kind are refused', () => {
    assert.deepEqual(problems(overrideSchema, { kind: 'silenced' }), {
      kind: 'kind must be one of disabled, masked, ondelayed, shelved, offdelayed, latched',
    })
    assert.deepEqual(problems(overrideSchema, { kind: 'latched', at: t0, until: t0 }), {
      '(body)': 'unknown field(s): until',
    })
  })

  test('override keys are <name>/<kind> and read back', () => {
    for (const kind of overrideKinds) {
      assert.deepEqual(parseOverrideKey(overrideKey('hall-2.pump_7', kind)), { name: 'hall-2.pump_7', kind })
    }
    assert.equal(overrideKey('pump-7', 'shelved'), 'pump-7/shelved')
    for (const key of ['pump-7', 'pump-7/', '/shelved', 'pump-7/silenced', 'a/b/shelved', 'pump 7/shelved']) {
      assert.equal(parseOverrideKey(key), undefined, key)
    }
  })

  test("parseOverride checks the value's kind against the key's, and reads a tombstone", () => {
    assert.deepEqual(parseOverride('pump-7/latched', { kind: 'latched', at: t0 }), {
      ok: true,
      name: 'pump-7',
      kind: 'latched',
      override: { kind: 'latched', at: t0 },
    })
    assert.deepEqual(parseOverride('pump-7/shelved', null), {
      ok: true,
      name: 'pump-7',
      kind: 'shelved',
      override: null,
    })
    assert.deepEqual(parseOverride('pump-7/shelved', { kind: 'latched', at: t0 }), {
      ok: false,
      issues: [{ field: 'kind', reason: 'must be shelved, the kind in the key' }],
    })
    const badKey = parseOverride('pump-7', { kind: 'latched', at: t0 })
    assert.equal(badKey.ok, false)
    assert.match(badKey.ok ? '' : (badKey.issues[0]?.reason ?? ''), /<alarm name>\/<kind>/)
  })
})

describe('effective schema', () => {
  test('a record with its memory is valid, an unknown state is not', () => {
    const record = {
      name: 'pump-7',
      state: 'normal-latched',
      active: false,
      effectivelyActive: true,
      severity: 'HIGH',
      overrides: ['latched'],
      since: t0,
      acknowledged: false,
      memory: { latchedFor: t0, episodeAt: t0, events: 1, notifiedAt: t0, reminders: 0 },
    }
    assert.deepEqual(effectiveSchema.parse(record), record)
    assert.ok(problems(effectiveSchema, { ...record, state: 'snoozed' }).state)
  })
})

describe('checkShelve', () => {
  const now = t0
  const limited = { name: 'pump-7', maxShelveSeconds: 3600 }

  test('a shelve within maxShelveSeconds is accepted, one a second longer is refused with the limit', () => {
    assert.equal(checkShelve(limited, { until: now + 3_600_000 }, now), undefined)
    assert.deepEqual(checkShelve(limited, { until: now + 3_601_000 }, now), {
      field: 'until',
      reason: 'must be at most 3600 seconds from now (the maxShelveSeconds of alarm pump-7); asked for 3601',
    })
  })

  test('maxShelveSeconds 0: never shelvable, one-shot neither', () => {
    const never = { name: 'pump-7', maxShelveSeconds: 0 }
    for (const shelve of [{ until: now + 1000 }, { oneshot: true }]) {
      assert.deepEqual(checkShelve(never, shelve, now), {
        field: 'until',
        reason: 'alarm pump-7 may not be shelved (its maxShelveSeconds is 0)',
      })
    }
  })

  test('without a limit anything in the future goes, and a one-shot needs no until', () => {
    const free = { name: 'pump-7' }
    assert.equal(checkShelve(free, { until: now + 365 * 86_400_000 }, now), undefined)
    assert.equal(checkShelve(free, { oneshot: true }, now), undefined)
  })

  test('with a limit a one-shot shelve needs an until too; a past until is refused', () => {
    assert.match(
      checkShelve(limited, { oneshot: true }, now)?.reason ?? '',
      /at most 3600 seconds, one-shot too/,
    )
    assert.equal(checkShelve(limited, { oneshot: true, until: now + 60_000 }, now), undefined)
    assert.deepEqual(checkShelve(limited, { until: now }, now), {
      field: 'until',
      reason: 'must be in the future',
    })
  })
})
