// The deployment files against running services: an api, an email distributor, a router, an alarms
// processor and a rules evaluator, started as processes on a private topic and key prefix. Every metric the
// alerts, the dashboard, the Prometheus adapter rules and the KEDA triggers name must be on their live
// /metrics; the series the autoscalers read must carry samples with the labels the queries group by (the lag
// ones exist only once the group leader has assignments); the alarms processor's and the rules evaluator's
// series carry their service label and each owns every partition, and the evaluator counts a rule's failing
// query as the rules alerts select it; every probe path of the manifests and the Dockerfiles must answer; the
// consumer group must be the one the KEDA Kafka example names.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { createRedis, type Redis } from '@herald/shared/redis/client'
import { rulesTopicName } from '@herald/shared/rules/topics'
import { topicNames } from '@herald/shared/topics'
import type { Admin } from 'kafkajs'
import { kafkaBrokers, redisUrl, requireServers } from '../helpers.ts'
import {
  adapterRules,
  adapterSeries,
  alertRules,
  containersOf,
  dockerfile,
  isRouterRule,
  k8sObjects,
  kedaTriggers,
  kustomize,
  metricFamilies,
  parsePromQL,
  promqlExpressions,
  unknownMetricReferences,
} from '../support/deploy-files.ts'
import { createTopics, deleteNamespace, namespace, serviceEnv, testKafka } from '../support/fixtures.ts'
import { eventually, type ServiceProcess, startService } from '../support/service-process.ts'

const ns = namespace('deploy')
const partitions = 4
let admin: Admin
let redis: Redis
let api: ServiceProcess
let distributor: ServiceProcess
let router: ServiceProcess
let alarms: ServiceProcess
let rules: ServiceProcess
let apiUrl: string
let distributorUrl: string
let routerUrl: string
let alarmsUrl: string
let rulesUrl: string

before(async () => {
  await requireServers()
  admin = testKafka(kafkaBrokers()).admin()
  await admin.connect()
  redis = createRedis(redisUrl())
  await redis.connect()
  await createTopics(admin, ns, partitions, kafkaBrokers())
  api = startService('deploy-api', 'api', serviceEnv(ns, {}, { PORT: '0' }))
  distributor = startService(
    'deploy-distributor',
    'distributor',
    serviceEnv(ns, {}, { CHANNEL: 'email', LAG_INTERVAL_MS: '300' }),
  )
  router = startService('deploy-router', 'router', serviceEnv(ns, {}, { LAG_INTERVAL_MS: '300' }))
  alarms = startService('deploy-alarms', 'alarms', serviceEnv(ns, {}))
  // No PROMETHEUS_URL: a rule with source prometheus fails every evaluation, which the rules test counts.
  rules = startService('deploy-rules', 'rules', serviceEnv(ns, {}))
  const [apiLine, distributorLine, routerLine, alarmsLine, rulesLine] = await Promise.all([
    api.waitForLog((l) => typeof l.port === 'number'),
    distributor.waitForLog((l) => typeof l.metricsPort === 'number'),
    router.waitForLog((l) => typeof l.metricsPort === 'number', 60_000),
    alarms.waitForLog((l) => typeof l.metricsPort === 'number', 60_000),
    rules.waitForLog((l) => typeof l.metricsPort === 'number', 60_000),
  ])
  apiUrl = `http://127.0.0.1:${apiLine.port}`
  distributorUrl = `http://127.0.0.1:${distributorLine.metricsPort}`
  routerUrl = `http://127.0.0.1:${routerLine.metricsPort}`
  alarmsUrl = `http://127.0.0.1:${alarmsLine.metricsPort}`
  rulesUrl = `http://127.0.0.1:${rulesLine.metricsPort}`
})

after(async () => {
  for (const p of [api, distributor, router, alarms, rules]) p?.kill('SIGTERM')
  await Promise.all([api?.exited, distributor?.exited, router?.exited, alarms?.exited, rules?.exited])
  if (admin) await deleteNamespace(admin, redis, ns)
  redis?.disconnect()
  await admin?.disconnect()
})

