// The Kubernetes manifests against the code they deploy: ports and health paths of config.ts and the
// services, the shutdown bound, the partition count that caps the replicas of each channel, of the router, of
// the alarms processor and of the rules evaluator, the topic and group names, and the scaling rules (slow
// scale-down: every step is a rebalance; the alarms processor and the rules evaluator run a fixed count).
// There is no cluster here; the kustomizations are resolved by test/support/deploy-files.ts the way
// `kubectl kustomize` reads them.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { test } from 'node:test'
import { channels, loadConfig } from '@herald/shared/config'
import { topicNames, topicSpecs } from '@herald/shared/topics'
import { parseAllDocuments } from 'yaml'
import {
  adapterRules,
  type Container,
  containersOf,
  type K8sObject,
  k8sDir,
  k8sFiles,
  k8sObjects,
  kustomize,
} from '../support/deploy-files.ts'

const defaultFiles: string[] = []
const objects = kustomize('.', defaultFiles)
const kedaObjects = kustomize('keda')
const configMap = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'herald-config')
/** The configuration the pods get: config.ts applied to the ConfigMap (secrets carry no numbers). */
const config = loadConfig(configMap?.data ?? {})
const defaults = loadConfig({})

const find = (list: K8sObject[], kind: string, name: string) =>
  list.find((o) => o.kind === kind && o.metadata.name === name)
const deployments = objects.filter((o) => o.kind === 'Deployment')
const api = find(objects, 'Deployment', 'herald-api')
const distributors = channels.map((channel) => ({
  channel,
  deployment: find(objects, 'Deployment', `herald-distributor-${channel}`),
}))
const router = find(objects, 'Deployment', 'herald-router')
const alarms = find(objects, 'Deployment', 'herald-alarms')
const rules = find(objects, 'Deployment', 'herald-rules')
/**
 * Deployments with a fixed replica count and no autoscaler: the alarms processor and the rules evaluator
 * reload their partitions on every rebalance and have no backlog to scale on (base/alarms.yaml,
 * base/rules.yaml).
 */
const fixedReplicas = new Set(['herald-alarms', 'herald-rules'])

function onlyContainer(deployment: K8sObject | undefined): Container {
  const list = deployment ? containersOf(deployment) : []
  assert.equal(list.length, 1, `${deployment?.metadata.name}: one container`)
  return list[0] as Container
}

const envOf = (c: Container, name: string) => c.env?.find((e) => e.name === name)?.value

test('the default kustomization deploys the api, one distributor per channel, the router, alarms and rules, each autoscaled but alarms and rules', () => {
  assert.ok(configMap, 'ConfigMap herald-config')
  assert.ok(api, 'Deployment herald-api')
  for (const { channel, deployment } of distributors) assert.ok(deployment, `distributor for ${channel}`)
  assert.ok(router, 'Deployment herald-router')
  assert.ok(alarms, 'Deployment herald-alarms')
  assert.ok(rules, 'Deployment herald-rules')
  assert.equal(deployments.length, 4 + channels.length)
  for (const [label, list, kind] of [
    ['default', objects, 'HorizontalPodAutoscaler'],
    ['keda', kedaObjects, 'ScaledObject'],
  ] as const) {
    for (const d of deployments) {
      const scalers = list.filter(
        (o) =>
          (o.kind === 'HorizontalPodAutoscaler' || o.kind === 'ScaledObject') &&
          o.spec.scaleTargetRef.name === d.metadata.name,
      )
      if (fixedReplicas.has(d.metadata.name)) {
        assert.equal(scalers.length, 0, `${label}: ${d.metadata.name} runs a fixed count`)
        continue
      }
      assert.equal(scalers.length, 1, `${label}: one autoscaler for ${d.metadata.name}`)
      if (d !== api) assert.equal(scalers[0]?.kind, kind, `${label}: ${d.metadata.name} scaled by a ${kind}`)
    }
  }
})

test('every file under deploy/k8s is deployed by a kustomization or is a documented extra', () => {
  const kedaFiles: string[] = []
  kustomize('keda', kedaFiles)
  const used = new Set([...defaultFiles, ...kedaFiles])
  const extras = [
    'base/secret.example.yaml',
    'keda/kafka-trigger.example.yaml',
    'prometheus-adapter/rules.yaml',
    'prometheus-operator/servicemonitor.yaml',
  ]
  for (const file of k8sFiles()) {
    if (file.endsWith('kustomization.yaml')) continue
    assert.ok(used.has(file) !== extras.includes(file), `${file}: deployed xor listed as an extra`)
  }
})

