// The OpenAPI paths and schemas of /api/v1/alarms (merged by openapi.ts), built from the same action table
// and zod schemas as the routes.
import { effectiveStates, registrationSchema } from '@herald/shared/alarms/schemas'
import type { z } from 'zod'
import {
  type AlarmAction,
  alarmActions,
  alarmsPath,
  alarmViewSchema,
  alarmWriteSchema,
  emptyRequestSchema,
} from './routes/alarms.ts'
import { defaultConfigPageSize, maxConfigPageSize } from './routes/config.ts'

interface Helpers {
  json: (schema: z.ZodType, io?: 'input' | 'output') => Record<string, unknown>
  errorResponse: (description: string, options?: { retryAfter?: boolean }) => unknown
  commonErrors: Record<string, unknown>
  forbidden: unknown
}

/** Component names of the request bodies; the actions without a name take none (`{}` at most). */
const requestNames: Record<AlarmAction, string | undefined> = {
  activate: 'AlarmActivateRequest',
  clear: undefined,
  ack: undefined,
  shelve: 'AlarmShelveRequest',
  unshelve: undefined,
  disable: 'AlarmDisableRequest',
  enable: undefined,
}

export function alarmsOpenApi(h: Helpers) {
  const ref = (name: string) => ({ 'application/json': { schema: { $ref: `#/components/schemas/${name}` } } })
  const schemas: Record<string, unknown> = {
    AlarmRegistration: h.json(registrationSchema, 'input'),
    Alarm: h.json(alarmViewSchema),
    AlarmPage: {
      type: 'object',
      properties: {
        alarms: { type: 'array', items: { $ref: '#/components/schemas/Alarm' } },
        nextCursor: {
          type: ['string', 'null'],
          description: 'Pass as `cursor` for the next page; null on the last page',
        },
      },
      required: ['alarms', 'nextCursor'],
    },
    AlarmWrite: {
      ...h.json(alarmWriteSchema),
      description: 'The record written to an alarm topic (`value` null for a tombstone)',
    },
  }
  const unavailable = h.errorResponse('Still loading from Kafka, or the write was not confirmed: retry', {
    retryAfter: true,
  })
  const nameParameter = {
    name: 'name',
    in: 'path',
    required: true,
    schema: { type: 'string', pattern: '^[A-Za-z0-9][\\w.@-]{0,127}$' },
    description: "The alarm's name",
  }
  const badRequest = h.errorResponse(
    'A path name that is not an alarm name, or an invalid body: details name each field and reason',
  )
  const paths: Record<string, unknown> = {
    [alarmsPath]: {
      get: {
        summary:
          'One page of alarms by name, each with its registration, activation, overrides and effective state',
        parameters: [
          {
            name: 'state',
            in: 'query',
            required: false,
            schema: { type: 'string' },
            description: `Effective states, comma-separated (${effectiveStates.join(', ')}); an alarm the processor has not published a state for matches none`,
          },
          {
            name: 'label',
            in: 'query',
            required: false,
            style: 'form',
            explode: true,
            schema: { type: 'array', items: { type: 'string', pattern: '^[^=]+=.*$' } },
            description: 'key=value, repeatable: only alarms registered with every such label',
          },
          {
            name: 'limit',
            in: 'query',
            required: false,
            schema: {
              type: 'integer',
              minimum: 1,
              maximum: maxConfigPageSize,
              default: defaultConfigPageSize,
            },
          },
          { name: 'cursor', in: 'query', required: false, schema: { type: 'string' } },
        ],
        responses: {
          '200': {
            description: 'Up to `limit` alarms and the cursor of the next page',
            content: ref('AlarmPage'),
          },
          '400': h.errorResponse('A bad state, label, limit or cursor: details name the field'),
          '503': unavailable,
          ...h.commonErrors,
        },
      },
    },
    [`${alarmsPath}/{name}`]: {
      get: {
        summary: 'One alarm: its registration, activation, overrides and effective state',
        parameters: [nameParameter],
        responses: {
          '200': { description: 'The alarm', content: ref('Alarm') },
          '400': badRequest,
          '404': h.errorResponse('No such alarm'),
          '503': unavailable,
          ...h.commonErrors,
        },
      },
      put: {
        summary:
          'Registers an alarm or replaces its registration (admin keys only); answered once Kafka acknowledged it',
        description:
          '`name` in the body may be left out (the path gives it). `maskedBy` may not name the alarm itself, nor ' +
          'make a cycle through the registered alarms.',
        parameters: [nameParameter],
        requestBody: { required: true, content: ref('AlarmRegistration') },
        responses: {
          '200': { description: 'Replaced (defaults applied)', content: ref('AlarmRegistration') },
          '201': { description: 'Registered (defaults applied)', content: ref('AlarmRegistration') },
          '400': h.errorResponse('Invalid body, or a mask cycle: details name each field and reason'),
          '403': h.forbidden,
          '415': h.errorResponse('Body is not JSON'),
          '503': unavailable,
          ...h.commonErrors,
        },
      },
      delete: {
        summary: 'Unregisters an alarm (a tombstone; admin keys only)',
        parameters: [nameParameter],
        responses: {
          '204': { description: 'Unregistered' },
          '400': badRequest,
          '403': h.forbidden,
          '404': h.errorResponse('No such alarm'),
          '503': unavailable,
          ...h.commonErrors,
        },
      },
    },
  }
  for (const action of Object.keys(alarmActions) as AlarmAction[]) {
    const spec = alarmActions[action]
    const named = requestNames[action]
    if (named !== undefined) schemas[named] = h.json(spec.body, 'input')
    const body =
      named === undefined
        ? { 'application/json': { schema: h.json(emptyRequestSchema, 'input') } }
        : ref(named)
    paths[`${alarmsPath}/{name}/${action}`] = {
      post: {
        summary: `${spec.summary} (admin keys only)`,
        description: `Writes ${spec.writes}. Answered 202 once Kafka acknowledged the record; the alarms processor applies it.`,
        parameters: [nameParameter],
        requestBody: { required: named !== undefined, content: body },
        responses: {
          '202': { description: 'Written: the record', content: ref('AlarmWrite') },
          '400': badRequest,
          '403': h.forbidden,
          '404': h.errorResponse('No such alarm'),
          ...('conflict' in spec ? { '409': h.errorResponse(`The alarm ${spec.conflict}`) } : {}),
          '415': h.errorResponse('Body is not JSON (send {} to an action that takes no body)'),
          '503': unavailable,
          ...h.commonErrors,
        },
      },
    }
  }
  return { schemas, paths }
}