const scrape = async (url: string) => (await fetch(`${url}/metrics`)).text()

/** Label sets of a metric's samples in an exposition text. */
function samples(text: string, metric: string): Array<Record<string, string>> {
  return [...text.matchAll(new RegExp(`^${metric}\\{([^}]*)\\} `, 'gm'))].map((m) =>
    Object.fromEntries([...(m[1] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]])),
  )
}

/** The /metrics of a consumer once its group leader exports the lag of every partition (and collected once). */
const withLag = (url: string, who: string) =>
  eventually(
    `the ${who}'s leader exporting the lag of every partition`,
    async () => {
      const text = await scrape(url)
      return samples(text, 'herald_consumer_lag_records').length === partitions ? text : undefined
    },
    30_000,
    200,
  )

test('every metric deploy/ names is on the live /metrics of the api, the distributor, the router, alarms or rules', async () => {
  const [distributorText, routerText] = await Promise.all([
    withLag(distributorUrl, 'distributor'),
    withLag(routerUrl, 'router'),
  ])
  const live = [
    await scrape(apiUrl),
    distributorText,
    routerText,
    await scrape(alarmsUrl),
    await scrape(rulesUrl),
  ].join('\n')
  const expressions = promqlExpressions()
  assert.ok(expressions.length > 40)
  assert.deepEqual(unknownMetricReferences(expressions, metricFamilies(live)), [])
})

test('the series the autoscalers read have samples with the labels their queries group by', async () => {
  const text = await eventually(
    'lag and age exported',
    async () => {
      const t = await scrape(distributorUrl)
      return samples(t, 'herald_oldest_unfinished_age_seconds').length > 0 ? t : undefined
    },
    30_000,
    200,
  )
  const scaling = [
    ...adapterRules().map((r) => r.metricsQuery.replaceAll('<<.Series>>', adapterSeries(r))),
    ...kedaTriggers().flatMap((t) => (t.type === 'prometheus' && t.metadata.query ? [t.metadata.query] : [])),
  ].map((q) => q.replaceAll('<<.LabelMatchers>>', ''))
  const read = new Set(scaling.flatMap((q) => parsePromQL(q).metrics))
  assert.deepEqual([...read].sort(), [
    'herald_breaker_open',
    'herald_consumer_lag_records',
    'herald_oldest_unfinished_age_seconds',
  ])
  // `namespace` and `pod` come from the scrape; the rest must come from the service.
  const wanted: Record<string, string[]> = {
    herald_consumer_lag_records: ['channel', 'partition'],
    herald_oldest_unfinished_age_seconds: ['channel'],
    herald_breaker_open: ['channel'],
  }
  for (const metric of read) {
    const found = samples(text, metric)
    assert.ok(found.length > 0, `${metric}: no sample`)
    for (const labels of found) {
      for (const label of wanted[metric] ?? []) assert.ok(labels[label], `${metric} lacks ${label}`)
      assert.equal(labels.channel, 'email')
    }
  }
  const partitionsSeen = samples(text, 'herald_consumer_lag_records').map((l) => Number(l.partition))
  assert.deepEqual(
    partitionsSeen.sort((a, b) => a - b),
    [0, 1, 2, 3],
  )
})

test("the router's lag and age carry the labels its autoscaler's queries select and group by", async () => {
  const text = await eventually(
    "the router's lag and age exported",
    async () => {
      const t = await scrape(routerUrl)
      const ready =
        samples(t, 'herald_consumer_lag_records').length === partitions &&
        samples(t, 'herald_oldest_unfinished_age_seconds').length > 0
      return ready ? t : undefined
    },
    30_000,
    200,
  )
  const rules = adapterRules().filter(isRouterRule)
  assert.ok(rules.length >= 2)
  // The router follows its own alarm-events topic (no ALARM_EVENTS_TOPICS here): one series per partition.
  const topic = `${ns.prefix}.alarm-events`
  for (const rule of rules) {
    const found = samples(text, adapterSeries(rule))
    assert.ok(found.length > 0, `${adapterSeries(rule)}: no sample`)
    for (const labels of found) {
      assert.equal(labels.service, 'router', 'the label the HPA selects')
      assert.equal(labels.topic, topic)
      assert.equal(labels.channel, undefined)
    }
  }
  const partitionsSeen = samples(text, 'herald_consumer_lag_records').map((l) => Number(l.partition))
  assert.deepEqual(
    partitionsSeen.sort((a, b) => a - b),
    [0, 1, 2, 3],
  )
})

