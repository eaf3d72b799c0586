import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { nameHash, nextDueAt, phaseOf, slotOf, slotStart } from '@herald/rules/schedule'

const t0 = 1_763_000_000_000
const rule = { name: 'cpu-high', intervalSecs: 10 }
const intervalMs = 10_000
const names = Array.from({ length: 10_000 }, (_, i) => `rule-${i}`)

describe('the grid', () => {
  test('the hash is FNV-1a 32: the same on every member and release', () => {
    assert.equal(nameHash(''), 0x811c9dc5)
    assert.equal(nameHash('a'), 0xe40c292c)
    assert.equal(nameHash('foobar'), 0xbf9cf968)
  })

  test('a rule is due at phase + k × interval; a slot runs from one due time to the next', () => {
    const phase = phaseOf(rule.name, intervalMs)
    assert.ok(phase >= 0 && phase < intervalMs)
    const slot = slotOf(rule.name, intervalMs, t0)
    const start = slotStart(rule.name, intervalMs, slot)
    assert.ok(start <= t0 && t0 < start + intervalMs)
    assert.equal((start - phase) % intervalMs, 0)
    assert.equal(slotOf(rule.name, intervalMs, start), slot)
    assert.equal(slotOf(rule.name, intervalMs, start - 1), slot - 1)
  })

  test('10,000 rules with one interval are spread evenly over it', () => {
    const perSecond = new Array<number>(10).fill(0)
    for (const name of names) {
      const bucket = Math.floor(phaseOf(name, intervalMs) / 1000)
      perSecond[bucket] = (perSecond[bucket] ?? 0) + 1
    }
    for (const count of perSecond)
      assert.ok(count > 850 && count < 1150, `per second: ${perSecond.join(', ')}`)
  })

  test('an interval that is not a whole number of ms >= 1 is refused', () => {
    assert.throws(() => phaseOf('x', 0), /interval must be a whole number of ms >= 1/)
    assert.throws(() => nextDueAt({ name: 'x', intervalSecs: 0.0001 }, undefined, t0), RangeError)
  })
})

describe('nextDueAt', () => {
  const phase = phaseOf(rule.name, intervalMs)
  /** The due time of slot k counted from the slot t0 is in. */
  const due = (k: number) => slotStart(rule.name, intervalMs, slotOf(rule.name, intervalMs, t0) + k)

  test('a rule never evaluated is due at its first grid point from now: within one interval', () => {
    const next = nextDueAt(rule, undefined, t0)
    assert.equal(next, due(1))
    assert.ok(next >= t0 && next < t0 + intervalMs)
    assert.equal(nextDueAt(rule, undefined, due(1)), due(1), 'a grid point itself is due now')
    assert.equal((next - phase) % intervalMs, 0)
  })

  test('after an evaluation, the next slot: unchanged by how late the evaluation ran', () => {
    assert.equal(nextDueAt(rule, due(1), due(1) + 5), due(2))
    assert.equal(
      nextDueAt(rule, due(1) + 7000, due(1) + 7010),
      due(2),
      'a slow query does not shift the grid',
    )
  })

  test('a member taking the rule over within the slot continues it: no slot twice, none skipped', () => {
    for (const takeover of [due(1) + 1, due(1) + 3000, due(2) - 1]) {
      assert.equal(nextDueAt(rule, due(1), takeover), due(2))
    }
    assert.equal(nextDueAt(rule, due(1), due(2)), due(2), 'taken over right at the due time')
  })

  test('a slot missed while nobody owned the rule is made up within one interval of its due time', () => {
    // Last evaluated in slot 1; slot 2 was due while the partition had no owner.
    assert.equal(nextDueAt(rule, due(1), due(2) + 1000), due(2) + 2000, 'just missed: soon')
    assert.equal(nextDueAt(rule, due(1), due(2) + 8000), due(3), 'missed long ago: its next grid point')
    assert.equal(nextDueAt(rule, due(1), due(2) + 5000), due(3))
    // Many slots missed (a long outage): the same, from the current slot.
    assert.equal(nextDueAt(rule, due(1), due(40) + 2500), due(40) + 5000)
    for (let lag = 1; lag < intervalMs; lag += 97) {
      const now = due(2) + lag
      const next = nextDueAt(rule, due(1), now)
      assert.ok(
        next >= now && next - due(2) <= intervalMs,
        `lag ${lag}: due ${next - due(2)} ms after the missed one`,
      )
      // The made-up evaluation stands for a slot of its own, and the rule continues on its grid after it.
      assert.equal(
        nextDueAt(rule, next, next + 1),
        slotStart(rule.name, intervalMs, slotOf(rule.name, intervalMs, next) + 1),
      )
    }
  })

  test('a takeover of 10,000 overdue rules spreads them over half an interval, no burst', () => {
    // The previous owner evaluated every rule in its last slot before it died at `died`; the partition is
    // taken over 25 s later.
    const died = t0 + 123
    const takeover = died + 25_000
    const perTenth = new Array<number>(10).fill(0)
    for (const name of names) {
      const r = { name, intervalSecs: 10 }
      const last = slotStart(name, intervalMs, slotOf(name, intervalMs, died))
      const next = nextDueAt(r, last, takeover)
      assert.ok(next >= takeover && next <= takeover + intervalMs / 2)
      const tenth = Math.min(9, Math.floor((next - takeover) / 1000))
      perTenth[tenth] = (perTenth[tenth] ?? 0) + 1
    }
    // An even spread is 1000 per second over the interval; at most twice that here, over 5 s.
    for (const count of perTenth)
      assert.ok(count <= 2300, `per second after the takeover: ${perTenth.join(', ')}`)
    assert.equal(
      perTenth.slice(5).reduce((a, b) => a + b, 0),
      0,
    )
  })

  test('a handover by the same schedule on every member: each slot evaluated once, in order', () => {
    // Member A evaluates until it stops; member B takes over 300 ms later, from A's last evaluation time.
    const evaluated: number[] = []
    let last: number | undefined
    let now = t0
    const stopAt = t0 + 55_000
    while (now < stopAt) {
      const next = nextDueAt(rule, last, now)
      if (next >= stopAt) break
      evaluated.push(next)
      last = next
      now = next + 40
    }
    now = stopAt + 300
    for (let i = 0; i < 5; i++) {
      const next = nextDueAt(rule, last, now)
      evaluated.push(next)
      last = next
      now = next + 40
    }
    const slots = evaluated.map((t) => slotOf(rule.name, intervalMs, t))
    assert.deepEqual(
      slots,
      [...new Set(slots)].sort((a, b) => a - b),
      'no slot twice',
    )
    for (let i = 1; i < evaluated.length; i++) {
      const gap = (evaluated[i] ?? 0) - (evaluated[i - 1] ?? 0)
      assert.ok(gap > 0 && gap <= 2 * intervalMs, `gap ${gap}`)
    }
  })

  test('a changed interval moves the rule to the grid of the new one', () => {
    const slower = { ...rule, intervalSecs: 60 }
    const next = nextDueAt(slower, due(1), due(1) + 10)
    assert.equal((next - phaseOf(rule.name, 60_000)) % 60_000, 0)
    assert.ok(next > due(1) && next <= due(1) + 60_000)
  })
})
