import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { effectiveState } from '@herald/alarms/effective'
import type { EffectiveStateName, Override, Overrides, Registration } from '@herald/shared/alarms/schemas'
import { activation, registration, second, t0 } from './fixtures.ts'

const now = t0 + 60 * second
const later = now + 60 * second
const earlier = now - second

/** One override of each kind, in force at `now` for an alarm registered as `full`. */
type Label = 'D' | 'M' | 'ON' | 'S1' | 'SC' | 'OFF' | 'L'
const override: Record<Label, Override> = {
  D: { kind: 'disabled', reason: 'broken', user: 'ann' },
  M: { kind: 'masked', by: 'mains' },
  ON: { kind: 'ondelayed', until: later },
  S1: { kind: 'shelved', oneshot: true, reason: 'known', user: 'ann' },
  SC: { kind: 'shelved', until: later, reason: 'known', user: 'ann' },
  OFF: { kind: 'offdelayed', until: later },
  L: { kind: 'latched', at: t0 },
}

/** Latching, masked by `mains`, with both delays: every override applies to it. */
const full = registration({ latching: true, maskedBy: 'mains', onDelaySeconds: 5, offDelaySeconds: 5 })

function stateOf(overrides: Overrides, active: boolean, reg: Registration = full): EffectiveStateName {
  return effectiveState({
    registration: reg,
    activation: active ? activation(t0) : undefined,
    overrides,
    now,
  }).state
}

function withOverrides(...labels: Label[]): Overrides {
  return Object.fromEntries(labels.map((l) => [override[l].kind, override[l]])) as Overrides
}

describe('effective state of one override', () => {
  // [override, state while active, state while not active]
  const table: Array<[Label | 'none', EffectiveStateName, EffectiveStateName]> = [
    ['none', 'active', 'normal'],
    ['D', 'disabled', 'normal-disabled'],
    ['M', 'masked', 'normal-masked'],
    ['ON', 'on-delayed', 'normal'],
    ['S1', 'oneshot-shelved', 'normal-oneshot-shelved'],
    ['SC', 'continuous-shelved', 'normal-continuous-shelved'],
    ['OFF', 'active', 'off-delayed'],
    ['L', 'latched', 'normal-latched'],
  ]
  for (const [label, whenActive, whenNot] of table) {
    test(`${label}: ${whenActive} while active, ${whenNot} while not`, () => {
      const overrides = label === 'none' ? {} : withOverrides(label)
      assert.equal(stateOf(overrides, true), whenActive)
      assert.equal(stateOf(overrides, false), whenNot)
    })
  }
})

describe('effective state of every pair of overrides (JAWS precedence)', () => {
  // [higher, lower, state while active, state while not active]. A one-shot and a continuous shelve are
  // one key, so never a pair. An on-delay counts only while active, an off-delay only while not.
  const pairs: Array<[Label, Label, EffectiveStateName, EffectiveStateName]> = [
    ['D', 'M', 'disabled', 'normal-disabled'],
    ['D', 'ON', 'disabled', 'normal-disabled'],
    ['D', 'S1', 'disabled', 'normal-disabled'],
    ['D', 'SC', 'disabled', 'normal-disabled'],
    ['D', 'OFF', 'disabled', 'normal-disabled'],
    ['D', 'L', 'disabled', 'normal-disabled'],
    ['M', 'ON', 'masked', 'normal-masked'],
    ['M', 'S1', 'masked', 'normal-masked'],
    ['M', 'SC', 'masked', 'normal-masked'],
    ['M', 'OFF', 'masked', 'normal-masked'],
    ['M', 'L', 'masked', 'normal-masked'],
    ['ON', 'S1', 'on-delayed', 'normal-oneshot-shelved'],
    ['ON', 'SC', 'on-delayed', 'normal-continuous-shelved'],
    ['ON', 'OFF', 'on-delayed', 'off-delayed'],
    ['ON', 'L', 'on-delayed', 'normal-latched'],
    ['S1', 'OFF', 'oneshot-shelved', 'normal-oneshot-shelved'],
    ['S1', 'L', 'oneshot-shelved', 'normal-oneshot-shelved'],
    ['SC', 'OFF', 'continuous-shelved', 'normal-continuous-shelved'],
    ['SC', 'L', 'continuous-shelved', 'normal-continuous-shelved'],
    ['OFF', 'L', 'latched', 'off-delayed'],
  ]

  test('the table covers every pair', () => {
    const labels = Object.keys(override) as Label[]
    const expected = labels.flatMap((a, i) => labels.slice(i + 1).map((b) => `${a}+${b}`))
    const covered = pairs.map(([a, b]) => `${a}+${b}`)
    assert.deepEqual(covered.sort(), expected.filter((p) => p !== 'S1+SC').sort())
  })

  for (const [higher, lower, whenActive, whenNot] of pairs) {
    test(`${higher} over ${lower}: ${whenActive} while active, ${whenNot} while not`, () => {
      assert.equal(stateOf(withOverrides(higher, lower), true), whenActive)
      assert.equal(stateOf(withOverrides(higher, lower), false), whenNot)
      // The order the overrides were written in does not matter.
      assert.equal(stateOf(withOverrides(lower, higher), true), whenActive)
    })
  }
})

