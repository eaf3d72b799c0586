// The OpenAPI paths and schemas of /api/v1/recipients, /templates and /routes (merged by openapi.ts).

import type { z } from 'zod'
import { configResources, defaultConfigPageSize, maxConfigPageSize } from './routes/config.ts'

interface Helpers {
  json: (schema: z.ZodType, io?: 'input' | 'output') => Record<string, unknown>
  errorResponse: (description: string, options?: { retryAfter?: boolean }) => unknown
  commonErrors: Record<string, unknown>
  forbidden: unknown
}

const titles = { recipients: 'Recipient', templates: 'Template', routes: 'Route' } as const

export function configOpenApi(h: Helpers) {
  const schemas: Record<string, unknown> = {}
  const paths: Record<string, unknown> = {}
  const unavailable = h.errorResponse('Still loading from Kafka, or the write was not confirmed: retry', {
    retryAfter: true,
  })
  for (const kind of Object.keys(configResources) as Array<keyof typeof configResources>) {
    const { key, schema, singular } = configResources[kind]
    const title = titles[kind]
    schemas[title] = h.json(schema, 'input')
    schemas[`${title}Page`] = {
      type: 'object',
      properties: {
        [kind]: { type: 'array', items: { $ref: `#/components/schemas/${title}` } },
        nextCursor: {
          type: ['string', 'null'],
          description: 'Pass as `cursor` for the next page; null on the last page',
        },
      },
      required: [kind, 'nextCursor'],
    }
    const ref = { 'application/json': { schema: { $ref: `#/components/schemas/${title}` } } }
    const nameParameter = {
      name: 'name',
      in: 'path',
      required: true,
      schema: { type: 'string', pattern: '^[A-Za-z0-9][\\w.@-]{0,127}$' },
      description: `The ${singular}'s ${key}`,
    }
    paths[`/api/v1/${kind}`] = {
      get: {
        summary: `One page of ${kind}, by ${key}`,
        parameters: [
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
            description: `Up to \`limit\` ${kind} and the cursor of the next page`,
            content: { 'application/json': { schema: { $ref: `#/components/schemas/${title}Page` } } },
          },
          '400': h.errorResponse('A bad limit or cursor'),
          '503': unavailable,
          ...h.commonErrors,
        },
      },
    }
    paths[`/api/v1/${kind}/{name}`] = {
      get: {
        summary: `One ${singular}`,
        parameters: [nameParameter],
        responses: {
          '200': { description: `The ${singular}`, content: ref },
          '404': h.errorResponse(`No such ${singular}`),
          '503': unavailable,
          ...h.commonErrors,
        },
      },
      put: {
        summary: `Creates or replaces a ${singular} (admin keys only); answered once Kafka acknowledged it`,
        parameters: [nameParameter],
        requestBody: { required: true, content: ref },
        responses: {
          '200': { description: 'Replaced', content: ref },
          '201': { description: 'Created', content: ref },
          '400': h.errorResponse(
            kind === 'routes'
              ? 'Invalid body, or it names an unknown recipient or template: details name each field'
              : kind === 'templates'
                ? 'Invalid body, or a template that does not compile: details name the field and reason'
                : 'Invalid body: details name each field and reason',
          ),
          '403': h.forbidden,
          '415': h.errorResponse('Body is not JSON'),
          '503': unavailable,
          ...h.commonErrors,
        },
      },
      delete: {
        summary: `Deletes a ${singular} (a tombstone; admin keys only)`,
        parameters: [nameParameter],
        responses: {
          '204': { description: 'Deleted' },
          '403': h.forbidden,
          '404': h.errorResponse(`No such ${singular}`),
          ...(kind === 'routes' ? {} : { '409': h.errorResponse('A route still names it') }),
          '503': unavailable,
          ...h.commonErrors,
        },
      },
    }
  }
  return { schemas, paths }
}