test('no manifest sets a namespace (kubectl -n or an overlay chooses it)', () => {
  for (const file of k8sFiles())
    for (const o of k8sObjects(file))
      assert.equal(o.metadata.namespace, undefined, `${file} ${o.kind}/${o.metadata.name}`)
})

test('the distributors differ only in their channel', () => {
  const normalise = (o: K8sObject | undefined, channel: string) =>
    JSON.parse(JSON.stringify(o).replaceAll(channel, 'CHANNEL')) as unknown
  const perChannel = (kind: string, channel: string, list = objects) =>
    find(list, kind, `herald-distributor-${channel}`)
  for (const kind of ['Deployment', 'Service', 'PodDisruptionBudget', 'HorizontalPodAutoscaler']) {
    for (const channel of channels.slice(1))
      assert.deepEqual(
        normalise(perChannel(kind, channel), channel),
        normalise(perChannel(kind, 'email'), 'email'),
        `${kind} of ${channel} and email`,
      )
  }
  for (const channel of channels.slice(1))
    assert.deepEqual(
      normalise(perChannel('ScaledObject', channel, kedaObjects), channel),
      normalise(perChannel('ScaledObject', 'email', kedaObjects), 'email'),
    )
  for (const { channel, deployment } of distributors) {
    const c = onlyContainer(deployment)
    assert.equal(envOf(c, 'CHANNEL'), channel)
    assert.ok(
      c.envFrom?.some((f) => f.secretRef?.name === `herald-${channel}`),
      `${channel}: its own Secret`,
    )
  }
})

test('ports: containers, env, Services, probes and scrape annotations agree with config.ts defaults', () => {
  const cases = [
    { deployment: api, variable: 'PORT', port: defaults.port },
    ...[...distributors.map((d) => d.deployment), router, alarms, rules].map((deployment) => ({
      deployment,
      variable: 'METRICS_PORT',
      port: defaults.metricsPort,
    })),
  ]
  for (const { deployment, variable, port } of cases) {
    const name = deployment?.metadata.name
    const c = onlyContainer(deployment)
    assert.equal(envOf(c, variable), String(port), `${name}: ${variable}`)
    assert.equal(c.ports?.length, 1, `${name}: one port`)
    const [declared] = c.ports ?? []
    assert.equal(declared?.containerPort, port, `${name}: containerPort`)
    for (const probe of [c.startupProbe, c.livenessProbe, c.readinessProbe])
      assert.ok(
        probe?.httpGet?.port === declared?.name || probe?.httpGet?.port === port,
        `${name}: probes on ${port}`,
      )
    const annotations = deployment?.spec.template.metadata.annotations ?? {}
    assert.equal(annotations['prometheus.io/scrape'], 'true', `${name}: scraped`)
    assert.equal(annotations['prometheus.io/port'], String(port), `${name}: scrape port`)
    assert.equal(annotations['prometheus.io/path'], '/metrics', `${name}: scrape path`)
    const service = find(objects, 'Service', name ?? '')
    assert.ok(service, `${name}: a Service`)
    const labels = deployment?.spec.template.metadata.labels ?? {}
    for (const [key, value] of Object.entries(service.spec.selector as Record<string, string>))
      assert.equal(labels[key], value, `${name}: the Service selects its pods (${key})`)
    const targets = (service.spec.ports as Array<{ targetPort: string | number }>).map((p) => p.targetPort)
    assert.ok(
      targets.every((t) => t === declared?.name || t === port),
      `${name}: Service targets ${port}`,
    )
  }
})

test('probes: startup and liveness on /healthz, readiness on /readyz', () => {
  // The paths are served: test/deploy/metrics.int.test.ts asks a running api and distributor for them.
  for (const d of deployments) {
    const c = onlyContainer(d)
    assert.equal(c.startupProbe?.httpGet?.path, '/healthz', `${d.metadata.name} startup`)
    assert.equal(c.livenessProbe?.httpGet?.path, '/healthz', `${d.metadata.name} liveness`)
    assert.equal(c.readinessProbe?.httpGet?.path, '/readyz', `${d.metadata.name} readiness`)
  }
})

