// Dead letters: one channel's, filtered by class and by when they failed (GET /api/v1/dead-letters/:channel
// with class, since, until), read one, replay one, a selection or everything the filter matches (POST
// .../replay) after a confirmation that says how many. Replaying a filter first counts its matches, page by
// page, and then replays exactly those (by partition:offset): a letter dead-lettered after the count (a
// replayed one failing again, say) is not replayed unasked.
import { html } from 'htm/preact'
import { useEffect, useState } from 'preact/hooks'
import { call, describe } from '../api.ts'
import { Dialog } from '../dialog.ts'
import { plural, time } from '../format.ts'

interface DeadLetter {
  partition: number
  offset: string
  id?: string
  key?: string
  errorClass: string
  error: string
  attempts: number
  failedAt: string
  original: { topic: string; partition: number; offset: string }
}
interface Page {
  deadLetters: DeadLetter[]
  nextCursor: string | null
}

const channels = ['email', 'sms', 'slack', 'webhook']
const classes = ['poison', 'permanent', 'retryable', 'provider', 'crash-loop']
const positionOf = (l: DeadLetter) => `${l.partition}:${l.offset}`
/** The api's largest page (maxPageSize). */
const pageSize = 500

/** A datetime-local value (the browser's time zone) as ISO 8601; '' when empty or not a time. */
function isoOf(local: string): string {
  const date = new Date(local)
  return local === '' || Number.isNaN(date.getTime()) ? '' : date.toISOString()
}

interface Confirm {
  positions: string[]
  /** The filter whose matches these are, when replaying by filter. */
  matching?: string
}

