// The OpenAPI paths and schemas of /api/v1/rules (merged by openapi.ts), built from the same zod schemas as
// the routes.
import { maxRuleNameLength, ruleSchema, ruleSources } from '@herald/shared/rules/schemas'
import type { z } from 'zod'
import { defaultConfigPageSize, maxConfigPageSize } from './routes/config.ts'
import { rulesPath, ruleViewSchema } from './routes/rules.ts'

interface Helpers {
  json: (schema: z.ZodType, io?: 'input' | 'output') => Record<string, unknown>
  errorResponse: (description: string, options?: { retryAfter?: boolean }) => unknown
  commonErrors: Record<string, unknown>
  forbidden: unknown
}

export function rulesOpenApi(h: Helpers) {
  const ref = (name: string) => ({ 'application/json': { schema: { $ref: `#/components/schemas/${name}` } } })
  const request = h.json(ruleSchema, 'input')
  const schemas: Record<string, unknown> = {
    // The path gives the name: a body may leave it out (if it has one, it must be the path's).
    RuleRequest: {
      ...request,
      required: ((request.required as string[] | undefined) ?? []).filter((field) => field !== 'name'),
    },
    Rule: { ...h.json(ruleSchema), description: 'A rule as kept (defaults applied)' },
    RuleView: h.json(ruleViewSchema),
    RulePage: {
      type: 'object',
      properties: {
        rules: { type: 'array', items: { $ref: '#/components/schemas/RuleView' } },
        nextCursor: {
          type: ['string', 'null'],
          description: 'Pass as `cursor` for the next page; null on the last page',
        },
      },
      required: ['rules', 'nextCursor'],
    },
  }
  const unavailable = h.errorResponse('Still loading from Kafka, or the write was not confirmed: retry', {
    retryAfter: true,
  })
  const nameParameter = {
    name: 'name',
    in: 'path',
    required: true,
    schema: { type: 'string', pattern: `^[A-Za-z0-9][\\w.@-]{0,${maxRuleNameLength - 1}}$` },
    description: "The rule's name, which is also its alarm's; not starting with herald.",
  }
  const badRequest = h.errorResponse('A path name that is not a rule name: details name the field')
  const paths: Record<string, unknown> = {
    [rulesPath]: {
      get: {
        summary: 'One page of rules by name, each with the state of its alarm',
        parameters: [
          {
            name: 'source',
            in: 'query',
            required: false,
            schema: { type: 'string', enum: [...ruleSources] },
            description: 'Only the rules queried from this source',
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
            description: 'Up to `limit` rules and the cursor of the next page',
            content: ref('RulePage'),
          },
          '400': h.errorResponse('A bad source, limit or cursor: details name the field'),
          '503': unavailable,
          ...h.commonErrors,
        },
      },
    },
    [`${rulesPath}/{name}`]: {
      get: {
        summary: 'One rule, who wrote it, and the state of its alarm',
        parameters: [nameParameter],
        responses: {
          '200': { description: 'The rule', content: ref('RuleView') },
          '400': badRequest,
          '404': h.errorResponse('No such rule'),
          '503': unavailable,
          ...h.commonErrors,
        },
      },
      put: {
        summary:
          'Creates or replaces a rule (admin keys only); answered once Kafka acknowledged it, the rules service evaluates it',
        description:
          '`name` in the body may be left out (the path gives it). At least one of warn and critical; with both, ' +
          'critical is at or beyond warn in the direction of `comparison`.',
        parameters: [nameParameter],
        requestBody: { required: true, content: ref('RuleRequest') },
        responses: {
          '200': { description: 'Replaced (defaults applied)', content: ref('Rule') },
          '201': { description: 'Created (defaults applied)', content: ref('Rule') },
          '400': h.errorResponse('Invalid body: details name each field and reason'),
          '403': h.forbidden,
          '415': h.errorResponse('Body is not JSON'),
          '503': unavailable,
          ...h.commonErrors,
        },
      },
      delete: {
        summary: 'Deletes a rule (a tombstone; admin keys only)',
        parameters: [nameParameter],
        responses: {
          '204': { description: 'Deleted' },
          '400': badRequest,
          '403': h.forbidden,
          '404': h.errorResponse('No such rule'),
          '503': unavailable,
          ...h.commonErrors,
        },
      },
    },
  }
  return { schemas, paths }
}