test('the grace period covers preStop plus the shutdown bound (SHUTDOWN_TIMEOUT_MS) plus a 5 s margin', () => {
  for (const d of deployments) {
    const c = onlyContainer(d)
    const preStop = c.lifecycle?.preStop
    const preStopSeconds =
      preStop?.sleep?.seconds ??
      Number(/^sleep (\d+)$/.exec(preStop?.exec?.command.join(' ') ?? '')?.[1] ?? 0)
    const grace = d.spec.template.spec.terminationGracePeriodSeconds as number
    assert.ok(
      grace * 1000 >= preStopSeconds * 1000 + config.shutdownTimeoutMs + 5000,
      `${d.metadata.name}: terminationGracePeriodSeconds ${grace} < ${preStopSeconds} s preStop + ${config.shutdownTimeoutMs} ms + 5 s`,
    )
  }
})

test('pods run as non-root with a read-only root, no privilege escalation and bounded resources', () => {
  for (const d of deployments) {
    const pod = d.spec.template.spec
    assert.equal(pod.securityContext.runAsNonRoot, true, d.metadata.name)
    assert.ok(pod.securityContext.runAsUser > 0)
    const c = onlyContainer(d)
    assert.equal(c.securityContext?.allowPrivilegeEscalation, false)
    assert.equal(c.securityContext?.readOnlyRootFilesystem, true)
    assert.deepEqual((c.securityContext?.capabilities as { drop?: string[] } | undefined)?.drop, ['ALL'])
    for (const resource of ['cpu', 'memory']) {
      assert.ok(c.resources?.requests?.[resource], `${d.metadata.name}: requests.${resource}`)
      assert.ok(c.resources?.limits?.[resource], `${d.metadata.name}: limits.${resource}`)
    }
    if (!fixedReplicas.has(d.metadata.name))
      assert.equal(d.spec.replicas, undefined, `${d.metadata.name}: replicas belong to the autoscaler`)
  }
})

test('the alarms processor and the rules evaluator: a fixed 2 to TOPIC_PARTITIONS replicas, replaced one at a time', () => {
  for (const d of [alarms, rules]) {
    const name = d?.metadata.name
    const replicas = d?.spec.replicas as number
    // Two: one takes over the other's partitions; beyond the partition count a member owns nothing.
    assert.ok(
      Number.isInteger(replicas) && replicas >= 2,
      `${name}: replicas ${replicas}, at least 2 so one takes over`,
    )
    assert.ok(
      replicas <= config.topics.partitions,
      `${name}: replicas ${replicas} > TOPIC_PARTITIONS ${config.topics.partitions}`,
    )
    // Every start and stop is a rebalance and a reload of the partitions that move.
    assert.deepEqual(d?.spec.strategy, {
      type: 'RollingUpdate',
      rollingUpdate: { maxSurge: 1, maxUnavailable: 0 },
    })
    // No autoscaler anywhere under deploy/k8s would fight the fixed count (an HPA resets `replicas`).
    const targeting = k8sFiles()
      .flatMap((f) => k8sObjects(f))
      .filter((o) => o.spec?.scaleTargetRef?.name === name)
    assert.deepEqual(
      targeting.map((o) => `${o.file} ${o.kind}/${o.metadata.name}`),
      [],
    )
    assert.equal(envOf(onlyContainer(d), 'CHANNEL'), undefined, `${name}: delivers no channel`)
  }
})

test('the alarms processor reads the ConfigMap only (Kafka only, no secret)', () => {
  const c = onlyContainer(alarms)
  assert.equal(envOf(c, 'CHANNEL'), undefined)
  assert.deepEqual(
    c.envFrom?.map((f) => f.configMapRef?.name ?? f.secretRef?.name),
    ['herald-config'],
    'the ConfigMap only: the processor needs no secret',
  )
})

