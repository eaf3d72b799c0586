// The rules evaluator's Prometheus metrics, all defined here.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'

export function createRulesMetrics() {
  const registry = new Registry()
  registry.setDefaultLabels({ service: 'rules' })
  collectDefaultMetrics({ register: registry, prefix: 'herald_rules_' })
  return {
    registry,
    partitionsOwned: new Gauge({
      name: 'herald_rule_partitions_owned',
      help: 'Partitions of the rules topic this evaluator owns.',
      registers: [registry],
    }),
    rules: new Gauge({
      name: 'herald_rules_owned',
      help: 'Rules on the partitions this evaluator owns.',
      registers: [registry],
    }),
    evaluations: new Counter({
      name: 'herald_rule_evaluations_total',
      help: 'Rule evaluations by result: value, failed (no value after the retries), unrecorded (Kafka or Redis down: evaluated again).',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    lateness: new Histogram({
      name: 'herald_rule_evaluation_lateness_seconds',
      help: 'How long after its slot an evaluation started (schedule accuracy).',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
      registers: [registry],
    }),
    queryDuration: new Histogram({
      name: 'herald_rule_query_duration_seconds',
      help: 'Time to a value (or to giving up), retries included.',
      buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10],
      registers: [registry],
    }),
    actions: new Counter({
      name: 'herald_rule_actions_total',
      help: 'Actions of evaluations: activate, escalated, deescalated, clear, notify, resolve, queryFailing, queryRecovered.',
      labelNames: ['type'] as const,
      registers: [registry],
    }),
    engineCalls: new Counter({
      name: 'herald_rule_engine_calls_total',
      help: 'Compatibility mode: POST /notify and /resolve to the alerts engine by result (after retries).',
      labelNames: ['call', 'result'] as const,
      registers: [registry],
    }),
    unreadable: new Counter({
      name: 'herald_rule_records_unreadable_total',
      help: 'Records of the rules topic ignored because they could not be read.',
      registers: [registry],
    }),
  }
}

export type RulesMetrics = ReturnType<typeof createRulesMetrics>
