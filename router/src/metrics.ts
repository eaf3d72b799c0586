// The router's Prometheus metrics, all defined here; the offset protocol's come from shared.
import { createOffsetMetrics } from '@herald/shared/offsets/metrics'
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client'

export function createRouterMetrics() {
  const registry = new Registry()
  registry.setDefaultLabels({ service: 'router' })
  collectDefaultMetrics({ register: registry, prefix: 'herald_router_' })
  return {
    registry,
    ...createOffsetMetrics(registry),
    events: new Counter({
      name: 'herald_alarm_events_total',
      help: 'Alarm events read, by outcome: routed (matched a route), unrouted (no route matched), skipped (actions disabled or expired, see reason), poison.',
      labelNames: ['topic', 'outcome', 'reason'] as const,
      registers: [registry],
    }),
    notifications: new Counter({
      name: 'herald_routed_notifications_total',
      help: 'Notifications the router produced, by channel and kind (event, reminder).',
      labelNames: ['channel', 'kind'] as const,
      registers: [registry],
    }),
    unplanned: new Counter({
      name: 'herald_route_recipients_unplanned_total',
      help: 'Recipients a matched route names who got nothing: unknown-recipient, no-channel.',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    renderFailures: new Counter({
      name: 'herald_route_render_failures_total',
      help: 'Notifications that could not be rendered (the event is dead-lettered with the reason).',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    reminders: new Gauge({
      name: 'herald_router_reminders_scheduled',
      help: 'Periodic re-notifications (alarm, route) this replica schedules for the partitions it holds.',
      registers: [registry],
    }),
  }
}

export type RouterMetrics = ReturnType<typeof createRouterMetrics>
