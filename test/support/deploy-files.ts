// Reading the deployment files the way their tools do, for the drift tests in test/deploy/: YAML documents
// (with compose's merge keys), kustomizations resolved to their objects, Dockerfile instructions, and every
// PromQL expression (alerts, Prometheus adapter rules, KEDA triggers, the Grafana dashboard) parsed with
// Prometheus' own PromQL grammar, so a syntax error or an unknown metric name is found before a cluster is.
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { parser } from '@prometheus-io/lezer-promql'
import { parseAllDocuments } from 'yaml'
import { repoRoot } from '../../dev/lib/process.ts'

export const deployDir = join(repoRoot, 'deploy')
export const k8sDir = join(deployDir, 'k8s')

export function readText(path: string): string {
  return readFileSync(join(repoRoot, path), 'utf8')
}

/** Every document of a YAML file (repo-relative path), as plain values; a YAML error fails loudly. */
export function readYaml<T = unknown>(path: string): T[] {
  const docs = parseAllDocuments(readText(path), { merge: true })
  if (!Array.isArray(docs)) return []
  return docs.map((doc) => {
    if (doc.errors.length > 0) throw new Error(`${path}: ${doc.errors.map((e) => e.message).join('; ')}`)
    return doc.toJS() as T
  })
}

// --- Compose ----------------------------------------------------------------------------------------

/**
 * The workspace (npm script, Dockerfile.<script>) a compose service runs: one per channel runs the
 * distributor; Kafka, Redis and the stand-ins are none of Herald's (undefined).
 */
export function composeServiceScript(name: string): string | undefined {
  if (name.startsWith('distributor-')) return 'distributor'
  return ['api', 'router', 'alarms', 'rules'].includes(name) ? name : undefined
}

// --- Kubernetes ---------------------------------------------------------------------------------------

export interface K8sObject {
  apiVersion: string
  kind: string
  metadata: {
    name: string
    namespace?: string
    labels?: Record<string, string>
    annotations?: Record<string, string>
  }
  data?: Record<string, string>
  stringData?: Record<string, string>
  // biome-ignore lint/suspicious/noExplicitAny: manifests are checked field by field by the tests
  spec?: any
  /** Repo-relative file the object came from. */
  file: string
}

export interface Container {
  name: string
  image: string
  command?: string[]
  args?: string[]
  env?: Array<{ name: string; value?: string }>
  envFrom?: Array<{ configMapRef?: { name: string }; secretRef?: { name: string } }>
  ports?: Array<{ name?: string; containerPort: number }>
  startupProbe?: Probe
  livenessProbe?: Probe
  readinessProbe?: Probe
  lifecycle?: { preStop?: { exec?: { command: string[] }; sleep?: { seconds: number } } }
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> }
  securityContext?: Record<string, unknown>
}

export interface Probe {
  httpGet?: { path: string; port: number | string }
}

/** Objects (with a kind) in a YAML file under deploy/k8s (path relative to it); kustomizations included. */
export function k8sObjects(file: string): K8sObject[] {
  const path = relative(repoRoot, join(k8sDir, file))
  return readYaml<Omit<K8sObject, 'file'>>(path)
    .filter((o) => o !== null && typeof o === 'object' && typeof o.kind === 'string')
    .map((o) => ({ ...o, metadata: o.metadata ?? { name: '' }, file: path }))
}

/** Every YAML file under deploy/k8s, relative to it. */
export function k8sFiles(): string[] {
  const walk = (dir: string): string[] =>
    readdirSync(dir).flatMap((name) => {
      const full = join(dir, name)
      if (statSync(full).isDirectory()) return walk(full)
      return /\.ya?ml$/.test(name) ? [full] : []
    })
  return walk(k8sDir)
    .map((full) => relative(k8sDir, full))
    .sort()
}

/**
 * The objects a kustomization (a folder under deploy/k8s) renders, following `resources` into files and
 * folders and applying the two transformers Herald's kustomizations use: `labels` (added to every object's
 * metadata, not to selectors or templates) and `images` (new tags). Anything else is refused, so the tests
 * never check something other than what `kubectl kustomize` would produce. `files` collects every file read.
 */
