import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  type EvaluateOptions,
  type EvaluationOutcome,
  evaluate,
  initialRuleState,
  levelSeverity,
  type RuleAction,
  retireRule,
  stateFromActivation,
} from '@herald/rules/evaluate'
import { type Activation, activationSchema } from '@herald/shared/alarms/schemas'
import { type Rule, type RuleInput, ruleSchema, ruleStateSchema } from '@herald/shared/rules/schemas'

const t0 = 1_763_000_000_000
const s = (seconds: number) => t0 + seconds * 1000

function rule(overrides: Partial<RuleInput> = {}): Rule {
  return ruleSchema.parse({
    name: 'cpu-high',
    query: 'cpu',
    intervalSecs: 10,
    repeatIntervalSecs: 60,
    warn: { value: 50, message: 'cpu above 50' },
    critical: { value: 100, message: 'cpu above 100' },
    ...overrides,
  })
}

type Step = number | null | { error: string }
const outcomeOf = (step: Step): EvaluationOutcome =>
  typeof step === 'number' ? { ok: true, value: step } : { ok: false, error: step?.error ?? 'timeout' }

/**
 * Evaluates `steps` one interval apart from t0 (or at the given seconds), checking every state against
 * the state schema and that the previous state is not changed; returns each action with its second.
 */
function run(
  r: Rule,
  steps: Array<Step | [seconds: number, step: Step]>,
  options: EvaluateOptions = { engineNotices: true },
) {
  let state = initialRuleState()
  const seen: Array<{ at: number; action: RuleAction }> = []
  steps.forEach((entry, i) => {
    const [at, step] = Array.isArray(entry) ? entry : [i * r.intervalSecs, entry]
    const before = structuredClone(state)
    const result = evaluate(r, state, outcomeOf(step), s(at), options)
    assert.deepEqual(state, before, 'the previous state is left as it was')
    state = ruleStateSchema.parse(JSON.parse(JSON.stringify(result.state)))
    for (const action of result.actions) seen.push({ at, action })
  })
  return { state, seen, kinds: seen.map(({ at, action }) => `${at} ${label(action)}`) }
}

function label(action: RuleAction): string {
  switch (action.type) {
    case 'notify':
      return `notify ${action.level} ${action.reason}`
    case 'activate':
    case 'escalated':
    case 'deescalated':
      return `${action.type} ${action.activation.severity}`
    default:
      return action.type
  }
}

