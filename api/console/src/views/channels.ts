// Channels: GET /api/v1/channels every two seconds; per channel the lag, the throughput (records finished per
// second), the oldest unfinished record's age, the replicas, a chart of the lag over the last five minutes
// (kept in this tab while it is open), the breakers the distributor replicas publish (open ones listed with
// their probe time) and the partitions. The previous answer stays on screen while the next is read, so
// nothing jumps.
import { html } from 'htm/preact'
import { useEffect, useState } from 'preact/hooks'
import { call, describe } from '../api.ts'
import { age, time } from '../format.ts'

interface Partition {
  partition: number
  next: number
  end: number
  lag: number
  oldestUnfinishedAgeSeconds: number | null
}
interface Breaker {
  destination: string | null
  state: 'closed' | 'open' | 'half-open'
  openUntil: string | null
  reason: string
  replica: string
}
interface Channel {
  channel: string
  topic: string
  group: string
  replicas: number | null
  lag: number
  oldestUnfinishedAgeSeconds: number | null
  deliveriesPerSecond: number | null
  breakers: Breaker[]
  partitions: Partition[]
}
interface Snapshot {
  at: string
  channels: Channel[]
}

const windowMs = 5 * 60_000
const pollMs = 2000
/** Lag samples per channel, across visits to the view. */
const history = new Map<string, Array<{ at: number; lag: number }>>()

function record(snapshot: Snapshot): void {
  const at = Date.parse(snapshot.at)
  for (const c of snapshot.channels) {
    const samples = history.get(c.channel) ?? []
    if (samples.at(-1)?.at !== at) samples.push({ at, lag: c.lag })
    while (samples.length > 0 && (samples[0]?.at ?? at) < at - windowMs) samples.shift()
    history.set(c.channel, samples)
  }
}

function Chart(props: { channel: string; now: number }) {
  const samples = history.get(props.channel) ?? []
  const width = 300
  const height = 60
  const max = Math.max(1, ...samples.map((s) => s.lag))
  const x = (at: number) => (width * (at - (props.now - windowMs))) / windowMs
  const y = (lag: number) => height - 2 - ((height - 4) * lag) / max
  const points = samples.map((s) => `${x(s.at).toFixed(1)},${y(s.lag).toFixed(1)}`).join(' ')
  const latest = samples.at(-1)?.lag ?? 0
  return html`<figure class="chart">
    <svg viewBox=${`0 0 ${width} ${height}`} preserveAspectRatio="none" role="img"
      aria-label=${`Lag of ${props.channel} over the last 5 minutes: now ${latest}, at most ${max === 1 && latest === 0 ? 0 : max}`}>
      <line x1="0" y1=${height - 2} x2=${width} y2=${height - 2} class="axis" />
      ${samples.length > 1 ? html`<polyline points=${points} class="line" />` : null}
    </svg>
    <figcaption>Lag, last 5 minutes (max ${max === 1 && latest === 0 ? 0 : max})</figcaption>
  </figure>`
}

/** Open and probing breakers first, so what holds deliveries back is in view; closed ones in a count. */
function Breakers(props: { channel: string; breakers: Breaker[] }) {
  const tripped = props.breakers.filter((b) => b.state !== 'closed')
  const closed = props.breakers.length - tripped.length
  const name = (b: Breaker) => b.destination ?? 'whole channel'
  return html`<div class="breakers" data-field="breakers">
    <h3>Breakers</h3>
    ${
      tripped.length > 0
        ? html`<div class="scroll"><table>
          <caption class="visually-hidden">Open breakers of ${props.channel}</caption>
          <thead><tr><th scope="col">Destination</th><th scope="col">State</th><th scope="col">Probe at</th>
            <th scope="col">Replica</th><th scope="col">Reason</th></tr></thead>
          <tbody>${tripped.map(
            (
              b,
            ) => html`<tr key=${`${b.replica} ${name(b)}`} data-destination=${name(b)} data-state=${b.state}>
              <td>${name(b)}</td><td><span class=${`state state-${b.state}`}>${b.state}</span></td>
              <td>${b.openUntil ? time(b.openUntil) : '—'}</td><td>${b.replica}</td><td>${b.reason}</td></tr>`,
          )}</tbody>
        </table></div>`
        : null
    }
    <p class="meta">${
      props.breakers.length === 0
        ? 'No replica reports breakers.'
        : `${closed} closed${tripped.length > 0 ? `, ${tripped.length} open or probing` : ''} (${[
            ...new Set(props.breakers.map(name)),
          ].join(', ')})`
    }</p>
  </div>`
}

export function ChannelsView() {
  const [snapshot, setSnapshot] = useState<Snapshot | undefined>(undefined)
  const [error, setError] = useState<string | undefined>(undefined)
  useEffect(() => {
    let stopped = false
    let timer: number | undefined
    const poll = async () => {
      try {
        const answer = await call<Snapshot>('GET', '/channels')
        if (stopped) return
        record(answer)
        setSnapshot(answer)
        setError(undefined)
      } catch (e) {
        if (!stopped) setError(describe(e))
      }
      if (!stopped) timer = window.setTimeout(poll, pollMs)
    }
    void poll()
    return () => {
      stopped = true
      window.clearTimeout(timer)
    }
  }, [])
  const now = snapshot ? Date.parse(snapshot.at) : Date.now()
  return html`<div>
    <p class="meta">Refreshed every 2 s. <span class="updated">Last read: ${snapshot ? time(snapshot.at) : '…'}</span></p>
    ${error ? html`<p class="error" role="alert">${error}</p>` : null}
    <div class="channels">
      ${(snapshot?.channels ?? []).map(
        (
          c,
        ) => html`<section key=${c.channel} class="card channel" aria-labelledby=${`channel-${c.channel}`} data-channel=${c.channel}>
          <h2 id=${`channel-${c.channel}`}>${c.channel}</h2>
          <dl class="stats">
            <div><dt>Lag</dt><dd data-field="lag">${c.lag}</dd></div>
            <div><dt>Throughput</dt><dd data-field="throughput">${c.deliveriesPerSecond === null ? '…' : `${c.deliveriesPerSecond}/s`}</dd></div>
            <div><dt>Oldest unfinished</dt><dd data-field="age">${age(c.oldestUnfinishedAgeSeconds)}</dd></div>
            <div><dt>Replicas</dt><dd data-field="replicas">${c.replicas ?? '?'}</dd></div>
          </dl>
          <${Chart} channel=${c.channel} now=${now} />
          <${Breakers} channel=${c.channel} breakers=${c.breakers} />
          <details>
            <summary>Partitions (${c.partitions.length})</summary>
            <div class="scroll"><table>
              <caption class="visually-hidden">Partitions of ${c.topic}</caption>
              <thead><tr><th scope="col">Partition</th><th scope="col">Next</th><th scope="col">End</th>
                <th scope="col">Lag</th><th scope="col">Oldest unfinished</th></tr></thead>
              <tbody>${c.partitions.map(
                (p) => html`<tr key=${p.partition}><td>${p.partition}</td><td>${p.next}</td><td>${p.end}</td>
                  <td>${p.lag}</td><td>${age(p.oldestUnfinishedAgeSeconds)}</td></tr>`,
              )}</tbody>
            </table></div>
          </details>
        </section>`,
      )}
    </div>
  </div>`
}
