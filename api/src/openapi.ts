// The OpenAPI 3.1 document, generated from the same zod schemas that validate requests, so it cannot drift.
import { messageLimits, recipientRequestSchema, requestSchemas } from '@herald/shared/notification'
import { statuses } from '@herald/shared/status'
import { z } from 'zod'
import { alarmEventsOpenApi } from './openapi-alarm-events.ts'
import { alarmsOpenApi } from './openapi-alarms.ts'
import { channelsOpenApi } from './openapi-channels.ts'
import { configOpenApi } from './openapi-config.ts'
import { rulesOpenApi } from './openapi-rules.ts'
import { defaultPageSize, errorClasses, maxPageSize } from './routes/dead-letters.ts'

export const acceptedSchema = z.object({
  id: z.string().describe('Time-ordered notification id (UUIDv7)'),
  channel: z.enum(['email', 'sms', 'slack', 'webhook']),
  status: z.literal('queued'),
})

const childSchema = z.object({
  id: z.string().describe("The parent's id and the channel: `<parent id>.<channel>`"),
  channel: z.enum(['email', 'sms', 'slack']),
})

export const acceptedFanOutSchema = z.object({
  id: z.string().describe('The parent id (UUIDv7): GET it for every child and its status'),
  recipient: z.string(),
  status: z.literal('queued'),
  children: z.array(childSchema).describe('One notification per channel, each with its own id'),
})

export const errorSchema = z.object({
  error: z.string().describe('Stable error code, e.g. invalid_request, unavailable'),
  message: z.string(),
  details: z.array(z.object({ field: z.string(), reason: z.string() })).optional(),
})

export const statusSchema = z.object({
  id: z.string(),
  status: z.enum(statuses),
  channel: z.enum(['email', 'sms', 'slack', 'webhook']).optional(),
  attempts: z.number().int(),
  lastError: z.string().optional(),
  notBefore: z.string().optional().describe('While throttled: when it may go (its recipient rate limit)'),
  createdAt: z.string().optional(),
  updatedAt: z.string().optional(),
  history: z
    .array(
      z.object({
        status: z.enum(statuses),
        at: z.string().describe('When the change was applied (ISO-8601)'),
        attempts: z.number().int().optional(),
        lastError: z.string().optional(),
        channel: z.enum(['email', 'sms', 'slack', 'webhook']).optional(),
      }),
    )
    .describe(
      'The status changes, oldest first: the last 20 kept with the status (a repeat of the last one, such as ' +
        'throttled again, is not added); empty for a status written before they were kept',
    ),
})

export const parentStatusSchema = z.object({
  id: z.string(),
  recipient: z.string(),
  createdAt: z.string(),
  children: z.array(statusSchema.extend({ channel: z.enum(['email', 'sms', 'slack']) })),
})

export const batchResultSchema = z.object({
  results: z.array(
    z.union([
      z.object({ index: z.number().int(), status: z.literal(202), id: z.string(), channel: z.string() }),
      z.object({
        index: z.number().int(),
        status: z.literal(202),
        id: z.string(),
        recipient: z.string(),
        children: z.array(childSchema),
      }),
      z.object({
        index: z.number().int(),
        status: z.number().int(),
        error: z.string(),
        message: z.string(),
        details: z.array(z.object({ field: z.string(), reason: z.string() })).optional(),
      }),
    ]),
  ),
})

export const deadLetterSchema = z.object({
  partition: z.number().int(),
  offset: z.string(),
  id: z.string().optional().describe('The notification id (absent when the record was unreadable)'),
  key: z.string().optional(),
  errorClass: z.string(),
  error: z.string(),
  attempts: z.number().int(),
  failedAt: z.string(),
  original: z.object({ topic: z.string(), partition: z.number().int(), offset: z.string() }),
})

const nextCursor = z
  .string()
  .nullable()
  .describe('Pass as `cursor` for the next page; null once the dead-letter topic was read to its end')

export const deadLetterPageSchema = z.object({
  channel: z.enum(['email', 'sms', 'slack', 'webhook']),
  deadLetters: z.array(deadLetterSchema),
  nextCursor,
})

export const replayResultSchema = z.object({
  channel: z.enum(['email', 'sms', 'slack', 'webhook']),
  replayed: z.array(deadLetterSchema),
  nextCursor,
})

const pageSize = z
  .number()
  .int()
  .min(1)
  .max(maxPageSize)
  .default(defaultPageSize)
  .describe(`Page size: ${defaultPageSize} by default, at most ${maxPageSize} (more is a 400 naming limit)`)

export const replayRequestSchema = z
  .object({
    at: z
      .array(z.string().regex(/^\d+:\d+$/))
      .max(maxPageSize)
      .optional()
      .describe('partition:offset'),
    class: z.enum(errorClasses).optional(),
    since: z.string().optional().describe('ISO 8601 date-time'),
    until: z.string().optional().describe('ISO 8601 date-time'),
    all: z.boolean().optional(),
    limit: pageSize,
    cursor: z.string().optional(),
  })
  .strict()

