// The Herald operator console: sign in with an API key, then four views, chosen by the URL's hash so that a
// view can be bookmarked and the browser's back button works.
import { html, render } from 'htm/preact'
import { useEffect, useState } from 'preact/hooks'
import { ApiFailure, apiKey, call, describe, whenUnauthorized } from './api.ts'
import { AlarmsView } from './views/alarms.ts'
import { ChannelsView } from './views/channels.ts'
import { DeadLettersView } from './views/dead-letters.ts'
import { NotificationView } from './views/notification.ts'

const views = [
  { path: 'notification', title: 'Notification', View: NotificationView },
  { path: 'channels', title: 'Channels', View: ChannelsView },
  { path: 'dead-letters', title: 'Dead letters', View: DeadLettersView },
  { path: 'alarms', title: 'Alarms', View: AlarmsView },
] as const

/** `#/notification/ID` → { view: 'notification', arg: 'ID' }. */
function route(): { view: string; arg: string | undefined } {
  const [, view = 'notification', ...rest] = window.location.hash.split('/')
  return { view, arg: rest.length > 0 ? decodeURIComponent(rest.join('/')) : undefined }
}

function SignIn(props: { onSignedIn: () => void; notice: string | undefined }) {
  const [key, setKey] = useState('')
  const [error, setError] = useState<string | undefined>(undefined)
  const [busy, setBusy] = useState(false)
  const submit = async (event: Event) => {
    event.preventDefault()
    setBusy(true)
    setError(undefined)
    try {
      // Any endpoint every key may read: a wrong key is refused here rather than in the first view.
      await call('GET', '/channels', undefined, key.trim())
      apiKey.set(key.trim())
      props.onSignedIn()
    } catch (e) {
      setError(e instanceof ApiFailure && e.status === 401 ? 'That API key was refused.' : describe(e))
    } finally {
      setBusy(false)
    }
  }
  return html`<main class="signin">
    <h1>Herald console</h1>
    ${props.notice ? html`<p class="notice" role="status">${props.notice}</p>` : null}
    <form onSubmit=${submit}>
      <label for="api-key">API key</label>
      <input id="api-key" name="api-key" type="password" autocomplete="current-password" required
        value=${key} onInput=${(e: Event) => setKey((e.target as HTMLInputElement).value)} />
      <p class="hint">Kept in this tab only (session storage). Changing alarms and replaying dead letters need an admin key.</p>
      <button type="submit" disabled=${busy}>Sign in</button>
      ${error ? html`<p class="error" role="alert">${error}</p>` : null}
    </form>
  </main>`
}

function App() {
  const [signedIn, setSignedIn] = useState(apiKey.get() !== null)
  const [notice, setNotice] = useState<string | undefined>(undefined)
  const [current, setCurrent] = useState(route())
  useEffect(() => {
    const onHash = () => setCurrent(route())
    window.addEventListener('hashchange', onHash)
    whenUnauthorized((message) => {
      apiKey.clear()
      setNotice(`Signed out: ${message}`)
      setSignedIn(false)
    })
    return () => window.removeEventListener('hashchange', onHash)
  }, [])
  if (!signedIn) {
    return html`<${SignIn} notice=${notice} onSignedIn=${() => {
      setNotice(undefined)
      setSignedIn(true)
    }} />`
  }
  const active = views.find((v) => v.path === current.view) ?? views[0]
  const signOut = () => {
    apiKey.clear()
    setNotice('Signed out.')
    setSignedIn(false)
  }
  return html`<div class="shell">
    <header>
      <p class="brand">Herald console</p>
      <nav aria-label="Views">
        <ul>
          ${views.map(
            (v) => html`<li key=${v.path}>
              <a href=${`#/${v.path}`} aria-current=${v === active ? 'page' : undefined}>${v.title}</a>
            </li>`,
          )}
        </ul>
      </nav>
      <button type="button" class="link" onClick=${signOut}>Sign out</button>
    </header>
    <main id="main">
      <h1>${active.title}</h1>
      <${active.View} key=${active.path} arg=${current.arg} />
    </main>
  </div>`
}

const root = document.getElementById('app')
if (root) {
  root.textContent = ''
  render(html`<${App} />`, root)
}
