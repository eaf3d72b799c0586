// A service's own figures, read from its /metrics (Prometheus text format): counters summed over their
// series, and histograms with their quantiles estimated as PromQL's histogram_quantile does.

export interface Histogram {
  /** Cumulative counts by upper bound, ascending; the last bound is +Inf. */
  buckets: Array<{ le: number; count: number }>
  count: number
  sum: number
}

export async function scrapeMetrics(port: number): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5000) })
  if (!response.ok) throw new Error(`GET /metrics on port ${port} answered ${response.status}`)
  return response.text()
}

interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

function samplesOf(text: string, names: ReadonlySet<string>): Sample[] {
  const samples: Sample[] = []
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line)
    if (!match?.[1] || !names.has(match[1])) continue
    const labels: Record<string, string> = {}
    for (const [, key, value] of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g))
      if (key !== undefined) labels[key] = value ?? ''
    samples.push({ name: match[1], labels, value: Number(match[3]) })
  }
  return samples
}

/** The sum of a counter's (or gauge's) series whose labels include `labels`. */
export function metricSum(text: string, name: string, labels: Record<string, string> = {}): number {
  return samplesOf(text, new Set([name]))
    .filter((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0)
}

/** A histogram summed over its label sets (other than `le`). */
export function histogramOf(text: string, name: string): Histogram {
  const samples = samplesOf(text, new Set([`${name}_bucket`, `${name}_count`, `${name}_sum`]))
  const byBound = new Map<number, number>()
  let count = 0
  let sum = 0
  for (const s of samples) {
    if (s.name === `${name}_count`) count += s.value
    else if (s.name === `${name}_sum`) sum += s.value
    else {
      const le = s.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(s.labels.le)
      byBound.set(le, (byBound.get(le) ?? 0) + s.value)
    }
  }
  const buckets = [...byBound].sort(([a], [b]) => a - b).map(([le, n]) => ({ le, count: n }))
  return { buckets, count, sum }
}

/** What was observed between two scrapes of the same process. */
export function histogramDelta(before: Histogram, after: Histogram): Histogram {
  const earlier = new Map(before.buckets.map((b) => [b.le, b.count]))
  return {
    buckets: after.buckets.map((b) => ({ le: b.le, count: b.count - (earlier.get(b.le) ?? 0) })),
    count: after.count - before.count,
    sum: after.sum - before.sum,
  }
}

/** Several processes' histograms as one (same buckets). */
export function histogramTotal(histograms: readonly Histogram[]): Histogram {
  const byBound = new Map<number, number>()
  for (const h of histograms) for (const b of h.buckets) byBound.set(b.le, (byBound.get(b.le) ?? 0) + b.count)
  return {
    buckets: [...byBound].sort(([a], [b]) => a - b).map(([le, count]) => ({ le, count })),
    count: histograms.reduce((s, h) => s + h.count, 0),
    sum: histograms.reduce((s, h) => s + h.sum, 0),
  }
}

/**
 * The q-quantile (0..1) as histogram_quantile estimates it: linear within the bucket it falls in (from 0
 * for the first bucket); in the +Inf bucket, the highest finite bound. NaN without observations.
 */
export function histogramQuantile(h: Histogram, q: number): number {
  const total = h.buckets.at(-1)?.count ?? 0
  if (total <= 0) return Number.NaN
  const rank = q * total
  let lower = 0
  let below = 0
  for (const b of h.buckets) {
    if (b.count >= rank) {
      if (b.le === Number.POSITIVE_INFINITY) return lower
      const inBucket = b.count - below
      return inBucket <= 0 ? b.le : lower + ((b.le - lower) * (rank - below)) / inBucket
    }
    lower = b.le
    below = b.count
  }
  return lower
}

/** The bound of the bucket the q-quantile falls in ("≤ 0.05 s"): what the histogram can tell for sure. */
export function histogramBound(h: Histogram, q: number): number {
  const total = h.buckets.at(-1)?.count ?? 0
  if (total <= 0) return Number.NaN
  return h.buckets.find((b) => b.count >= q * total)?.le ?? Number.POSITIVE_INFINITY
}