const json = (schema: z.ZodType, io: 'input' | 'output' = 'output') => {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Record<
    string,
    unknown
  >
  return rest
}

const errorResponse = (description: string, options: { retryAfter?: boolean } = {}) => ({
  description,
  ...(options.retryAfter
    ? { headers: { 'Retry-After': { description: 'Seconds to wait', schema: { type: 'integer' } } } }
    : {}),
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
})

/** Every route answers these with the same error body. */
const commonErrors = {
  '401': errorResponse('Missing or wrong API key (Authorization: Bearer <key>)'),
  default: errorResponse('Any other error, e.g. 405 method_not_allowed (with Allow), 404 not_found'),
}

const channelParameter = {
  name: 'channel',
  in: 'path',
  required: true,
  schema: { type: 'string', enum: ['email', 'sms', 'slack', 'webhook'] },
}

const forbidden = errorResponse('Not an admin key (API_KEYS entry name:key:admin), or no API keys configured')

export function buildOpenApi(options: { maxBatch: number }) {
  const notification = {
    oneOf: (['email', 'sms', 'slack', 'webhook', 'recipient'] as const).map((c) => ({
      $ref: `#/components/schemas/${c}Notification`,
    })),
  }
  const config = configOpenApi({ json, errorResponse, commonErrors, forbidden })
  const alarmEvents = alarmEventsOpenApi({ json, errorResponse, commonErrors }, options)
  const alarms = alarmsOpenApi({ json, errorResponse, commonErrors, forbidden })
  const rules = rulesOpenApi({ json, errorResponse, commonErrors, forbidden })
  const channelLag = channelsOpenApi({ json, errorResponse, commonErrors })
  return {
    openapi: '3.1.0',
    info: {
      title: 'Herald',
      version: '1',
      description:
        'Notifications accepted over HTTP, kept in Kafka, delivered at least once. A 202 is a promise: the ' +
        `notification will be delivered or dead-lettered. Message limits: ${JSON.stringify(messageLimits)}.`,
    },
    components: {
      securitySchemes: {
        apiKey: {
          type: 'http',
          scheme: 'bearer',
          description:
            'An API key from API_KEYS (name:key, a sender; name:key:admin, an admin). Senders send ' +
            'notifications and alarm events and read statuses, configuration, alarms and rules; only admins ' +
            'read and replay dead letters, change configuration and rules, and register, activate, ' +
            'acknowledge, shelve or disable alarms. ' +
            'With no keys configured the api accepts ' +
            'notifications from anyone and refuses the dead-letter endpoints.',
        },
      },
      schemas: {
        emailNotification: json(requestSchemas.email, 'input'),
        smsNotification: json(requestSchemas.sms, 'input'),
        slackNotification: json(requestSchemas.slack, 'input'),
        webhookNotification: json(requestSchemas.webhook, 'input'),
        recipientNotification: json(recipientRequestSchema, 'input'),
        Accepted: json(acceptedSchema),
        AcceptedFanOut: json(acceptedFanOutSchema),
        Error: json(errorSchema),
        Status: json(statusSchema),
        ParentStatus: json(parentStatusSchema),
        BatchResult: json(batchResultSchema),
        DeadLetter: json(deadLetterSchema),
        DeadLetterPage: json(deadLetterPageSchema),
        ReplayRequest: json(replayRequestSchema, 'input'),
        ReplayResult: json(replayResultSchema),
        ...config.schemas,
        ...alarmEvents.schemas,
        ...alarms.schemas,
        ...rules.schemas,
        ...channelLag.schemas,
      },
    },
    security: [{ apiKey: [] }],
    paths: {
      '/api/v1/notification': {
        post: {
          summary: 'Accept one notification',
          description:
            'Also accepts the body of seed 001 as an alias: `{"type": "EMAIL"|"SMS"|"SLACK", "receiver", "message"}` ' +
            '(type = channel, receiver = to); its errors name `type` and `receiver`.\n\n' +
            'A body may name a `recipient` (an id of /api/v1/recipients) instead of `to`: it fans out to every ' +
            'channel that person enabled, or only to `channel`, as one child notification per channel with ' +
            'its own id (`<parent id>.<channel>`), addressed from the directory (email address, phone, Slack ' +
            'destination). Email gets `subject` and `message`; SMS and Slack, which have no subject, get the ' +
            'subject (when given) as the first line of the text, then `message`. The answer (202 once every ' +
            'child is written) lists the children; GET the parent id for their statuses. A retry with the same ' +
            'Idempotency-Key gives the same parent and child ids. Unknown recipient, channel not enabled, or a ' +
            'text too long for one of its channels: 422 naming the field.',
          parameters: [
            {
              name: 'Idempotency-Key',
              in: 'header',
              required: false,
              schema: { type: 'string', maxLength: 200 },
              description: 'The same key (per API key) returns the same id and writes once (24 h).',
            },
          ],
          requestBody: { required: true, content: { 'application/json': { schema: notification } } },
          responses: {
            '202': {
              description: 'Written to Kafka (acks=all): it will be delivered or dead-lettered',
              headers: { Location: { schema: { type: 'string' } } },
              content: {
                'application/json': {
                  schema: {
                    oneOf: [
                      { $ref: '#/components/schemas/Accepted' },
                      { $ref: '#/components/schemas/AcceptedFanOut' },
                    ],
                  },
                },
              },
            },
            '400': errorResponse('Invalid body: details name each field and reason'),
            ...commonErrors,
            '409': errorResponse('The same Idempotency-Key is still in flight', { retryAfter: true }),
            '413': errorResponse('Body too large'),
            '415': errorResponse('Body is not JSON'),
            '422': errorResponse(
              'Idempotency-Key reused with another body (idempotency_key_reused), or a recipient that cannot ' +
                'be reached as asked (recipient_unreachable: unknown id, channel not enabled, text too long)',
            ),
            '503': errorResponse('Outcome unknown: retry with the same Idempotency-Key', {
              retryAfter: true,
            }),
          },
        },
      },
      '/api/v1/notifications': {
        post: {
          summary: `Accept up to ${options.maxBatch} notifications; per-item results in order`,
          requestBody: {
            required: true,
            content: {
              'application/json': {
                schema: { type: 'array', maxItems: options.maxBatch, items: notification },
              },
            },
          },
          responses: {
            '207': {
              description: 'Per-item results: 202 with an id, or an error',
              content: { 'application/json': { schema: { $ref: '#/components/schemas/BatchResult' } } },
            },
            '400': errorResponse('Not an array, or too many items'),
            '413': errorResponse('Body too large'),
            '415': errorResponse('Body is not JSON'),
            ...commonErrors,
          },
        },
      },
      '/api/v1/notification/{id}': {
        get: {
          summary: 'Status of one notification',
          parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
          responses: {
            '200': {
              description:
                'Status, attempts, last error, timestamps and the history of status changes; for a notification ' +
                'sent to a recipient, every child with its channel, status and history',
              content: {
                'application/json': {
                  schema: {
                    oneOf: [
                      { $ref: '#/components/schemas/Status' },
                      { $ref: '#/components/schemas/ParentStatus' },
                    ],
                  },
                },
              },
            },
            '404': errorResponse('Unknown id'),
            '503': errorResponse('Status store unavailable', { retryAfter: true }),
            ...commonErrors,
          },
        },
      },
      '/api/v1/dead-letters/{channel}': {
        get: {
          summary: "One page of a channel's dead letters, oldest first per partition (admin keys only)",
          parameters: [
            channelParameter,
            {
              name: 'class',
              in: 'query',
              required: false,
              schema: { type: 'string', enum: [...errorClasses] },
            },
            { name: 'since', in: 'query', required: false, schema: { type: 'string', format: 'date-time' } },
            { name: 'until', in: 'query', required: false, schema: { type: 'string', format: 'date-time' } },
            { name: 'limit', in: 'query', required: false, schema: json(pageSize, 'input') },
            {
              name: 'cursor',
              in: 'query',
              required: false,
              schema: { type: 'string' },
              description: 'nextCursor of the previous page',
            },
          ],
          responses: {
            '200': {
              description: 'Up to `limit` dead letters and the cursor of the next page',
              content: { 'application/json': { schema: { $ref: '#/components/schemas/DeadLetterPage' } } },
            },
            '400': errorResponse('A bad filter, limit or cursor: details name the field'),
            '403': forbidden,
            ...commonErrors,
          },
        },
      },
      '/api/v1/dead-letters/{channel}/replay': {
        post: {
          summary:
            'Replays one page of the chosen dead letters (same id, status back to queued); admin keys only',
          parameters: [channelParameter],
          requestBody: {
            required: true,
            content: { 'application/json': { schema: { $ref: '#/components/schemas/ReplayRequest' } } },
          },
          responses: {
            '200': {
              description: 'What was replayed, and the cursor of the next page to replay',
              content: { 'application/json': { schema: { $ref: '#/components/schemas/ReplayResult' } } },
            },
            '400': errorResponse('No selection (at, class, since/until or all), or a bad field'),
            '403': forbidden,
            ...commonErrors,
          },
        },
      },
      ...config.paths,
      ...alarmEvents.paths,
      ...alarms.paths,
      ...rules.paths,
      ...channelLag.paths,
    },
  }
}
