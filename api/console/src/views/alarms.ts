// Alarms: every alarm with its effective state (GET /api/v1/alarms, every page), filtered by state, read
// again every three seconds; ack, shelve (for how long, and why), unshelve, disable and enable from the row
// (POST /api/v1/alarms/:name/<action>: admin keys; the api records the signed-in key's name).
import { html } from 'htm/preact'
import { useEffect, useState } from 'preact/hooks'
import { call, describe } from '../api.ts'
import { Dialog } from '../dialog.ts'
import { time } from '../format.ts'

interface Alarm {
  name: string
  registration: { severity?: string; latching?: boolean }
  effective: {
    state: string
    severity: string
    since: number
    overrides: string[]
    acknowledged?: boolean
  } | null
  overrides: {
    shelved?: { until?: number; oneshot?: boolean; reason: string; user: string }
    disabled?: unknown
  }
}

// The effective states of shared/src/alarms/schemas.ts (copied: the page does not bundle the api's schemas).
const states = [
  'active',
  'latched',
  'normal-latched',
  'off-delayed',
  'on-delayed',
  'normal',
  'oneshot-shelved',
  'normal-oneshot-shelved',
  'continuous-shelved',
  'normal-continuous-shelved',
  'masked',
  'normal-masked',
  'disabled',
  'normal-disabled',
]

type Pending = { action: 'shelve' | 'disable'; name: string }