export function kustomize(dir: string, files: string[] = []): K8sObject[] {
  const kustomization = k8sObjects(join(dir, 'kustomization.yaml'))[0] as unknown as Record<
    string,
    unknown
  > & {
    resources?: string[]
    labels?: Array<{ pairs: Record<string, string>; includeSelectors?: boolean; includeTemplates?: boolean }>
    images?: Array<{ name: string; newName?: string; newTag?: string }>
  }
  const known = ['apiVersion', 'kind', 'metadata', 'file', 'resources', 'labels', 'images']
  const unknown = Object.keys(kustomization).filter((k) => !known.includes(k))
  if (unknown.length > 0) throw new Error(`${dir}: ${unknown.join(', ')} not followed by this helper`)
  const objects = (kustomization.resources ?? []).flatMap((resource) => {
    const path = join(dir, resource)
    if (statSync(join(k8sDir, path)).isDirectory()) return kustomize(path, files)
    files.push(path)
    return k8sObjects(path)
  })
  for (const { pairs, includeSelectors, includeTemplates } of kustomization.labels ?? []) {
    if (includeSelectors || includeTemplates) throw new Error(`${dir}: labels beyond metadata not followed`)
    for (const o of objects) o.metadata.labels = { ...o.metadata.labels, ...pairs }
  }
  for (const image of kustomization.images ?? []) {
    for (const o of objects.filter((o) => o.kind === 'Deployment')) {
      for (const c of containersOf(o)) {
        if (c.image.split(':')[0] !== image.name) continue
        const [name = '', tag] = c.image.split(':')
        c.image = `${image.newName ?? name}${image.newTag ? `:${image.newTag}` : tag ? `:${tag}` : ''}`
      }
    }
  }
  return objects
}

export function containersOf(deployment: K8sObject): Container[] {
  return deployment.spec?.template?.spec?.containers ?? []
}

// --- Dockerfiles --------------------------------------------------------------------------------------

export interface Instruction {
  keyword: string
  args: string
}

/** Instructions of a Dockerfile, continuation lines joined, comments dropped. */
export function dockerfile(path: string): Instruction[] {
  const joined = readText(path)
    .split('\n')
    .filter((line) => !/^\s*#/.test(line))
    .join('\n')
    .replace(/\\\n/g, ' ')
  return joined
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => {
      const space = line.search(/\s/)
      return { keyword: line.slice(0, space).toUpperCase(), args: line.slice(space + 1).trim() }
    })
}

// --- PromQL -------------------------------------------------------------------------------------------

export interface PromQLExpression {
  /** File and rule, panel or trigger the expression came from. */
  where: string
  expr: string
}

/** Alert rules of deploy/prometheus/alerts.yaml. */
export interface AlertRule {
  alert: string
  expr: string
  for?: string
  labels?: Record<string, string>
  annotations?: Record<string, string>
}

export function alertRules(): AlertRule[] {
  const [file] = readYaml<{ groups: Array<{ name: string; rules: AlertRule[] }> }>(
    'deploy/prometheus/alerts.yaml',
  )
  return (file?.groups ?? []).flatMap((g) => g.rules)
}

export interface AdapterRule {
  seriesQuery: string
  name: { matches: string; as: string }
  metricsQuery: string
  resources?: unknown
}

export function adapterRules(): AdapterRule[] {
  const [file] = readYaml<{ externalRules: AdapterRule[] }>('deploy/k8s/prometheus-adapter/rules.yaml')
  return file?.externalRules ?? []
}

