// Notification: look one up by id (GET /api/v1/notification/:id); a parent id shows every child. While a
// status is not final it is read again every two seconds. The timeline is the status's `history`: the
// changes kept with it (the last 20), oldest first.
import { html } from 'htm/preact'
import { useEffect, useState } from 'preact/hooks'
import { ApiFailure, call, describe } from '../api.ts'
import { plural, time } from '../format.ts'

interface Change {
  status: string
  at: string
  attempts?: number
  lastError?: string
  channel?: string
}
interface Status {
  id: string
  status: string
  channel?: string
  attempts: number
  lastError?: string
  notBefore?: string
  createdAt?: string
  updatedAt?: string
  history?: Change[]
}
interface Parent {
  id: string
  recipient: string
  createdAt: string
  children: Status[]
}
type Found = Status | Parent

const final = new Set(['delivered', 'dead_lettered', 'expired'])
const isParent = (f: Found): f is Parent => 'children' in f
const settled = (f: Found) =>
  isParent(f) ? f.children.every((c) => final.has(c.status)) : final.has(f.status)

const badge = (status: string) =>
  html`<span class=${`badge status-${status}`}>${status.replace('_', ' ')}</span>`

function StatusDetails(props: { s: Status }) {
  const s = props.s
  return html`<dl class="details">
    <dt>Status</dt><dd data-field="status">${badge(s.status)}</dd>
    <dt>Channel</dt><dd>${s.channel ?? '—'}</dd>
    <dt>Attempts</dt><dd data-field="attempts">${s.attempts}</dd>
    <dt>Last error</dt><dd data-field="last-error">${s.lastError ?? '—'}</dd>
    <dt>Created</dt><dd>${time(s.createdAt)}</dd>
    <dt>Updated</dt><dd>${time(s.updatedAt)}</dd>
    ${s.notBefore ? html`<dt>Not before</dt><dd>${time(s.notBefore)}</dd>` : null}
  </dl>`
}

function Timeline(props: { history: Change[] | undefined; label: string }) {
  const history = props.history ?? []
  if (history.length === 0) return html`<p class="hint">No status changes recorded for it.</p>`
  return html`<ol class="timeline" aria-label=${props.label}>
    ${history.map(
      (c, i) => html`<li key=${`${i}:${c.at}`} data-status=${c.status}>
        <time datetime=${c.at}>${time(c.at)}</time>
        ${badge(c.status)}
        ${c.attempts === undefined ? null : html`<span class="meta">${plural(c.attempts, 'attempt')}</span>`}
        ${c.lastError ? html`<span class="timeline-error">${c.lastError}</span>` : null}
      </li>`,
    )}
  </ol>`
}

export function NotificationView(props: { arg: string | undefined }) {
  const [id, setId] = useState(props.arg ?? '')
  const [asked, setAsked] = useState(props.arg)
  const [found, setFound] = useState<Found | undefined>(undefined)
  const [error, setError] = useState<string | undefined>(undefined)

  useEffect(() => {
    if (!asked) return
    let stopped = false
    let timer: number | undefined
    const read = async () => {
      try {
        const answer = await call<Found>('GET', `/notification/${encodeURIComponent(asked)}`)
        if (stopped) return
        setFound(answer)
        setError(undefined)
        if (!settled(answer)) timer = window.setTimeout(read, 2000)
      } catch (e) {
        if (stopped) return
        setFound(undefined)
        setError(e instanceof ApiFailure && e.status === 404 ? `No notification ${asked}.` : describe(e))
      }
    }
    void read()
    return () => {
      stopped = true
      window.clearTimeout(timer)
    }
  }, [asked])

  const submit = (event: Event) => {
    event.preventDefault()
    const wanted = id.trim()
    if (!wanted) return
    window.history.replaceState(null, '', `#/notification/${encodeURIComponent(wanted)}`)
    setFound(undefined)
    setAsked(wanted)
  }

  return html`<section aria-labelledby="lookup-heading">
    <h2 id="lookup-heading" class="visually-hidden">Look up a notification</h2>
    <form class="inline" onSubmit=${submit}>
      <label for="notification-id">Notification id</label>
      <input id="notification-id" type="text" spellcheck="false" autocomplete="off" required value=${id}
        placeholder="e.g. 0195f3c2-… or a parent id" onInput=${(e: Event) => setId((e.target as HTMLInputElement).value)} />
      <button type="submit">Look up</button>
    </form>
    <div class="result" aria-live="polite">
      ${error ? html`<p class="error" role="alert">${error}</p>` : null}
      ${
        found && !isParent(found)
          ? html`<article class="card">
              <h2 class="mono">${found.id}</h2>
              <${StatusDetails} s=${found} />
              <h3 class="timeline-heading">Timeline</h3>
              <${Timeline} history=${found.history} label="Status timeline" />
            </article>`
          : null
      }
      ${
        found && isParent(found)
          ? html`<article class="card">
              <h2 class="mono">${found.id}</h2>
              <p>Recipient <strong>${found.recipient}</strong>, created ${time(found.createdAt)}; one child per channel:</p>
              <div class="scroll"><table>
                <thead><tr><th scope="col">Child</th><th scope="col">Channel</th><th scope="col">Status</th>
                  <th scope="col">Attempts</th><th scope="col">Last error</th><th scope="col">Updated</th></tr></thead>
                <tbody>${found.children.map(
                  (
                    c,
                  ) => html`<tr key=${c.id}><td class="mono">${c.id}</td><td>${c.channel}</td><td>${badge(c.status)}</td>
                    <td>${c.attempts}</td><td>${c.lastError ?? '—'}</td><td>${time(c.updatedAt)}</td></tr>`,
                )}</tbody>
              </table></div>
              ${found.children.map(
                (c) => html`<details key=${c.id} class="child-timeline">
                  <summary>Timeline of <span class="mono">${c.id}</span> (${c.channel})</summary>
                  <${Timeline} history=${c.history} label=${`Status timeline of ${c.id}`} />
                </details>`,
              )}
            </article>`
          : null
      }
    </div>
  </section>`
}