test('the alarms processor\'s series carry service="alarms", and the one processor owns every partition', async () => {
  const owned = (text: string) =>
    Number(/^herald_alarm_partitions_owned\{[^}]*\} (\S+)$/m.exec(text)?.[1] ?? Number.NaN)
  // Owned from its join; the gauge is 0 (never set) before.
  const text = await eventually(
    'the alarms processor owning its partitions',
    async () => {
      const t = await scrape(alarmsUrl)
      return owned(t) === partitions ? t : undefined
    },
    30_000,
    200,
  )
  const families = metricFamilies(text)
  for (const [metric, type] of [
    ['herald_alarm_partitions_owned', 'gauge'],
    ['herald_alarms_known', 'gauge'],
    ['herald_alarm_events_produced_total', 'counter'],
    ['herald_alarm_records_unreadable_total', 'counter'],
    ['herald_alarm_timer_lateness_seconds', 'histogram'],
  ] as const)
    assert.equal(families.get(metric), type, metric)
  // Every sample, the process' own included, carries the default label alerts and dashboards select by.
  const series = [...text.matchAll(/^(herald_\w+)\{([^}]*)\} /gm)]
  assert.ok(series.length > 10)
  for (const [, name, labels] of series) assert.match(labels ?? '', /\bservice="alarms"/, name)
  assert.equal(samples(text, 'herald_alarms_known').length, 1)
})

