// The alarms processor's Prometheus metrics, all defined here.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'

export function createAlarmsMetrics() {
  const registry = new Registry()
  registry.setDefaultLabels({ service: 'alarms' })
  collectDefaultMetrics({ register: registry, prefix: 'herald_alarms_' })
  return {
    registry,
    partitionsOwned: new Gauge({
      name: 'herald_alarm_partitions_owned',
      help: 'Partitions of the alarm topics this processor owns (co-assigned across the four topics).',
      registers: [registry],
    }),
    alarms: new Gauge({
      name: 'herald_alarms_known',
      help: 'Alarms (registered or with records) on the partitions this processor owns.',
      registers: [registry],
    }),
    events: new Counter({
      name: 'herald_alarm_events_produced_total',
      help: 'Alarm events produced for the router, by kind (alarm, escalated, reminder, ok).',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
    unreadable: new Counter({
      name: 'herald_alarm_records_unreadable_total',
      help: 'Records of the alarm topics ignored because they could not be read (not JSON, failing the schema).',
      labelNames: ['topic'] as const,
      registers: [registry],
    }),
    timerLateness: new Histogram({
      name: 'herald_alarm_timer_lateness_seconds',
      help: 'How late a deadline (shelve expiry, on/off-delay, reminder) was acted on after its time.',
      buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
      registers: [registry],
    }),
  }
}

export type AlarmsMetrics = ReturnType<typeof createAlarmsMetrics>
