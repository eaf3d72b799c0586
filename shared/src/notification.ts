// The notification: what clients send (request schemas) and what Kafka keeps (the versioned record).
import { z } from 'zod'
import { type Channel, channels } from './config.ts'
import { configName, type RecipientChannel, recipientChannels } from './config-topics/schemas.ts'

export const recordVersion = 1

/**
 * Longest message per channel: Twilio's body limit is 1600 characters, Slack's text limit 40,000; a webhook
 * body stays well inside a main topic's 1 MiB record.
 */
export const messageLimits: Readonly<Record<Channel, number>> = {
  email: 50_000,
  sms: 1600,
  slack: 40_000,
  webhook: 50_000,
}

const e164 = /^\+[1-9]\d{6,14}$/
const destinationName = /^[\w.-]{1,64}$/

export interface FieldIssue {
  field: string
  reason: string
}

export interface RequestContext {
  /** Default recipient per channel (DEFAULT_EMAIL_TO, DEFAULT_SMS_TO; `default` for Slack when configured). */
  defaults: Partial<Record<Channel, string>>
  /** Names of the configured Slack destinations. */
  slackDestinations: readonly string[]
  /** Names of the configured webhook destinations (WEBHOOK_DESTINATIONS). */
  webhookDestinations?: readonly string[]
}

export interface NotificationInput {
  channel: Channel
  message: string
  to: string
  subject?: string
}

/**
 * A notification for a person of the recipients directory: it fans out to that person's enabled channels
 * (or only `channel`), one child notification each, addressed from the directory.
 */
export interface RecipientInput {
  recipient: string
  channel?: RecipientChannel
  message: string
  subject?: string
}

export type NotificationRequest = NotificationInput | RecipientInput

export const isRecipientInput = (input: NotificationRequest): input is RecipientInput => 'recipient' in input

const channelField = z
  .string({ error: 'must be a string' })
  .transform((s) => s.trim().toLowerCase())
  .pipe(z.enum(channels, { error: 'must be one of email, sms, slack, webhook' }))

/**
 * The channel field of one channel's schema. Its pattern (case-insensitive, surrounding blanks allowed, like
 * `channelField`) makes it the discriminator of the published `oneOf`: without it every body would match
 * all three request schemas and the OpenAPI document would reject every valid request.
 */
const channelLiteral = (channel: Channel) =>
  z
    .string({ error: 'must be a string' })
    .regex(
      new RegExp(`^\\s*${[...channel].map((c) => `[${c.toUpperCase()}${c}]`).join('')}\\s*$`),
      `must be ${channel}`,
    )
    .transform((s) => s.trim().toLowerCase() as Channel)

// Checks written as zod string checks (not refinements) so the OpenAPI document carries them too.
const messageField = (channel: Channel) =>
  z
    .string({ error: 'must be a string' })
    .regex(/\S/, 'must not be empty')
    .max(messageLimits[channel], `must be at most ${messageLimits[channel]} characters`)

const emailTo = z
  .string({ error: 'must be a string' })
  .trim()
  .max(254, 'must be at most 254 characters')
  .pipe(z.email({ error: 'must be an email address' }))

const smsTo = z
  .string({ error: 'must be a string' })
  .trim()
  .regex(e164, 'must be a phone number in E.164 form, e.g. +14155550123')

const slackTo = z
  .string({ error: 'must be a string' })
  .trim()
  .refine((s) => !/^[a-z][a-z0-9+.-]*:\/\//i.test(s), {
    message: 'must name a configured Slack destination, not a URL',
    abort: true,
  })
  .refine((s) => destinationName.test(s), 'must be a destination name (letters, digits, ".", "_", "-")')

const webhookTo = z
  .string({ error: 'must be a string' })
  .trim()
  .refine((s) => !/^[a-z][a-z0-9+.-]*:/i.test(s) && !s.includes('/'), {
    message: 'must name a configured webhook destination, not a URL',
    abort: true,
  })
  .refine((s) => destinationName.test(s), 'must be a destination name (letters, digits, ".", "_", "-")')

const subjectField = z
  .string({ error: 'must be a string' })
  .max(998, 'must be at most 998 characters')
  .refine((s) => !/[\r\n]/.test(s), 'must be one line')

const caseless = (word: string) => [...word].map((c) => `[${c.toUpperCase()}${c}]`).join('')

