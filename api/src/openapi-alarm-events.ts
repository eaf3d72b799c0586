// The OpenAPI path and schemas of POST /api/v1/alarm-events (merged by openapi.ts).
import { alarmEventSchema, wrappedAlarmEventKey } from '@herald/shared/alarm-events'
import type { z } from 'zod'
import { alarmEventsPath } from './routes/alarm-events.ts'

interface Helpers {
  json: (schema: z.ZodType, io?: 'input' | 'output') => Record<string, unknown>
  errorResponse: (description: string, options?: { retryAfter?: boolean }) => unknown
  commonErrors: Record<string, unknown>
}

export function alarmEventsOpenApi(h: Helpers, options: { maxBatch: number }) {
  const event = { $ref: '#/components/schemas/AlarmEvent' }
  const wrapped = { $ref: '#/components/schemas/WrappedAlarmEvent' }
  const one = { oneOf: [event, wrapped] }
  const schemas = {
    AlarmEvent: {
      ...h.json(alarmEventSchema, 'input'),
      description:
        "monasca's alarm-transitioned event as it is (its other fields, e.g. alarmDescription, metrics, " +
        "subAlarms, are kept), plus Herald's kind, labels, value and eventId",
    },
    WrappedAlarmEvent: {
      type: 'object',
      description: "monasca's wrapped form",
      properties: { [wrappedAlarmEventKey]: event },
      required: [wrappedAlarmEventKey],
      additionalProperties: false,
    },
    AlarmEventAccepted: {
      type: 'object',
      properties: { eventId: { type: 'string' } },
      required: ['eventId'],
      additionalProperties: false,
    },
    AlarmEventsAccepted: {
      type: 'object',
      properties: { eventIds: { type: 'array', items: { type: 'string' }, description: 'In request order' } },
      required: ['eventIds'],
      additionalProperties: false,
    },
  }
  const paths = {
    [alarmEventsPath]: {
      post: {
        summary: `Accept one alarm event, or up to ${options.maxBatch} in an array (any API key)`,
        description:
          'Written to the alarm-events topic (acks=all), keyed by alarm name, and answered once Kafka ' +
          'acknowledged every event. A batch is all or nothing: one invalid item refuses the request, with ' +
          'details naming the item as `[index].field`. An event without eventId gets one derived from it, ' +
          'so posting the same event again gives the same id.',
        requestBody: {
          required: true,
          content: {
            'application/json': {
              schema: {
                oneOf: [one, { type: 'array', minItems: 1, maxItems: options.maxBatch, items: one }],
              },
            },
          },
        },
        responses: {
          '202': {
            description: 'On the topic: `eventId` for one event, `eventIds` in order for an array',
            content: {
              'application/json': {
                schema: {
                  oneOf: [
                    { $ref: '#/components/schemas/AlarmEventAccepted' },
                    { $ref: '#/components/schemas/AlarmEventsAccepted' },
                  ],
                },
              },
            },
          },
          '400': h.errorResponse('Invalid body: details name each field (and item) and reason'),
          '413': h.errorResponse('Body too large'),
          '415': h.errorResponse('Body is not JSON'),
          '503': h.errorResponse('Outcome unknown: post the events again (they keep their eventIds)', {
            retryAfter: true,
          }),
          ...h.commonErrors,
        },
      },
    },
  }
  return { schemas, paths }
}
