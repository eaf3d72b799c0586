// Recipients, templates and routes: the values kept on the configuration topics. The same schemas validate
// API requests, records read back from Kafka, and generate the OpenAPI document.
import { z } from 'zod'

/** Channels a person can be reached on. */
export const recipientChannels = ['email', 'sms', 'slack'] as const
export type RecipientChannel = (typeof recipientChannels)[number]

export const alarmStates = ['ALARM', 'OK', 'UNDETERMINED'] as const
export type AlarmState = (typeof alarmStates)[number]

/** Names and ids: also the record key, and a path segment of the API. */
export const configName = z
  .string({ error: 'must be a string' })
  .regex(/^[A-Za-z0-9][\w.@-]{0,127}$/, 'must be 1-128 letters, digits, ".", "_", "@" or "-"')

const e164 = /^\+[1-9]\d{6,14}$/

const channelList = z
  .array(z.enum(recipientChannels, { error: 'must be one of email, sms, slack' }))
  .refine((list) => new Set(list).size === list.length, 'must not repeat a channel')

const clock = z
  .string({ error: 'must be a string' })
  .regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'must be a time of day HH:MM (00:00-23:59)')

function isTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: name })
    return true
  } catch {
    return false
  }
}

const slackDestination = z
  .string({ error: 'must be a string' })
  .trim()
  .refine((s) => !/^[a-z][a-z0-9+.-]*:/i.test(s), {
    message: 'must name a configured Slack destination (a key of SLACK_WEBHOOKS), never a URL',
    abort: true,
  })
  .refine((s) => /^[\w.-]{1,64}$/.test(s), 'must be a destination name (letters, digits, ".", "_", "-")')

export const recipientSchema = z
  .strictObject({
    id: configName,
    name: z.string({ error: 'must be a string' }).trim().min(1, 'must not be empty').max(200),
    email: z
      .string({ error: 'must be a string' })
      .trim()
      .max(254, 'must be at most 254 characters')
      .pipe(z.email({ error: 'must be an email address' }))
      .optional(),
    phone: z
      .string({ error: 'must be a string' })
      .trim()
      .regex(e164, 'must be a phone number in E.164 form, e.g. +14155550123')
      .optional(),
    slack: slackDestination.optional(),
    channels: channelList.describe('The channels this person is reached on (each needs its address)'),
    timezone: z
      .string({ error: 'must be a string' })
      .refine(isTimeZone, 'must be an IANA time zone, e.g. Europe/Paris')
      .optional(),
    quietHours: z.strictObject({ start: clock, end: clock }).optional(),
  })
  .superRefine((r, ctx) => {
    const address = { email: r.email, sms: r.phone, slack: r.slack }
    const field = { email: 'email', sms: 'phone', slack: 'slack' }
    for (const channel of r.channels) {
      if (address[channel] === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: [field[channel]],
          message: `is required when channels include ${channel}`,
        })
      }
    }
  })
export type Recipient = z.infer<typeof recipientSchema>

export const templateSchema = z
  .strictObject({
    name: configName,
    channel: z.enum(recipientChannels, { error: 'must be one of email, sms, slack' }),
    subject: z
      .string({ error: 'must be a string' })
      .max(998, 'must be at most 998 characters')
      .optional()
      .describe('Email only: a Handlebars template of the subject line'),
    body: z
      .string({ error: 'must be a string' })
      .regex(/\S/, 'must not be empty')
      .max(50_000, 'must be at most 50000 characters')
      .describe('A Handlebars template; the alarm event is its context'),
  })
  .superRefine((t, ctx) => {
    if (t.subject !== undefined && t.channel !== 'email') {
      ctx.addIssue({ code: 'custom', path: ['subject'], message: 'is for email templates only' })
    }
  })
export type Template = z.infer<typeof templateSchema>

const templateChoice = z
  .union([configName, z.partialRecord(z.enum(recipientChannels), configName)])
  .describe(
    'A template name (used on its own channel), or channel → template name; other channels use the defaults',
  )

export const routeSchema = z.strictObject({
  name: configName,
  match: z.strictObject({
    alarmName: z.string({ error: 'must be a string' }).min(1).max(255).optional(),
    alarmDefinitionId: z.string({ error: 'must be a string' }).min(1).max(255).optional(),
    labels: z
      .record(z.string().min(1).max(255), z.string().max(1024))
      .optional()
      .describe('Every label given must be on the event with this value'),
    severity: z
      .array(z.string().min(1).max(64))
      .min(1, 'must name at least one severity')
      .optional()
      .describe('The event severity is one of these (case-insensitive), e.g. HIGH, CRITICAL'),
    states: z
      .array(z.enum(alarmStates, { error: 'must be one of ALARM, OK, UNDETERMINED' }))
      .min(1, 'must name at least one state'),
  }),
  recipients: z.array(configName).min(1, 'must name at least one recipient').max(1000),
  channels: channelList
    .optional()
    .describe("Only these channels (of each recipient's enabled ones); all enabled ones when absent"),
  template: templateChoice.optional(),
  periodSeconds: z
    .number({ error: 'must be a number' })
    .int('must be a whole number of seconds')
    .min(10, 'must be at least 10')
    .max(7 * 86_400, 'must be at most 604800 (a week)')
    .optional()
    .describe('Repeat the notification at this period while the alarm stays in the matched state'),
})
export type Route = z.infer<typeof routeSchema>

/**
 * The template a route names for `channel`: a single name applies to the channel of that template only;
 * undefined means "use the default template of the channel".
 */
export function templateNameFor(
  route: Route,
  channel: RecipientChannel,
  templateChannel: (name: string) => RecipientChannel | undefined,
): string | undefined {
  const choice = route.template
  if (choice === undefined) return undefined
  if (typeof choice === 'string') return templateChannel(choice) === channel ? choice : undefined
  return choice[channel]
}

export interface FieldProblem {
  field: string
  reason: string
}

/** zod issues as {field, reason}, the API's `details`. */
export function problemsOf(error: z.ZodError): FieldProblem[] {
  return error.issues.map((issue) => ({
    field: issue.path.length > 0 ? issue.path.join('.') : '(body)',
    reason: issue.code === 'unrecognized_keys' ? `unknown field(s): ${issue.keys.join(', ')}` : issue.message,
  }))
}