describe('effectiveState', () => {
  test('effectively active exactly in off-delayed, latched, normal-latched and active', () => {
    const cases: Array<[Overrides, boolean]> = [
      [{}, true],
      [{}, false],
      ...(Object.keys(override) as Label[]).flatMap(
        (l): Array<[Overrides, boolean]> => [
          [withOverrides(l), true],
          [withOverrides(l), false],
        ],
      ),
    ]
    const seen = new Map<EffectiveStateName, boolean>()
    for (const [overrides, active] of cases) {
      const result = effectiveState({
        registration: full,
        activation: active ? activation(t0) : undefined,
        overrides,
        now,
      })
      seen.set(result.state, result.effectivelyActive)
      assert.equal(result.active, active)
    }
    const effectivelyActive = [...seen].filter(([, ea]) => ea).map(([state]) => state)
    assert.deepEqual(effectivelyActive.sort(), ['active', 'latched', 'normal-latched', 'off-delayed'])
    assert.equal(seen.size, 14, 'every state was reached')
  })

  test('overrides lists those in force, highest first, the hidden ones too', () => {
    const result = effectiveState({
      registration: full,
      activation: activation(t0),
      overrides: withOverrides('L', 'SC', 'D', 'OFF'),
      now,
    })
    assert.deepEqual(result.overrides, ['disabled', 'shelved', 'latched'])
  })

  test('an expired shelve, on-delay or off-delay does not count; one ending later does', () => {
    const expired: Overrides = {
      shelved: { kind: 'shelved', until: now, reason: 'r', user: 'u' },
      ondelayed: { kind: 'ondelayed', until: now },
    }
    assert.equal(stateOf(expired, true), 'active')
    assert.equal(stateOf({ offdelayed: { kind: 'offdelayed', until: earlier } }, false), 'normal')
    assert.equal(
      stateOf({ shelved: { kind: 'shelved', oneshot: true, until: now, reason: 'r', user: 'u' } }, true),
      'active',
    )
    assert.equal(stateOf({ ondelayed: { kind: 'ondelayed', until: now + 1 } }, true), 'on-delayed')
  })

  test("overrides that do not fit the registration do not count: a latch of a non-latching alarm, another parent's mask", () => {
    const plain = registration()
    assert.equal(stateOf(withOverrides('L'), true, plain), 'active')
    assert.equal(stateOf(withOverrides('M'), true, plain), 'active')
    assert.equal(stateOf({ masked: { kind: 'masked', by: 'other' } }, true), 'active')
  })

  test("the parent's known state decides the mask; unknown, the override on the topic does", () => {
    const masked = (parentEffectivelyActive: boolean | undefined, overrides: Overrides) =>
      effectiveState({
        registration: full,
        activation: activation(t0),
        overrides,
        parentEffectivelyActive,
        now,
      }).state
    assert.equal(masked(true, {}), 'masked', 'masked before the override is written')
    assert.equal(masked(false, withOverrides('M')), 'active', 'a stale mask gives way')
    assert.equal(masked(undefined, withOverrides('M')), 'masked')
    assert.equal(masked(undefined, {}), 'active')
  })

  test('acknowledged is for latching alarms only: false while latched, true otherwise', () => {
    const ack = (reg: Registration, overrides: Overrides, active: boolean) =>
      effectiveState({ registration: reg, activation: active ? activation(t0) : undefined, overrides, now })
        .acknowledged
    assert.equal(ack(full, withOverrides('L'), true), false)
    assert.equal(ack(full, withOverrides('L'), false), false)
    assert.equal(
      ack(full, withOverrides('L', 'SC'), true),
      false,
      'a shelve hides the latch, it does not ack it',
    )
    assert.equal(ack(full, {}, true), true)
    assert.equal(ack(full, {}, false), true)
    assert.equal(ack(registration(), {}, true), undefined)
  })
})