describe('levels and engine notices', () => {
  test('pass → warn → critical → pass: notify(warn), repeats, notify(critical) at once, one resolve', () => {
    const values = [10, 60, 60, 60, 60, 60, 60, 60, 150, 150, 150, 150, 150, 150, 150, 10, 10]
    const { kinds } = run(rule(), values)
    assert.deepEqual(kinds, [
      '10 activate MEDIUM',
      '10 notify warn crossed',
      '70 notify warn repeat',
      // The critical notice comes with the first critical value, not after the warn's repeat interval.
      '80 escalated CRITICAL',
      '80 notify critical escalated',
      '140 notify critical repeat',
      '150 clear',
      '150 resolve',
    ])
  })

  test('notify and resolve carry the seed bodies: the rule name as alertName and the level message', () => {
    const { seen } = run(rule(), [60, 150, 10])
    const bodies = seen
      .map(({ action }) => action)
      .filter((a) => a.type === 'notify' || a.type === 'resolve')
      .map((a) =>
        a.type === 'notify' ? { alertName: a.alertName, message: a.message } : { alertName: a.alertName },
      )
    assert.deepEqual(bodies, [
      { alertName: 'cpu-high', message: 'cpu above 50' },
      { alertName: 'cpu-high', message: 'cpu above 100' },
      { alertName: 'cpu-high' },
    ])
  })

  test('repeats follow repeatIntervalSecs, also when it is not a multiple of the interval', () => {
    const { kinds } = run(rule({ repeatIntervalSecs: 25 }), [60, 60, 60, 60, 60, 60, 60])
    assert.deepEqual(kinds, [
      '0 activate MEDIUM',
      '0 notify warn crossed',
      '30 notify warn repeat',
      '60 notify warn repeat',
    ])
  })

  test('an evaluation a few milliseconds early still sends the repeat', () => {
    const { kinds } = run(rule(), [
      [0, 60],
      [59.995, 60],
    ])
    assert.deepEqual(kinds, ['0 activate MEDIUM', '0 notify warn crossed', '59.995 notify warn repeat'])
  })

  test('critical straight from pass is one activation with CRITICAL, then back to warn is deescalated', () => {
    const { seen, kinds } = run(rule(), [150, 60, 60, 10])
    assert.deepEqual(kinds, [
      '0 activate CRITICAL',
      '0 notify critical crossed',
      '10 deescalated MEDIUM',
      '10 notify warn deescalated',
      '30 clear',
      '30 resolve',
    ])
    const deescalated = seen[2]?.action
    assert.equal(deescalated?.type, 'deescalated')
    if (deescalated?.type === 'deescalated') assert.equal(deescalated.activation.at, s(0), 'the same trip')
  })

  test('activations are valid alarm activations; an escalation keeps the trip time and carries the value', () => {
    const { seen } = run(rule(), [10, 60, 150])
    const activations = seen.flatMap(({ action }) =>
      'activation' in action
        ? [{ type: action.type, alarm: action.alarmName, activation: action.activation }]
        : [],
    )
    const expected: Array<{ type: string; alarm: string; activation: Activation }> = [
      {
        type: 'activate',
        alarm: 'cpu-high',
        activation: {
          severity: 'MEDIUM',
          message: 'cpu above 50',
          value: 60,
          source: 'rule:cpu-high',
          at: s(10),
        },
      },
      {
        type: 'escalated',
        alarm: 'cpu-high',
        activation: {
          severity: 'CRITICAL',
          message: 'cpu above 100',
          value: 150,
          source: 'rule:cpu-high',
          at: s(10),
        },
      },
    ]
    assert.deepEqual(activations, expected)
    for (const { activation } of activations) activationSchema.parse(activation)
  })

  test('without engine notices only the alarm actions come out', () => {
    const { kinds } = run(rule(), [60, 60, 60, 60, 60, 60, 60, 150, 10], {})
    assert.deepEqual(kinds, ['0 activate MEDIUM', '70 escalated CRITICAL', '80 clear'])
  })

  test('a rule with a critical threshold only goes from pass to critical and back', () => {
    const { warn: _, ...onlyCritical } = rule()
    const { kinds } = run(ruleSchema.parse(onlyCritical), [60, 150, 60])
    assert.deepEqual(kinds, ['10 activate CRITICAL', '10 notify critical crossed', '20 clear', '20 resolve'])
  })

  test('severities: warn is MEDIUM and critical is CRITICAL', () => {
    assert.deepEqual(levelSeverity, { warn: 'MEDIUM', critical: 'CRITICAL' })
  })
})

describe('values and comparisons', () => {
  test('a value of 0 is a value: with warn at 0.5 (above) it passes, and an alarm set before is cleared', () => {
    const r = rule({
      warn: { value: 0.5, message: 'errors' },
      critical: { value: 5, message: 'many errors' },
    })
    assert.deepEqual(run(r, [0, 0, 0]).kinds, [])
    assert.deepEqual(run(r, [1, 0]).kinds, [
      '0 activate MEDIUM',
      '0 notify warn crossed',
      '10 clear',
      '10 resolve',
    ])
  })

  test('a value equal to a threshold passes it (the engine: PASS if value <= warn)', () => {
    assert.deepEqual(run(rule(), [50, 100]).kinds, ['10 activate MEDIUM', '10 notify warn crossed'])
  })

  test('below: crossed when the value is less than the threshold, 0 included', () => {
    const r = rule({
      comparison: 'below',
      warn: { value: 10, message: 'few consumers' },
      critical: { value: 0.5, message: 'no consumers' },
    })
    assert.deepEqual(run(r, [20, 10, 8, 0, 3, 12]).kinds, [
      '20 activate MEDIUM',
      '20 notify warn crossed',
      '30 escalated CRITICAL',
      '30 notify critical escalated',
      '40 deescalated MEDIUM',
      '40 notify warn deescalated',
      '50 clear',
      '50 resolve',
    ])
  })

  test('negative values and huge ones are values too', () => {
    const r = rule({ warn: { value: -5, message: 'cold' }, critical: { value: 1e300, message: 'x' } })
    assert.deepEqual(run(r, [-10, -4, Number.MAX_VALUE]).kinds, [
      '10 activate MEDIUM',
      '10 notify warn crossed',
      '20 escalated CRITICAL',
      '20 notify critical escalated',
    ])
  })
})