test('the rules evaluator: its sources in the ConfigMap, an optional Secret over it, its settings as config.ts reads them', () => {
  const c = onlyContainer(rules)
  // The Secret after the ConfigMap, so its keys win (a REDIS_URL or PROMETHEUS_URL with credentials); env
  // would win over both, so the URLs are not set there.
  assert.deepEqual(c.envFrom, [
    { configMapRef: { name: 'herald-config' } },
    { secretRef: { name: 'herald-rules', optional: true } },
  ])
  for (const name of ['PROMETHEUS_URL', 'ALERTS_ENGINE_URL', 'REDIS_URL'])
    assert.equal(envOf(c, name), undefined, `${name} in env would hide the Secret's`)
  const secret = k8sObjects('base/secret.example.yaml').find((o) => o.metadata.name === 'herald-rules')
  assert.ok(secret, 'secret.example.yaml shows the herald-rules Secret')
  // What the pods get: the ConfigMap, then the container's env, read by config.ts as the service does.
  const env: Record<string, string> = { ...configMap?.data }
  for (const { name, value } of c.env ?? []) env[name] = value ?? ''
  const pod = loadConfig(env, 'rules')
  assert.ok(pod.rules.prometheusUrl, 'PROMETHEUS_URL set: rules with source prometheus have a source')
  assert.equal(pod.rules.fromEngine, false, 'compatibility mode is opt-in (it needs ALERTS_ENGINE_URL)')
  assert.equal(pod.rules.concurrency, defaults.rules.concurrency)
  assert.equal(pod.metricsPort, defaults.metricsPort)
})

test('PodDisruptionBudgets let one pod of each Deployment go at a time', () => {
  for (const d of deployments) {
    const pdb = find(objects, 'PodDisruptionBudget', d.metadata.name)
    assert.ok(pdb, `${d.metadata.name}: a PodDisruptionBudget`)
    assert.equal(pdb.spec.maxUnavailable, 1)
    const labels = d.spec.template.metadata.labels as Record<string, string>
    for (const [key, value] of Object.entries(pdb.spec.selector.matchLabels as Record<string, string>))
      assert.equal(labels[key], value, `${d.metadata.name}: the budget selects its pods`)
  }
})

/** Replica bounds and scale-down behaviour of an HPA or of a ScaledObject's HPA. */
function scaling(o: K8sObject) {
  if (o.kind === 'ScaledObject')
    return {
      min: o.spec.minReplicaCount as number,
      max: o.spec.maxReplicaCount as number,
      behavior: o.spec.advanced?.horizontalPodAutoscalerConfig?.behavior,
    }
  return { min: o.spec.minReplicas as number, max: o.spec.maxReplicas as number, behavior: o.spec.behavior }
}

test('each channel and the router scale between 1 and TOPIC_PARTITIONS replicas, down by one pod per several minutes', () => {
  const scalers = [
    ...objects.filter((o) => o.kind === 'HorizontalPodAutoscaler' && o.metadata.name !== 'herald-api'),
    ...k8sFiles()
      .flatMap((f) => k8sObjects(f))
      .filter((o) => o.kind === 'ScaledObject'),
  ]
  // An HPA and a ScaledObject per channel and for the router, and the KEDA Kafka example.
  assert.equal(scalers.length, 2 * (channels.length + 1) + 1)
  for (const o of scalers) {
    const where = `${o.file} ${o.kind}/${o.metadata.name}`
    const { min, max, behavior } = scaling(o)
    assert.ok(min >= 1 && min <= max, `${where}: 1 ≤ min ≤ max`)
    assert.ok(
      max <= config.topics.partitions,
      `${where}: maxReplicas ${max} > TOPIC_PARTITIONS ${config.topics.partitions}`,
    )
    const down = behavior?.scaleDown
    assert.ok(down?.stabilizationWindowSeconds >= 300, `${where}: scale-down stabilization ≥ 5 min`)
    assert.ok(down.policies.length > 0)
    for (const policy of down.policies as Array<{ type: string; value: number; periodSeconds: number }>) {
      assert.deepEqual([policy.type, policy.value], ['Pods', 1], `${where}: one pod per step`)
      assert.ok(policy.periodSeconds >= 120, `${where}: a step per ≥ 2 min`)
    }
  }
})

