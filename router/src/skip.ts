// Events the router reads but notifies no one of, each with a reason to count (monasca's notification
// engine does the same: actions disabled, or older than its TTL).
import type { AlarmEvent } from '@herald/shared/alarm-events'

/** ALARM_EVENT_TTL_SECONDS when unset: four hours, monasca's default. */
export const defaultAlarmEventTtlSeconds = 4 * 3600

export type SkipReason = 'actions-disabled' | 'expired'

/**
 * Why `event` is not notified at `nowMs`, or undefined when it is: its actions are disabled
 * (`actionsEnabled: false`; absent means enabled), or it happened more than `ttlSeconds` before `nowMs`.
 * An event from the future (a sender's clock ahead of ours) is not skipped.
 */
export function skipReason(
  event: Pick<AlarmEvent, 'actionsEnabled' | 'timestamp'>,
  nowMs: number,
  ttlSeconds: number = defaultAlarmEventTtlSeconds,
): SkipReason | undefined {
  if (event.actionsEnabled === false) return 'actions-disabled'
  if (nowMs - event.timestamp > ttlSeconds * 1000) return 'expired'
  return undefined
}