describe('sustain', () => {
  test('a spike shorter than sustainSecs is held back; a crossing that lasts is acted on once it has', () => {
    const r = rule({ sustainSecs: 30 })
    assert.deepEqual(run(r, [10, 60, 10, 60, 60, 10]).kinds, [], 'never crossed for 30 s')
    assert.deepEqual(run(r, [10, 60, 60, 60, 60, 60]).kinds, ['40 activate MEDIUM', '40 notify warn crossed'])
  })

  test('with a sustain shorter than the interval, one violating value is not enough: two are', () => {
    const r = rule({ sustainSecs: 5 })
    assert.deepEqual(run(r, [60, 10, 60, 10]).kinds, [])
    assert.deepEqual(run(r, [60, 60]).kinds, ['10 activate MEDIUM', '10 notify warn crossed'])
  })

  test('escalation waits for critical to be sustained too; leaving a level needs no sustain', () => {
    const r = rule({ sustainSecs: 20 })
    assert.deepEqual(run(r, [60, 60, 60, 150, 150, 150, 60, 10]).kinds, [
      '20 activate MEDIUM',
      '20 notify warn crossed',
      '50 escalated CRITICAL',
      '50 notify critical escalated',
      '60 deescalated MEDIUM',
      '60 notify warn deescalated',
      '70 clear',
      '70 resolve',
    ])
  })

  test('a failed evaluation neither breaks a crossing nor completes one', () => {
    const r = rule({ sustainSecs: 20 })
    const timeout = { error: 'timeout' }
    assert.deepEqual(run(r, [60, timeout, timeout, timeout]).kinds, ['30 queryFailing'])
    assert.deepEqual(run(r, [60, timeout, 60]).kinds, ['20 activate MEDIUM', '20 notify warn crossed'])
  })
})

describe('failed queries', () => {
  const timeout = { error: 'timeout after 5000 ms' }

  test('failures never set nor clear the alarm, never notify nor resolve, and hold back repeats', () => {
    const r = rule()
    assert.deepEqual(run(r, [10, timeout, timeout]).kinds, [])
    const whileActive = run(r, [60, timeout, timeout, timeout, timeout, timeout, timeout, timeout, 60])
    assert.deepEqual(whileActive.kinds, [
      '0 activate MEDIUM',
      '0 notify warn crossed',
      '30 queryFailing',
      '80 queryRecovered',
      '80 notify warn repeat',
    ])
    assert.equal(whileActive.state.level, 'warn')
  })

  test('queryFailing after N failures in a row, once, with the first failure time; queryRecovered once', () => {
    const r = rule()
    const { seen, state } = run(r, [10, timeout, timeout, null, null, 10, 10])
    assert.deepEqual(
      seen.map(({ at, action }) => ({ at, action })),
      [
        {
          at: 30,
          action: {
            type: 'queryFailing',
            alarmName: 'herald.rules.cpu-high.query-failing',
            since: s(10),
            failures: 3,
            error: 'timeout',
            activation: {
              severity: 'MEDIUM',
              message:
                'The query of rule cpu-high has failed 3 evaluations in a row since 2025-11-13T02:13:30.000Z; ' +
                "the rule's own alarm keeps its last state. Last error: timeout",
              source: 'rule:cpu-high',
              at: s(10),
            },
          },
        },
        {
          at: 50,
          action: {
            type: 'queryRecovered',
            alarmName: 'herald.rules.cpu-high.query-failing',
            since: s(10),
            failures: 4,
          },
        },
      ],
    )
    assert.equal(state.failures, 0)
  })

  test('fewer failures in a row than N are forgotten at the next value', () => {
    const { kinds } = run(rule(), [timeout, timeout, 10, timeout, timeout, 10], { queryFailingAfter: 3 })
    assert.deepEqual(kinds, [])
    assert.deepEqual(run(rule(), [timeout], { queryFailingAfter: 1 }).kinds, ['0 queryFailing'])
  })

  test('NaN is a failed evaluation, not a pass', () => {
    const { kinds, state } = run(rule(), [60, Number.NaN, Number.NaN, Number.NaN])
    assert.deepEqual(kinds, ['0 activate MEDIUM', '0 notify warn crossed', '30 queryFailing'])
    assert.equal(state.level, 'warn')
  })

  test('queryFailingAfter must be a whole number >= 1', () => {
    assert.throws(
      () => evaluate(rule(), undefined, { ok: true, value: 1 }, t0, { queryFailingAfter: 0 }),
      /queryFailingAfter must be a whole number >= 1/,
    )
  })
})

