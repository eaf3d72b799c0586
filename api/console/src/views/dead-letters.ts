// Dead letters: one channel's, filtered by class (GET /api/v1/dead-letters/:channel), read one, replay one
// or a selection (POST .../replay with their partition:offset) after a confirmation that says how many.
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

export function DeadLettersView() {
  const [channel, setChannel] = useState('email')
  const [errorClass, setErrorClass] = useState('')
  const [letters, setLetters] = useState<DeadLetter[]>([])
  const [cursor, setCursor] = useState<string | null>(null)
  const [loading, setLoading] = useState(false)
  const [selected, setSelected] = useState<Set<string>>(new Set())
  const [open, setOpen] = useState<string | undefined>(undefined)
  const [confirm, setConfirm] = useState<string[] | undefined>(undefined)
  const [message, setMessage] = useState<string | undefined>(undefined)
  const [error, setError] = useState<string | undefined>(undefined)

  const load = async (more: boolean) => {
    setLoading(true)
    setError(undefined)
    try {
      const query = new URLSearchParams({ limit: '50' })
      if (errorClass) query.set('class', errorClass)
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
  }, [channel, errorClass])

  const toggle = (position: string) =>
    setSelected((before) => {
      const next = new Set(before)
      if (next.has(position)) next.delete(position)
      else next.add(position)
      return next
    })

  const replay = async (positions: string[]) => {
    setConfirm(undefined)
    setMessage(undefined)
    setError(undefined)
    try {
      const answer = await call<{ replayed: DeadLetter[] }>('POST', `/dead-letters/${channel}/replay`, {
        at: positions,
      })
      setMessage(
        `Replayed ${plural(answer.replayed.length, 'dead letter')} on ${channel}: ${answer.replayed.map((l) => l.id ?? positionOf(l)).join(', ')}.`,
      )
      setSelected(new Set())
    } catch (e) {
      setError(describe(e))
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
      <button type="submit" disabled=${loading}>Refresh</button>
      <button type="button" class="primary" disabled=${selected.size === 0} onClick=${() => setConfirm([...selected])}>
        Replay selected (${selected.size})
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
              <button type="button" onClick=${() => setConfirm([position])}>Replay<span class="visually-hidden"> ${name}</span></button>
            </td>
          </tr>
          ${open === position ? html`<tr id=${`dl-${position}`} class="detail"><td colspan="7"><pre>${JSON.stringify(l, null, 2)}</pre></td></tr>` : null}`
        })}
      </tbody>
    </table></div>
    ${cursor ? html`<button type="button" disabled=${loading} onClick=${() => load(true)}>Load more</button>` : null}
    ${
      confirm
        ? html`<${Dialog} title=${`Replay ${plural(confirm.length, 'dead letter')}?`} submitLabel=${`Replay ${confirm.length}`}
            onClose=${() => setConfirm(undefined)} onSubmit=${() => replay(confirm)}>
            <p>${plural(confirm.length, 'dead letter')} of ${channel} will be written again with ${confirm.length === 1 ? 'its' : 'their'} id; ${confirm.length === 1 ? 'its status goes' : 'their statuses go'} back to queued.</p>
          <//>`
        : null
    }
  </div>`
}
