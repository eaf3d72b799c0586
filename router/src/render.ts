// The text of each planned notification, from the route's template for its channel or the channel's
// default (shared's Handlebars templates). A notification that cannot be rendered is a value the caller
// dead-letters with its reason, never an exception.
import type { AlarmEvent } from '@herald/shared/alarm-events'
import { type Template, templateNameFor } from '@herald/shared/config-topics/schemas'
import { defaultTemplates, renderTemplate } from '@herald/shared/config-topics/templates'
import { messageLimits } from '@herald/shared/notification'
import type { PlannedNotification } from './plan.ts'

/** What a notification record needs from the router (the service adds the version and times). */
export interface RenderedNotification {
  id: string
  channel: PlannedNotification['channel']
  to: string
  subject?: string
  message: string
  /** The template used, for logs: a route's own or `default-<channel>`. */
  template: string
}

/** Longest email subject, as the notification record allows. */
const maxSubject = 998

export interface RenderFailure {
  /**
   * `template-missing`: the route names a template that is not (or no longer) in the store;
   * `template-channel`: the template the route names for a channel is for another channel;
   * `render-failed`: Handlebars failed (unknown helper, a helper's error) or the text is blank;
   * `too-long`: the text (or subject) is longer than the channel takes.
   */
  reason: 'template-missing' | 'template-channel' | 'render-failed' | 'too-long'
  /** Names the route, recipient, channel and template, and says what went wrong. */
  message: string
  template?: string
}

export type RenderOutcome = { ok: true; value: RenderedNotification } | { ok: false; error: RenderFailure }

/**
 * Renders `planned` for `event`. The template's context is the event, with `route` (the route's name) and
 * `recipient` (`{id, name}`) added, replacing event fields of those names.
 */
export function renderNotification(
  planned: PlannedNotification,
  event: AlarmEvent,
  templateOf: (name: string) => Template | undefined,
): RenderOutcome {
  const { route, recipient, channel } = planned
  const where = `route "${route.name}", recipient "${recipient.id}", ${channel}`
  const fail = (reason: RenderFailure['reason'], what: string, template?: string): RenderOutcome => ({
    ok: false,
    error: { reason, message: `${where}: ${what}`, ...(template !== undefined ? { template } : {}) },
  })

  // A single template name applies to its own channel only, so a name the store lacks cannot be told
  // apart from one for another channel by `templateNameFor`: it fails on every channel instead.
  if (typeof route.template === 'string' && templateOf(route.template) === undefined) {
    return fail('template-missing', `template "${route.template}" does not exist`, route.template)
  }
  const name = templateNameFor(route, channel, (n) => templateOf(n)?.channel)
  let template = defaultTemplates[channel]
  if (name !== undefined) {
    const named = templateOf(name)
    if (named === undefined) return fail('template-missing', `template "${name}" does not exist`, name)
    if (named.channel !== channel) {
      return fail('template-channel', `template "${name}" is for ${named.channel}`, name)
    }
    template = named
  }

  const context = { ...event, route: route.name, recipient: { id: recipient.id, name: recipient.name } }
  const rendered = renderTemplate(template, context)
  if (!rendered.ok) return fail('render-failed', rendered.error.message, template.name)
  const { subject, text } = rendered.value
  if (text.length > messageLimits[channel]) {
    return fail(
      'too-long',
      `template "${template.name}" renders ${text.length} characters; ${channel} takes at most ${messageLimits[channel]}`,
      template.name,
    )
  }
  if (subject !== undefined && subject.length > maxSubject) {
    return fail(
      'too-long',
      `template "${template.name}" renders a subject of ${subject.length} characters; at most ${maxSubject}`,
      template.name,
    )
  }
  return {
    ok: true,
    value: {
      id: planned.id,
      channel,
      to: planned.to,
      ...(subject !== undefined && subject !== '' ? { subject } : {}),
      message: text,
      template: template.name,
    },
  }
}