test('the rules evaluator\'s series carry service="rules", it owns every partition, and a failing query is counted as the alerts select it', async () => {
  // One rule whose query cannot be answered (no PROMETHEUS_URL): evaluated every second, failing each time.
  const producer = testKafka(kafkaBrokers()).producer()
  await producer.connect()
  const rule = {
    name: 'deploy-disk',
    source: 'prometheus',
    query: 'max(disk_used_ratio)',
    intervalSecs: 1,
    repeatIntervalSecs: 60,
    warn: { value: 0.8, message: 'disk filling up' },
  }
  await producer.send({
    topic: rulesTopicName(ns.prefix),
    acks: -1,
    messages: [{ key: rule.name, value: JSON.stringify(rule) }],
  })
  await producer.disconnect()
  const value = (text: string, metric: string, labels = '') =>
    Number(new RegExp(`^${metric}\\{${labels}[^}]*\\} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN)
  const text = await eventually(
    "the rules evaluator owning every partition and counting the rule's failed evaluations",
    async () => {
      const t = await scrape(rulesUrl)
      const ready =
        value(t, 'herald_rule_partitions_owned') === partitions &&
        value(t, 'herald_rules_owned') === 1 &&
        value(t, 'herald_rule_evaluations_total', 'result="failed",') > 0
      return ready ? t : undefined
    },
    30_000,
    200,
  )
  const families = metricFamilies(text)
  for (const [metric, type] of [
    ['herald_rule_partitions_owned', 'gauge'],
    ['herald_rules_owned', 'gauge'],
    ['herald_rule_evaluations_total', 'counter'],
    ['herald_rule_evaluation_lateness_seconds', 'histogram'],
    ['herald_rule_query_duration_seconds', 'histogram'],
    ['herald_rule_actions_total', 'counter'],
    ['herald_rule_engine_calls_total', 'counter'],
    ['herald_rule_records_unreadable_total', 'counter'],
  ] as const)
    assert.equal(families.get(metric), type, metric)
  // Every sample, the process' own included, carries the default label alerts and dashboards select by.
  const series = [...text.matchAll(/^(herald_\w+)\{([^}]*)\} /gm)]
  assert.ok(series.length > 10)
  for (const [, name, labels] of series) assert.match(labels ?? '', /\bservice="rules"/, name)
  assert.ok(value(text, 'herald_rule_evaluation_lateness_seconds_count') > 0, 'lateness observed')
  // The failing-queries alert divides the failed evaluations by those with or without a value: both
  // selectors name label values the evaluator writes.
  const failing = alertRules().find((r) => r.alert === 'HeraldRuleQueriesFailing')
  assert.ok(failing, 'HeraldRuleQueriesFailing')
  const results = samples(text, 'herald_rule_evaluations_total').map((l) => l.result)
  assert.ok(results.includes('failed'), `results counted: ${results.join(', ')}`)
  assert.match(failing.expr, /herald_rule_evaluations_total\{result="failed"\}/)
  assert.match(failing.expr, /herald_rule_evaluations_total\{result=~"value\|failed"\}/)
})

test('every probe and healthcheck path of the manifests and Dockerfiles answers on the running services', async () => {
  const deployments = kustomize('.').filter((o) => o.kind === 'Deployment')
  const paths = (name: string, dockerfileName: string) => {
    const found = new Set<string>()
    for (const d of deployments.filter((o) => o.metadata.name.startsWith(name))) {
      for (const c of containersOf(d))
        for (const probe of [c.startupProbe, c.livenessProbe, c.readinessProbe])
          if (probe?.httpGet) found.add(probe.httpGet.path)
      found.add(d.spec.template.metadata.annotations['prometheus.io/path'])
    }
    for (const i of dockerfile(dockerfileName).filter((i) => i.keyword === 'HEALTHCHECK'))
      for (const m of i.args.matchAll(/'(\/\w+)'/g)) found.add(m[1] ?? '')
    return [...found]
  }
  for (const [url, list] of [
    [apiUrl, paths('herald-api', 'Dockerfile.api')],
    [distributorUrl, paths('herald-distributor-', 'Dockerfile.distributor')],
    [routerUrl, paths('herald-router', 'Dockerfile.router')],
    [alarmsUrl, paths('herald-alarms', 'Dockerfile.alarms')],
    [rulesUrl, paths('herald-rules', 'Dockerfile.rules')],
  ] as const) {
    assert.ok(list.length >= 3 && list.includes('/metrics'), `paths found: ${list.join(', ')}`)
    for (const path of list) {
      // Readiness may take a moment (503); an unknown path is a 404 at once.
      const status = await eventually(
        `GET ${url}${path}`,
        async () => {
          const { status } = await fetch(`${url}${path}`)
          return status === 503 ? undefined : status
        },
        15_000,
      )
      assert.equal(status, 200, `GET ${path} on ${url} answered ${status}`)
    }
  }
})

test('the distributor joins the consumer group and reads the topic the KEDA Kafka example names', async () => {
  const [example] = k8sObjects('keda/kafka-trigger.example.yaml')
  const metadata = example?.spec.triggers[0].metadata as { consumerGroup: string; topic: string }
  // The example is written for the default prefixes; the running distributor uses the test's own.
  const group = metadata.consumerGroup.replace(/^herald\./, `${ns.prefix}.`)
  const topic = metadata.topic.replace(/^notifications\./, `${ns.prefix}.`)
  assert.equal(topic, topicNames(ns.prefix).main('email'))
  const running = await distributor.waitForLog((l) => typeof l.group === 'string')
  assert.equal(running.group, group)
  assert.equal(running.topic, topic)
  // The running line may come before the first join reaches the coordinator.
  await eventually(
    `${group} as a group on the broker`,
    async () => ((await admin.listGroups()).groups.some((g) => g.groupId === group) ? true : undefined),
    30_000,
    200,
  )
})