describe('state from elsewhere', () => {
  test('a rule evaluated for the first time starts from pass', () => {
    const result = evaluate(rule(), undefined, { ok: true, value: 10 }, t0)
    assert.deepEqual(result, {
      state: { ...initialRuleState(), lastValue: 10, evaluatedAt: t0 },
      actions: [],
    })
  })

  test('a member taking a rule over continues from the persisted state: no second activation or notify', () => {
    const r = rule()
    const first = run(r, [60])
    const persisted = ruleStateSchema.parse(JSON.parse(JSON.stringify(first.state)))
    const next = evaluate(r, persisted, { ok: true, value: 60 }, s(30), { engineNotices: true })
    assert.deepEqual(next.actions, [])
    assert.deepEqual(
      evaluate(r, next.state, { ok: true, value: 60 }, s(60), { engineNotices: true }).actions.map(
        (a) => a.type,
      ),
      ['notify'],
    )
  })

  test('without a persisted state, the activation on the topic stands for it: no new trip', () => {
    const activation: Activation = {
      severity: 'CRITICAL',
      message: 'cpu above 100',
      value: 150,
      source: 'rule:cpu-high',
      at: s(0),
    }
    const state = stateFromActivation(activation, s(100))
    assert.deepEqual(
      evaluate(rule(), state, { ok: true, value: 150 }, s(110), { engineNotices: true }).actions,
      [],
    )
    const lower = evaluate(rule(), state, { ok: true, value: 60 }, s(110))
    assert.deepEqual(
      lower.actions.map((a) => ('activation' in a ? [a.type, a.activation.at] : [a.type])),
      [['deescalated', s(0)]],
    )
    assert.deepEqual(stateFromActivation(undefined, s(100)), initialRuleState())
  })

  test('a deleted rule clears its alarm, resolves at the engine and clears the query-failing alarm', () => {
    const r = rule()
    const { state } = run(r, [60, { error: 'x' }, { error: 'x' }, { error: 'x' }])
    assert.deepEqual(retireRule('cpu-high', state, { engineNotices: true }), [
      { type: 'queryRecovered', alarmName: 'herald.rules.cpu-high.query-failing', since: s(10), failures: 3 },
      { type: 'clear', alarmName: 'cpu-high', from: 'warn' },
      { type: 'resolve', alertName: 'cpu-high' },
    ])
    assert.deepEqual(retireRule('cpu-high', run(r, [10]).state), [])
    assert.deepEqual(retireRule('cpu-high', undefined), [])
  })

  test('a rule changed under an active alarm is judged by its new thresholds at the next value', () => {
    const { state } = run(rule(), [60])
    const raised = rule({ warn: { value: 70, message: 'cpu above 70' } })
    assert.deepEqual(
      evaluate(raised, state, { ok: true, value: 60 }, s(10)).actions.map((a) => a.type),
      ['clear'],
    )
  })
})
