// When a rule is due: pure arithmetic on a fixed grid per rule, the same on every member.
//
// Each rule is evaluated at `phase + k × interval` (epoch ms, k whole), where the phase is a hash of its
// name modulo the interval. So:
// - many rules with the same interval are spread evenly over it, at start and for ever after (no burst);
// - the grid does not depend on who evaluates: a member taking a partition over computes the same due
//   times as the previous owner, and from the previous owner's last evaluation it knows which slot (one
//   interval of the grid) was done. The next evaluation is the next slot's due time: no slot twice; and a
//   slot missed while nobody owned the rule is made up within one interval of its due time, the missed
//   rules spread over half an interval (no burst of overdue rules);
// - an evaluation that ran late (slow query, retries) does not shift the rule's later evaluations.

/** FNV-1a, 32 bits, of the name's UTF-16 code units: stable across processes and releases. */
export function nameHash(name: string): number {
  let hash = 0x811c9dc5
  for (let i = 0; i < name.length; i++) {
    hash ^= name.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193) >>> 0
  }
  return hash >>> 0
}

/** The rule's offset within its interval, in [0, intervalMs): where its grid points fall. */
export function phaseOf(name: string, intervalMs: number): number {
  checkInterval(intervalMs)
  return nameHash(name) % intervalMs
}

/** The slot (k) that `time` falls in: slot k is [phase + k × interval, phase + (k + 1) × interval). */
export function slotOf(name: string, intervalMs: number, time: number): number {
  return Math.floor((time - phaseOf(name, intervalMs)) / intervalMs)
}

/** The due time of slot k: its start. */
export function slotStart(name: string, intervalMs: number, slot: number): number {
  return phaseOf(name, intervalMs) + slot * intervalMs
}

export interface Schedulable {
  name: string
  intervalSecs: number
}

/**
 * When `rule` is next due, in ms. `lastEvaluatedAt` is the time of its last evaluation known to anyone
 * (this member's, or the previous owner's as persisted: `RuleState.evaluatedAt`), undefined when it was
 * never evaluated. That evaluation's slot counts as done:
 * - never evaluated: the first grid point at or after `now` (first evaluations spread over one interval);
 * - else the start of the slot after the last evaluation's, when that is at or after `now`;
 * - else a slot was missed (nobody owned the rule at its due time: a takeover, a restart). It is made up
 *   within one interval of its due time, without a burst: `lag` = now minus the start of the current slot,
 *   due at `now + min(lag, interval - lag)`. Just-missed slots run soon, long-missed ones at their next
 *   grid point, and the missed rules of a partition spread over half an interval (the rate of evaluations
 *   at most doubles for that half interval); the rule then continues on its grid.
 * The result is always >= `now`.
 */
export function nextDueAt(rule: Schedulable, lastEvaluatedAt: number | undefined, now: number): number {
  const intervalMs = rule.intervalSecs * 1000
  if (lastEvaluatedAt !== undefined) {
    const following = slotStart(rule.name, intervalMs, slotOf(rule.name, intervalMs, lastEvaluatedAt) + 1)
    if (following >= now) return following
    const lag = now - slotStart(rule.name, intervalMs, slotOf(rule.name, intervalMs, now))
    return now + Math.min(lag, intervalMs - lag)
  }
  return slotStart(rule.name, intervalMs, Math.ceil((now - phaseOf(rule.name, intervalMs)) / intervalMs))
}

function checkInterval(intervalMs: number): void {
  if (!Number.isSafeInteger(intervalMs) || intervalMs < 1) {
    throw new RangeError(`a rule's interval must be a whole number of ms >= 1, not ${intervalMs}`)
  }
}
