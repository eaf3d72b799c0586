// Which routes an alarm event takes: every criterion a route gives must hold for the event.
import type { AlarmEvent } from '@herald/shared/alarm-events'
import type { Route } from '@herald/shared/config-topics/schemas'

/**
 * True when `event` matches `route.match`:
 * - `states` contains the event's `newState` (always given);
 * - `alarmName`, when given, equals the event's (exactly);
 * - `alarmDefinitionId`, when given, equals the event's (an event without one does not match);
 * - `labels`, when given, are each on the event with the same value (the event may have more; `{}` matches
 *   any event);
 * - `severity`, when given, contains the event's severity ignoring case (an event without one does not
 *   match).
 */
export function routeMatches(route: Route, event: AlarmEvent): boolean {
  const match = route.match
  if (!match.states.includes(event.newState)) return false
  if (match.alarmName !== undefined && match.alarmName !== event.alarmName) return false
  if (match.alarmDefinitionId !== undefined && match.alarmDefinitionId !== event.alarmDefinitionId) {
    return false
  }
  if (match.labels !== undefined) {
    const labels = event.labels ?? {}
    for (const [name, value] of Object.entries(match.labels)) {
      if (labels[name] !== value) return false
    }
  }
  if (match.severity !== undefined) {
    const severity = event.severity?.toUpperCase()
    if (severity === undefined || !match.severity.some((s) => s.toUpperCase() === severity)) return false
  }
  return true
}

/** The routes `event` matches, by route name (so the result does not depend on the order given). */
export function matchingRoutes(event: AlarmEvent, routes: Iterable<Route>): Route[] {
  return [...routes]
    .filter((route) => routeMatches(route, event))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
}