test('the HPAs of the distributors and the router use external metrics the Prometheus adapter rules serve', () => {
  const served = new Set(adapterRules().map((r) => r.name.as))
  const scaled = [
    ...distributors.map(({ channel }) => ({ name: `herald-distributor-${channel}`, selector: { channel } })),
    // The label every series of the router carries (router/src/metrics.ts, checked by monitoring.test.ts).
    { name: 'herald-router', selector: { service: 'router' } },
  ]
  for (const { name, selector } of scaled) {
    const hpa = find(objects, 'HorizontalPodAutoscaler', name)
    assert.equal(hpa?.apiVersion, 'autoscaling/v2')
    const metrics = hpa?.spec.metrics as Array<{
      type: string
      external: { metric: { name: string; selector: { matchLabels: Record<string, string> } } }
    }>
    assert.ok(metrics.length > 0)
    for (const m of metrics) {
      assert.equal(m.type, 'External')
      assert.ok(served.has(m.external.metric.name), `${m.external.metric.name} is served by no adapter rule`)
      assert.deepEqual(m.external.metric.selector.matchLabels, selector)
    }
  }
})

test('the KEDA Kafka example names the topic, group and brokers the distributors use', () => {
  const [example] = k8sObjects('keda/kafka-trigger.example.yaml')
  const trigger = example?.spec.triggers[0] as { type: string; metadata: Record<string, string> }
  const channel = example?.metadata.name.replace('herald-distributor-', '') as (typeof channels)[number]
  assert.equal(trigger.type, 'kafka')
  assert.equal(trigger.metadata.topic, topicNames(config.topics.prefix).main(channel))
  // The group distributor/src/main.ts joins; metrics.int.test.ts sees a running distributor join it.
  assert.equal(trigger.metadata.consumerGroup, `${config.keyPrefix}.distributor.${channel}`)
  assert.equal(trigger.metadata.bootstrapServers, config.kafka.brokers.join(','))
  assert.equal(trigger.metadata.offsetResetPolicy, 'earliest', 'no offset means the log start for Herald')
})

test('production topics: replication 3, so topics are created with min.insync.replicas=2', () => {
  assert.ok(config.topics.replication >= 3, 'TOPIC_REPLICATION in the ConfigMap')
  const specs = topicSpecs(topicNames(config.topics.prefix), channels, config.topics.replication)
  for (const spec of specs) {
    const minInsync = spec.configEntries.find((e) => e.name === 'min.insync.replicas')?.value
    assert.equal(minInsync, '2', spec.topic)
  }
})

test('the ServiceMonitor scrapes /metrics on a named port of every Service it selects', () => {
  const [monitor] = k8sObjects('prometheus-operator/servicemonitor.yaml')
  const selector = monitor?.spec.selector.matchLabels as Record<string, string>
  const endpoints = monitor?.spec.endpoints as Array<{ port: string; path: string }>
  const services = objects.filter((o) => o.kind === 'Service')
  assert.equal(services.length, deployments.length)
  for (const service of services) {
    for (const [key, value] of Object.entries(selector))
      assert.equal(service.metadata.labels?.[key], value, `${service.metadata.name} selected (${key})`)
    const names = (service.spec.ports as Array<{ name: string }>).map((p) => p.name)
    assert.ok(
      endpoints.some((e) => names.includes(e.port) && e.path === '/metrics'),
      `${service.metadata.name}: one of its ports (${names.join(', ')}) is scraped`,
    )
  }
})

const kubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' }).status === 0
test('the test helper renders the kustomizations as kubectl kustomize does', {
  skip: kubectl ? false : 'kubectl is not installed',
}, () => {
  for (const [dir, rendered] of [
    ['.', objects],
    ['keda', kedaObjects],
  ] as const) {
    const out = spawnSync('kubectl', ['kustomize', join(k8sDir, dir)], { encoding: 'utf8' })
    assert.equal(out.status, 0, out.stderr)
    const byKubectl = parseAllDocuments(out.stdout).map((d) => d.toJS() as K8sObject)
    const key = (o: K8sObject) => `${o.kind}/${o.metadata.name}`
    const ours = new Map(rendered.map((o) => [key(o), { ...o, file: undefined }]))
    assert.deepEqual(byKubectl.map(key).sort(), [...ours.keys()].sort(), dir)
    for (const o of byKubectl)
      assert.deepEqual({ ...o, file: undefined }, ours.get(key(o)), `${dir} ${key(o)}`)
  }
})