/** A body naming a recipient of the directory instead of `to`. */
export const recipientRequestSchema = z.strictObject({
  recipient: configName.describe('The id of a recipient (PUT /api/v1/recipients/{id}); replaces `to`'),
  channel: z
    .string({ error: 'must be a string' })
    .regex(
      new RegExp(`^\\s*(${recipientChannels.map(caseless).join('|')})\\s*$`),
      'must be one of email, sms, slack',
    )
    .transform((s) => s.trim().toLowerCase() as RecipientChannel)
    .optional()
    .describe('Only this channel (it must be one the recipient enabled); all enabled ones when absent'),
  message: messageField('email').describe(
    'The text on every channel: the email body, the SMS text, the Slack text (after the subject line)',
  ),
  subject: subjectField
    .optional()
    .describe("The email's subject; SMS and Slack, which have none, show it as the text's first line"),
})

/** Request body schemas per channel: the same objects validate requests and generate the OpenAPI document. */
export const requestSchemas = {
  email: z.strictObject({
    channel: channelLiteral('email'),
    message: messageField('email'),
    to: emailTo.optional().describe('An email address; defaults to DEFAULT_EMAIL_TO when configured'),
    subject: subjectField.optional(),
  }),
  sms: z.strictObject({
    channel: channelLiteral('sms'),
    message: messageField('sms'),
    to: smsTo.optional().describe('A phone number in E.164 form; defaults to DEFAULT_SMS_TO when configured'),
  }),
  slack: z.strictObject({
    channel: channelLiteral('slack'),
    message: messageField('slack'),
    to: slackTo
      .optional()
      .describe('The name of a configured Slack destination (never a URL); defaults to "default"'),
  }),
  webhook: z.strictObject({
    channel: channelLiteral('webhook'),
    message: messageField('webhook'),
    to: webhookTo.describe(
      'The name of a configured webhook destination (WEBHOOK_DESTINATIONS), never a URL',
    ),
    subject: subjectField.optional(),
  }),
} as const

function issuesOf(error: z.ZodError): FieldIssue[] {
  return error.issues.map((issue) => ({
    field: issue.path.length > 0 ? issue.path.join('.') : '(body)',
    reason: issue.code === 'unrecognized_keys' ? `unknown field(s): ${issue.keys.join(', ')}` : issue.message,
  }))
}

/** The key that keeps one recipient's notifications on one partition, in order. */
export function normaliseRecipient(channel: Channel, to: string): string {
  return channel === 'sms' ? to : to.toLowerCase()
}

/**
 * Seed 001's body, `{"type": "EMAIL"|"SMS"|"SLACK", "receiver", "message"}`, in Herald's terms (`channel`,
 * `to`), with the way back for the names in error messages. A body that names `channel` is not an alias.
 */
function fromSeedAlias(
  body: Record<string, unknown>,
): { body: Record<string, unknown>; field: (name: string) => string } | undefined {
  if (!('type' in body) || 'channel' in body || 'to' in body) return undefined
  const { type, receiver, ...rest } = body
  const names: Record<string, string> = { channel: 'type', to: 'receiver' }
  return {
    body: { ...rest, channel: type, ...(receiver !== undefined ? { to: receiver } : {}) },
    field: (name) => names[name] ?? name,
  }
}

/**
 * Validates a request body. Every problem is reported with its field; `to` falls back to the channel's
 * configured default recipient. Seed 001's `{type, receiver, message}` is accepted as an alias; its errors
 * name its own fields.
 */
export function parseNotificationRequest(
  body: unknown,
  context: RequestContext,
): { ok: true; value: NotificationRequest } | { ok: false; issues: FieldIssue[] } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return { ok: false, issues: [{ field: '(body)', reason: 'must be a JSON object' }] }
  }
  if ('recipient' in body) return parseRecipientRequest(body as Record<string, unknown>)
  const alias = fromSeedAlias(body as Record<string, unknown>)
  if (alias) {
    const result = parseHeraldRequest(alias.body, context)
    if (result.ok) return result
    return {
      ok: false,
      issues: result.issues.map((issue) => ({ ...issue, field: alias.field(issue.field) })),
    }
  }
  return parseHeraldRequest(body, context)
}

function parseRecipientRequest(
  body: Record<string, unknown>,
): { ok: true; value: RecipientInput } | { ok: false; issues: FieldIssue[] } {
  if ('to' in body) {
    return {
      ok: false,
      issues: [
        { field: 'to', reason: "must be left out with recipient (the recipient's addresses are used)" },
      ],
    }
  }
  const parsed = recipientRequestSchema.safeParse(body)
  if (!parsed.success) return { ok: false, issues: issuesOf(parsed.error) }
  const { recipient, channel, message, subject } = parsed.data
  return {
    ok: true,
    value: {
      recipient,
      message,
      ...(channel !== undefined ? { channel } : {}),
      ...(subject !== undefined ? { subject } : {}),
    },
  }
}