/** The metric a rule's seriesQuery selects (its name before the braces). */
export function adapterSeries(rule: AdapterRule): string {
  return /^([a-zA-Z_:][\w:]*)\{/.exec(rule.seriesQuery.trim())?.[1] ?? ''
}

/** Whether an adapter rule serves the router's HPA (its series are the router's) or a channel's. */
export function isRouterRule(rule: AdapterRule): boolean {
  return /service="router"/.test(rule.seriesQuery)
}

/**
 * An adapter metricsQuery as Prometheus receives it: the adapter fills <<.Series>> with the discovered
 * series name, <<.LabelMatchers>> with the HPA's namespace and selector, <<.GroupBy>> with resource labels.
 */
export function expandAdapterQuery(rule: AdapterRule): string {
  const selector = isRouterRule(rule) ? 'service="router"' : 'channel="email"'
  return rule.metricsQuery
    .replaceAll('<<.Series>>', adapterSeries(rule))
    .replaceAll('<<.LabelMatchers>>', `namespace="herald",${selector}`)
    .replaceAll('<<.GroupBy>>', 'namespace')
}

interface GrafanaPanel {
  title: string
  type: string
  targets?: Array<{ expr: string }>
  panels?: GrafanaPanel[]
}

export interface GrafanaDashboard {
  panels: GrafanaPanel[]
  templating: { list: Array<{ name: string; type: string; query?: string | { query: string } }> }
}

export function grafanaDashboard(): GrafanaDashboard {
  return JSON.parse(readText('deploy/grafana/herald.json')) as GrafanaDashboard
}

/** A Grafana query as Prometheus receives it: interval macros and template variables substituted. */
export function expandGrafanaQuery(expr: string): string {
  return expr
    .replace(/\$__(rate_interval|interval|range)\b/g, '5m')
    .replace(
      /\$\{(\w+)(:\w+)?\}|\$(\w+)/g,
      (_, a: string | undefined, _f, b: string | undefined) => a ?? b ?? '',
    )
}

/** Every PromQL expression in deploy/: alerts, adapter rules, KEDA prometheus triggers, the dashboard. */
export function promqlExpressions(): PromQLExpression[] {
  const found: PromQLExpression[] = []
  for (const rule of alertRules()) found.push({ where: `alerts.yaml ${rule.alert}`, expr: rule.expr })
  for (const rule of adapterRules()) {
    const name = rule.name.as
    found.push({ where: `prometheus-adapter ${name} seriesQuery`, expr: rule.seriesQuery })
    found.push({ where: `prometheus-adapter ${name} metricsQuery`, expr: expandAdapterQuery(rule) })
  }
  for (const trigger of kedaTriggers()) {
    if (trigger.type === 'prometheus' && trigger.metadata.query)
      found.push({ where: `keda ${trigger.scaledObject}`, expr: trigger.metadata.query })
  }
  const dashboard = grafanaDashboard()
  const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])])
  for (const panel of panels) {
    for (const target of panel.targets ?? [])
      found.push({ where: `grafana "${panel.title}"`, expr: expandGrafanaQuery(target.expr) })
  }
  for (const variable of dashboard.templating.list) {
    if (variable.type !== 'query' || variable.query === undefined) continue
    const query = typeof variable.query === 'string' ? variable.query : variable.query.query
    const selector = /^label_values\((.*),\s*\w+\)$/.exec(query)?.[1]
    if (selector)
      found.push({ where: `grafana variable ${variable.name}`, expr: expandGrafanaQuery(selector) })
  }
  return found
}

export interface KedaTrigger {
  scaledObject: string
  file: string
  type: string
  metadata: Record<string, string>
}

/** Triggers of every ScaledObject under deploy/k8s (keda/), examples included. */
export function kedaTriggers(): KedaTrigger[] {
  return k8sFiles()
    .flatMap((file) => k8sObjects(file))
    .filter((o) => o.kind === 'ScaledObject')
    .flatMap((o) =>
      (o.spec?.triggers ?? []).map((t: { type: string; metadata: Record<string, string> }) => ({
        scaledObject: o.metadata.name,
        file: o.file,
        type: t.type,
        metadata: t.metadata,
      })),
    )
}

/**
 * Parses a PromQL expression with the grammar Prometheus' own editor uses. Returns the metric names it
 * selects, or the offset of the first syntax error.
 */
export function parsePromQL(expr: string): { metrics: string[]; errorAt?: number } {
  const tree = parser.parse(expr)
  const metrics = new Set<string>()
  let errorAt: number | undefined
  tree.iterate({
    enter(node) {
      if (node.type.isError && errorAt === undefined) errorAt = node.from
      if (node.name === 'Identifier' && node.node.parent?.name === 'VectorSelector')
        metrics.add(expr.slice(node.from, node.to))
      // {__name__="…"} selects by name too.
      if (node.name === 'UnquotedLabelMatcher') {
        const text = expr.slice(node.from, node.to)
        const byName = /^__name__\s*=\s*"([^"]+)"$/.exec(text)
        if (byName?.[1]) metrics.add(byName[1])
      }
    },
  })
  return errorAt === undefined ? { metrics: [...metrics] } : { metrics: [...metrics], errorAt }
}

// --- Prometheus exposition ----------------------------------------------------------------------------

/** Metric families in a /metrics text (name → type), from its # TYPE lines. */
export function metricFamilies(text: string): Map<string, string> {
  return new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1] ?? '', m[2] ?? '']))
}

/** The series names a family exposes: histograms and summaries add _bucket/_sum/_count. */
export function seriesNames(families: Map<string, string>): Set<string> {
  const names = new Set<string>()
  for (const [name, type] of families) {
    names.add(name)
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(name + s)
    if (type === 'summary') for (const s of ['_sum', '_count']) names.add(name + s)
  }
  return names
}

/** Each "where: metric" that names a metric the given /metrics families do not expose. */
export function unknownMetricReferences(
  expressions: PromQLExpression[],
  families: Map<string, string>,
): string[] {
  const known = seriesNames(families)
  return expressions.flatMap(({ where, expr }) =>
    parsePromQL(expr)
      .metrics.filter((m) => !known.has(m))
      .map((m) => `${where}: ${m}`),
  )
}