export function DeadLettersView() {
  const [channel, setChannel] = useState('email')
  const [errorClass, setErrorClass] = useState('')
  const [from, setFrom] = useState('')
  const [to, setTo] = useState('')
  const [counting, setCounting] = useState(false)
  const [letters, setLetters] = useState<DeadLetter[]>([])
  const [cursor, setCursor] = useState<string | null>(null)
  const [loading, setLoading] = useState(false)
  const [selected, setSelected] = useState<Set<string>>(new Set())
  const [open, setOpen] = useState<string | undefined>(undefined)
  const [confirm, setConfirm] = useState<Confirm | undefined>(undefined)
  const [message, setMessage] = useState<string | undefined>(undefined)
  const [error, setError] = useState<string | undefined>(undefined)

  /** The filter as the api's query (class, since, until). */
  const filterQuery = (limit: number) => {
    const query = new URLSearchParams({ limit: String(limit) })
    if (errorClass) query.set('class', errorClass)
    if (isoOf(from)) query.set('since', isoOf(from))
    if (isoOf(to)) query.set('until', isoOf(to))
    return query
  }
  const filterLabel = () =>
    [
      errorClass ? `class ${errorClass}` : '',
      isoOf(from) ? `failed from ${time(isoOf(from))}` : '',
      isoOf(to) ? `failed until ${time(isoOf(to))}` : '',
    ]
      .filter(Boolean)
      .join(', ') || 'no filter: every dead letter'

  const load = async (more: boolean) => {
    setLoading(true)
    setError(undefined)
    try {
      const query = filterQuery(50)
      if (more && cursor) query.set('cursor', cursor)
      const page = await call<Page>('GET', `/dead-letters/${channel}?${query}`)
      setLetters((before) => (more ? [...before, ...page.deadLetters] : page.deadLetters))
      setCursor(page.nextCursor)
      if (!more) setSelected(new Set())
    } catch (e) {
      setError(describe(e))
    } finally {
      setLoading(false)
    }
  }
  // Read again whenever the filter changes.
  useEffect(() => {
    void load(false)
  }, [channel, errorClass, from, to])

  /** Counts what the filter matches (every page), then asks before replaying them. */
  const countMatches = async () => {
    setCounting(true)
    setMessage(undefined)
    setError(undefined)
    try {
      const positions: string[] = []
      let next: string | null = null
      do {
        const query = filterQuery(pageSize)
        if (next) query.set('cursor', next)
        const page: Page = await call<Page>('GET', `/dead-letters/${channel}?${query}`)
        positions.push(...page.deadLetters.map(positionOf))
        next = page.nextCursor
      } while (next)
      if (positions.length === 0) setMessage(`No dead letters of ${channel} match (${filterLabel()}).`)
      else setConfirm({ positions, matching: filterLabel() })
    } catch (e) {
      setError(describe(e))
    } finally {
      setCounting(false)
    }
  }

  const toggle = (position: string) =>
    setSelected((before) => {
      const next = new Set(before)
      if (next.has(position)) next.delete(position)
      else next.add(position)
      return next
    })

  const replay = async ({ positions, matching }: Confirm) => {
    setConfirm(undefined)
    setMessage(undefined)
    setError(undefined)
    const replayed: DeadLetter[] = []
    try {
      // A page of positions per request, each followed to its end (a request looks at a bounded span).
      for (let i = 0; i < positions.length; i += pageSize) {
        const at = positions.slice(i, i + pageSize)
        let next: string | null = null
        do {
          const answer: { replayed: DeadLetter[]; nextCursor: string | null } = await call(
            'POST',
            `/dead-letters/${channel}/replay`,
            { at, limit: pageSize, ...(next ? { cursor: next } : {}) },
          )
          replayed.push(...answer.replayed)
          next = answer.nextCursor
        } while (next)
      }
      const names = replayed.map((l) => l.id ?? positionOf(l))
      const shown =
        names.length > 20
          ? `${names.slice(0, 20).join(', ')} and ${names.length - 20} more`
          : names.join(', ')
      setMessage(
        `Replayed ${plural(replayed.length, 'dead letter')} on ${channel}${matching ? ` (${matching})` : ''}: ${shown}.`,
      )
      setSelected(new Set())
    } catch (e) {
      setError(
        `${describe(e)}${replayed.length > 0 ? ` (${plural(replayed.length, 'dead letter')} replayed before that)` : ''}`,
      )
    }
  }

  return html`<div>
    <form class="filters" onSubmit=${(e: Event) => {
      e.preventDefault()
      void load(false)
    }}>
      <div><label for="dl-channel">Channel</label>
        <select id="dl-channel" value=${channel} onChange=${(e: Event) => setChannel((e.target as HTMLSelectElement).value)}>
          ${channels.map((c) => html`<option value=${c}>${c}</option>`)}
        </select></div>
      <div><label for="dl-class">Error class</label>
        <select id="dl-class" value=${errorClass} onChange=${(e: Event) => setErrorClass((e.target as HTMLSelectElement).value)}>
          <option value="">any</option>
          ${classes.map((c) => html`<option value=${c}>${c}</option>`)}
        </select></div>
      <div><label for="dl-from">Failed from</label>
        <input id="dl-from" type="datetime-local" step="1" value=${from}
          onChange=${(e: Event) => setFrom((e.target as HTMLInputElement).value)} /></div>
      <div><label for="dl-to">Failed until</label>
        <input id="dl-to" type="datetime-local" step="1" value=${to}
          onChange=${(e: Event) => setTo((e.target as HTMLInputElement).value)} /></div>
      <button type="submit" disabled=${loading}>Refresh</button>
      <button type="button" class="primary" disabled=${selected.size === 0} onClick=${() => setConfirm({ positions: [...selected] })}>
        Replay selected (${selected.size})
      </button>
      <button type="button" disabled=${counting} onClick=${() => void countMatches()}>
        ${counting ? 'Counting…' : 'Replay all matching…'}
      </button>
    </form>
    <div class="messages">
      ${message ? html`<p class="notice" role="status">${message}</p>` : null}
      ${error ? html`<p class="error" role="alert">${error}</p>` : null}
    </div>
    <div class="scroll"><table class="dead-letters">
      <caption class="visually-hidden">Dead letters of ${channel}</caption>
      <thead><tr><th scope="col"><span class="visually-hidden">Select</span></th><th scope="col">Notification</th>
        <th scope="col">Class</th><th scope="col">Attempts</th><th scope="col">Failed at</th><th scope="col">Error</th>
        <th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
      <tbody>
        ${letters.length === 0 ? html`<tr><td colspan="7" class="empty">${loading ? 'Loading…' : 'No dead letters match.'}</td></tr>` : null}
        ${letters.map((l) => {
          const position = positionOf(l)
          const name = l.id ?? position
          return html`<tr key=${position} data-id=${l.id}>
            <td><input type="checkbox" aria-label=${`Select ${name}`} checked=${selected.has(position)} onChange=${() => toggle(position)} /></td>
            <td class="mono">${name}</td><td>${l.errorClass}</td><td>${l.attempts}</td><td>${time(l.failedAt)}</td>
            <td class="clip" title=${l.error}>${l.error}</td>
            <td class="row-actions">
              <button type="button" aria-expanded=${open === position} aria-controls=${`dl-${position}`}
                onClick=${() => setOpen(open === position ? undefined : position)}>Read<span class="visually-hidden"> ${name}</span></button>
              <button type="button" onClick=${() => setConfirm({ positions: [position] })}>Replay<span class="visually-hidden"> ${name}</span></button>
            </td>
          </tr>
          ${open === position ? html`<tr id=${`dl-${position}`} class="detail"><td colspan="7"><pre>${JSON.stringify(l, null, 2)}</pre></td></tr>` : null}`
        })}
      </tbody>
    </table></div>
    ${cursor ? html`<button type="button" disabled=${loading} onClick=${() => load(true)}>Load more</button>` : null}
    ${
      confirm
        ? html`<${Dialog} title=${`Replay ${plural(confirm.positions.length, 'dead letter')}?`} submitLabel=${`Replay ${confirm.positions.length}`}
            onClose=${() => setConfirm(undefined)} onSubmit=${() => replay(confirm)}>
            ${confirm.matching ? html`<p>Every dead letter of ${channel} matching ${confirm.matching}, as counted now.</p>` : null}
            <p>${plural(confirm.positions.length, 'dead letter')} of ${channel} will be written again with ${confirm.positions.length === 1 ? 'its' : 'their'} id; ${confirm.positions.length === 1 ? 'its status goes' : 'their statuses go'} back to queued.</p>
          <//>`
        : null
    }
  </div>`
}