function parseHeraldRequest(
  body: object,
  context: RequestContext,
): { ok: true; value: NotificationInput } | { ok: false; issues: FieldIssue[] } {
  const channel = channelField.safeParse((body as Record<string, unknown>).channel)
  if (!channel.success) {
    const missing = (body as Record<string, unknown>).channel === undefined
    return {
      ok: false,
      issues: [
        { field: 'channel', reason: missing ? 'is required' : 'must be one of email, sms, slack, webhook' },
      ],
    }
  }
  const parsed = requestSchemas[channel.data].safeParse(body)
  if (!parsed.success) return { ok: false, issues: issuesOf(parsed.error) }
  const value = parsed.data as { channel: Channel; message: string; to?: string; subject?: string }
  const to = value.to ?? context.defaults[channel.data]
  if (to === undefined) {
    return {
      ok: false,
      issues: [{ field: 'to', reason: `is required: no default ${channel.data} recipient is configured` }],
    }
  }
  if (channel.data === 'slack' && !context.slackDestinations.includes(to)) {
    const known = context.slackDestinations.length > 0 ? context.slackDestinations.join(', ') : 'none'
    return {
      ok: false,
      issues: [{ field: 'to', reason: `unknown Slack destination "${to}" (configured: ${known})` }],
    }
  }
  const webhookDestinations = context.webhookDestinations ?? []
  if (channel.data === 'webhook' && !webhookDestinations.includes(to)) {
    const known = webhookDestinations.length > 0 ? webhookDestinations.join(', ') : 'none'
    return {
      ok: false,
      issues: [{ field: 'to', reason: `unknown webhook destination "${to}" (configured: ${known})` }],
    }
  }
  return {
    ok: true,
    value: {
      channel: channel.data,
      message: value.message,
      to,
      ...(value.subject !== undefined ? { subject: value.subject } : {}),
    },
  }
}

/** The record value on `notifications.<channel>` (JSON, versioned). */
export interface NotificationRecord {
  v: number
  id: string
  channel: Channel
  to: string
  subject?: string
  message: string
  createdAt: string
  expiresAt?: string
  /**
   * The alarm event this notification was made for, when a producer (the router) attaches one. Opaque
   * here: the webhook channel forwards it as it is; the other channels ignore it.
   */
  event?: Record<string, unknown>
}

export const recordSchema = z.object({
  v: z.literal(recordVersion),
  id: z.string().min(1).max(64),
  channel: z.enum(channels),
  to: z.string().min(1).max(320),
  subject: z.string().max(998).optional(),
  message: z.string().min(1),
  createdAt: z.iso.datetime(),
  expiresAt: z.iso.datetime().optional(),
  event: z.record(z.string(), z.unknown()).optional(),
})

/** The Kafka message of a record on `notifications.<channel>`: keyed by its normalised recipient. */
export function encodeRecord(record: NotificationRecord): { key: string; value: string } {
  return { key: normaliseRecipient(record.channel, record.to), value: JSON.stringify(record) }
}

export type DecodedRecord =
  | { kind: 'ok'; record: NotificationRecord }
  | { kind: 'poison'; reason: string }
  | { kind: 'future-version'; version: number }

/** Reads a record from Kafka. Anything unreadable is poison; a higher version waits for an upgrade. */
export function decodeRecord(value: Buffer | null, maxBytes = 1024 * 1024): DecodedRecord {
  if (value === null) return { kind: 'poison', reason: 'empty record (null value)' }
  if (value.length > maxBytes) return { kind: 'poison', reason: `record too large (${value.length} bytes)` }
  let parsed: unknown
  try {
    parsed = JSON.parse(value.toString('utf8'))
  } catch {
    return { kind: 'poison', reason: 'not JSON' }
  }
  const version = (parsed as { v?: unknown } | null)?.v
  if (typeof version === 'number' && Number.isInteger(version) && version > recordVersion) {
    return { kind: 'future-version', version }
  }
  const result = recordSchema.safeParse(parsed)
  if (!result.success) {
    const first = result.error.issues[0]
    return {
      kind: 'poison',
      reason: `schema: ${first?.path.join('.') || '(value)'} ${first?.message ?? ''}`.trim(),
    }
  }
  return { kind: 'ok', record: result.data as NotificationRecord }
}