export function AlarmsView() {
  const [state, setState] = useState('')
  const [alarms, setAlarms] = useState<Alarm[] | undefined>(undefined)
  const [error, setError] = useState<string | undefined>(undefined)
  const [message, setMessage] = useState<string | undefined>(undefined)
  const [pending, setPending] = useState<Pending | undefined>(undefined)
  const [minutes, setMinutes] = useState('60')
  const [oneshot, setOneshot] = useState(false)
  const [reason, setReason] = useState('')
  const [tick, setTick] = useState(0)

  useEffect(() => {
    let stopped = false
    let timer: number | undefined
    const read = async () => {
      try {
        const all: Alarm[] = []
        let cursor: string | null = null
        do {
          const query = new URLSearchParams({ limit: '500' })
          if (state) query.set('state', state)
          if (cursor) query.set('cursor', cursor)
          const page: { alarms: Alarm[]; nextCursor: string | null } = await call('GET', `/alarms?${query}`)
          all.push(...page.alarms)
          cursor = page.nextCursor
        } while (cursor)
        if (stopped) return
        setAlarms(all)
        setError(undefined)
      } catch (e) {
        if (!stopped) setError(describe(e))
      }
      if (!stopped) timer = window.setTimeout(read, 3000)
    }
    void read()
    return () => {
      stopped = true
      window.clearTimeout(timer)
    }
  }, [state, tick])

  const act = async (
    name: string,
    action: string,
    body: unknown = {},
    done = `${action} of ${name} accepted`,
  ) => {
    setMessage(undefined)
    setError(undefined)
    try {
      await call('POST', `/alarms/${encodeURIComponent(name)}/${action}`, body)
      setMessage(`${done[0]?.toUpperCase()}${done.slice(1)}; the state follows in a moment.`)
      setTick((t) => t + 1)
    } catch (e) {
      setError(`${action} ${name}: ${describe(e)}`)
    }
  }

  const open = (next: Pending) => {
    setReason('')
    setMinutes('60')
    setOneshot(false)
    setPending(next)
  }

  const submitPending = () => {
    if (!pending) return
    const { action, name } = pending
    setPending(undefined)
    if (action === 'disable') void act(name, 'disable', { reason }, `disable of ${name} accepted`)
    else {
      const body = oneshot ? { oneshot: true, reason } : { for: Math.round(Number(minutes) * 60), reason }
      void act(name, 'shelve', body, `shelve of ${name} accepted`)
    }
  }

  return html`<div>
    <form class="filters" onSubmit=${(e: Event) => e.preventDefault()}>
      <div><label for="alarm-state">State</label>
        <select id="alarm-state" value=${state} onChange=${(e: Event) => setState((e.target as HTMLSelectElement).value)}>
          <option value="">any</option>
          ${states.map((s) => html`<option value=${s}>${s}</option>`)}
        </select></div>
    </form>
    <div class="messages">
      ${message ? html`<p class="notice" role="status">${message}</p>` : null}
      ${error ? html`<p class="error" role="alert">${error}</p>` : null}
    </div>
    <div class="scroll"><table class="alarms">
      <caption class="visually-hidden">Alarms and their effective states</caption>
      <thead><tr><th scope="col">Alarm</th><th scope="col">State</th><th scope="col">Severity</th>
        <th scope="col">Since</th><th scope="col">Overrides</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
      <tbody>
        ${alarms === undefined ? html`<tr><td colspan="6" class="empty">Loading…</td></tr>` : null}
        ${alarms?.length === 0 ? html`<tr><td colspan="6" class="empty">No alarms match.</td></tr>` : null}
        ${(alarms ?? []).map((a) => {
          const e = a.effective
          const latched = e?.state === 'latched' || e?.state === 'normal-latched'
          const shelved = a.overrides.shelved !== undefined
          const disabled = a.overrides.disabled !== undefined
          const label = (verb: string) => html`${verb}<span class="visually-hidden"> ${a.name}</span>`
          return html`<tr key=${a.name} data-alarm=${a.name}>
            <td class="mono">${a.name}</td>
            <td data-field="state"><span class=${`badge state-${e?.state ?? 'unknown'}`}>${e?.state ?? 'not evaluated'}</span></td>
            <td>${e?.severity ?? a.registration.severity ?? '—'}</td>
            <td>${time(e?.since)}</td>
            <td>${e && e.overrides.length > 0 ? e.overrides.join(', ') : '—'}</td>
            <td class="row-actions">
              ${latched ? html`<button type="button" onClick=${() => act(a.name, 'ack', {}, `acknowledgement of ${a.name} accepted`)}>${label('Ack')}</button>` : null}
              ${
                shelved
                  ? html`<button type="button" onClick=${() => act(a.name, 'unshelve')}>${label('Unshelve')}</button>`
                  : html`<button type="button" onClick=${() => open({ action: 'shelve', name: a.name })}>${label('Shelve')}</button>`
              }
              ${
                disabled
                  ? html`<button type="button" onClick=${() => act(a.name, 'enable')}>${label('Enable')}</button>`
                  : html`<button type="button" onClick=${() => open({ action: 'disable', name: a.name })}>${label('Disable')}</button>`
              }
            </td>
          </tr>`
        })}
      </tbody>
    </table></div>
    ${
      pending
        ? html`<${Dialog} title=${`${pending.action === 'shelve' ? 'Shelve' : 'Disable'} ${pending.name}`}
            submitLabel=${pending.action === 'shelve' ? 'Shelve' : 'Disable'}
            onClose=${() => setPending(undefined)} onSubmit=${submitPending}>
            ${
              pending.action === 'shelve'
                ? html`<div class="field"><label for="shelve-minutes">Shelve for (minutes)</label>
                    <input id="shelve-minutes" type="number" min="1" step="1" required=${!oneshot} disabled=${oneshot}
                      value=${minutes} onInput=${(e: Event) => setMinutes((e.target as HTMLInputElement).value)} /></div>
                  <div class="field check"><input id="shelve-oneshot" type="checkbox" checked=${oneshot}
                      onChange=${(e: Event) => setOneshot((e.target as HTMLInputElement).checked)} />
                    <label for="shelve-oneshot">Until it clears (one-shot)</label></div>`
                : html`<p>No notifications for ${pending.name} until it is enabled again.</p>`
            }
            <div class="field"><label for="action-reason">Reason</label>
              <input id="action-reason" type="text" required value=${reason}
                onInput=${(e: Event) => setReason((e.target as HTMLInputElement).value)} /></div>
          <//>`
        : null
    }
  </div>`
}
