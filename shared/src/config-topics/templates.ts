// Rendering templates with Handlebars, and the default templates for alarm events. Templates are compiled
// when they are written (a template that does not compile is refused with the reason) and rendered per
// event by the router; a render failure is a value, never an exception.
import Handlebars from 'handlebars'
import { HeraldError } from '../errors.ts'
import type { FieldProblem, RecipientChannel, Template } from './schemas.ts'

const hbs = Handlebars.create()

hbs.registerHelper('upper', (value: unknown) => String(value ?? '').toUpperCase())
hbs.registerHelper('lower', (value: unknown) => String(value ?? '').toLowerCase())
/** `{{truncate text 120}}`: at most n characters, with an ellipsis when cut. */
hbs.registerHelper('truncate', (value: unknown, n: unknown) => {
  const text = String(value ?? '')
  const max = typeof n === 'number' && n > 0 ? n : 160
  return text.length <= max ? text : `${text.slice(0, Math.max(0, max - 1))}…`
})
/** `{{time timestamp}}`: an epoch-milliseconds (or ISO) time as ISO 8601 UTC; empty when not a time. */
hbs.registerHelper('time', (value: unknown) => {
  const at = typeof value === 'number' ? value : Date.parse(String(value))
  return Number.isFinite(at) ? new Date(at).toISOString() : ''
})

// Plain text everywhere: email bodies are text/plain, SMS is text, Slack escapes its own three characters
// (in the context, before rendering, see `slackSafe`).
const compileOptions = { noEscape: true } as const

export class TemplateRenderError extends HeraldError {
  readonly template: string
  constructor(template: string, message: string, cause?: unknown) {
    super('HERALD_TEMPLATE_RENDER', `template ${template}: ${message}`, { cause })
    this.template = template
  }
}

export interface Rendered {
  subject?: string
  text: string
}

export type RenderResult = { ok: true; value: Rendered } | { ok: false; error: TemplateRenderError }

/** Syntax errors of a template's fields, as the API's `details` (empty when it compiles). */
export function checkTemplate(template: Pick<Template, 'subject' | 'body'>): FieldProblem[] {
  const problems: FieldProblem[] = []
  for (const field of ['subject', 'body'] as const) {
    const source = template[field]
    if (source === undefined) continue
    try {
      hbs.precompile(source, compileOptions)
    } catch (error) {
      problems.push({ field, reason: `does not compile: ${firstLine(error)}` })
    }
  }
  return problems
}

function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error)
  return message.split('\n').filter(Boolean).slice(0, 3).join(' ').slice(0, 300)
}

/** Slack mrkdwn treats &, < and > as control characters: escape them in every string of the context. */
function slackSafe(value: unknown): unknown {
  if (typeof value === 'string')
    return value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
  if (Array.isArray(value)) return value.map(slackSafe)
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, slackSafe(v)]))
  }
  return value
}

const compiled = new Map<string, HandlebarsTemplateDelegate>()

function compile(source: string): HandlebarsTemplateDelegate {
  let fn = compiled.get(source)
  if (!fn) {
    fn = hbs.compile(source, compileOptions)
    if (compiled.size > 1000) compiled.clear()
    compiled.set(source, fn)
  }
  return fn
}

/**
 * Renders a template for an event (any JSON object: the alarm event, with what the caller adds). Returns
 * the text, or an error naming the template and the reason: a template that does not compile, a helper
 * that is not defined or fails, or a body that renders to blank text.
 */
export function renderTemplate(
  template: Pick<Template, 'name' | 'channel' | 'subject' | 'body'>,
  event: Record<string, unknown>,
): RenderResult {
  const context = template.channel === 'slack' ? slackSafe(event) : event
  try {
    const text = compile(template.body)(context)
    if (!/\S/.test(text)) {
      return { ok: false, error: new TemplateRenderError(template.name, 'the body renders to blank text') }
    }
    if (template.channel !== 'email' || template.subject === undefined) return { ok: true, value: { text } }
    const subject = compile(template.subject)(context)
      .replace(/[\r\n]+/g, ' ')
      .trim()
    return { ok: true, value: { subject, text } }
  } catch (error) {
    return { ok: false, error: new TemplateRenderError(template.name, firstLine(error), error) }
  }
}

/** The templates used when a route names none for a channel. Context: the alarm event. */
export const defaultTemplates: Readonly<Record<RecipientChannel, Template>> = {
  email: {
    name: 'default-email',
    channel: 'email',
    subject: '[{{newState}}] {{alarmName}}{{#if severity}} ({{severity}}){{/if}}',
    body: [
      'Alarm {{alarmName}} went from {{oldState}} to {{newState}}{{#if timestamp}} at {{time timestamp}}{{/if}}.',
      '{{#if stateChangeReason}}',
      'Reason: {{stateChangeReason}}',
      '{{/if}}',
      '{{#if severity}}',
      'Severity: {{severity}}',
      '{{/if}}',
      '{{#each labels}}',
      '{{@key}}: {{this}}',
      '{{/each}}',
      '{{#if link}}',
      'Details: {{link}}',
      '{{/if}}',
    ].join('\n'),
  },
  sms: {
    name: 'default-sms',
    channel: 'sms',
    body: '[{{newState}}] {{truncate alarmName 60}}{{#if severity}} {{severity}}{{/if}}{{#if stateChangeReason}}: {{truncate stateChangeReason 100}}{{/if}}',
  },
  slack: {
    name: 'default-slack',
    channel: 'slack',
    body: [
      '*[{{newState}}]* {{#if link}}<{{link}}|{{alarmName}}>{{else}}*{{alarmName}}*{{/if}}{{#if severity}} ({{severity}}){{/if}}',
      '{{#if stateChangeReason}}',
      '{{stateChangeReason}}',
      '{{/if}}',
      '{{#each labels}}',
      '• {{@key}}: `{{this}}`',
      '{{/each}}',
    ].join('\n'),
  },
}
