// A modal dialog on the native <dialog> element: it keeps focus inside, Escape closes it, and focus returns
// to the button that opened it.

import { html } from 'htm/preact'
import type { ComponentChildren } from 'preact'
import { useEffect, useRef } from 'preact/hooks'

export function Dialog(props: {
  title: string
  onClose: () => void
  onSubmit: (event: Event) => void
  submitLabel: string
  children: ComponentChildren
}) {
  const ref = useRef<HTMLDialogElement>(null)
  useEffect(() => {
    const dialog = ref.current
    const opener = document.activeElement as HTMLElement | null
    dialog?.showModal()
    return () => opener?.focus()
  }, [])
  const submit = (event: Event) => {
    event.preventDefault()
    props.onSubmit(event)
  }
  return html`<dialog ref=${ref} aria-labelledby="dialog-title" onClose=${props.onClose}>
    <form onSubmit=${submit}>
      <h2 id="dialog-title">${props.title}</h2>
      ${props.children}
      <div class="actions">
        <button type="submit" class="primary">${props.submitLabel}</button>
        <button type="button" onClick=${() => ref.current?.close()}>Cancel</button>
      </div>
    </form>
  </dialog>`
}
