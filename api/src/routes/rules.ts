// Threshold rules (issue 16): PUT/GET/DELETE /api/v1/rules/:name and GET /api/v1/rules (paged, by source).
//
// A rule is a record of the compacted rules topic keyed by its name (`<KEY_PREFIX>.rules`, a tombstone
// deletes it), which the rules service evaluates. Writes need an admin key, carry the audit headers and are
// answered once Kafka acknowledged them (acks=all) and this api read them back; reads take any key. A rule
// is shown with what became of it: the activation and effective state of its alarm (alarm name = rule
// name), read from the alarm topics this api follows anyway.
import { hostname } from 'node:os'
import { activationSchema } from '@herald/shared/alarms/schemas'
import { type AlarmStores, alarmStoresReady } from '@herald/shared/alarms/stores'
import { problemsOf } from '@herald/shared/config-topics/schemas'
import type { ConfigTopicStore } from '@herald/shared/config-topics/store'
import type { Logger } from '@herald/shared/logger'
import {
  queryFailingAlarmName,
  type Rule,
  ruleName,
  ruleSchema,
  ruleSources,
} from '@herald/shared/rules/schemas'
import { type Request, type Response, Router } from 'express'
import { z } from 'zod'
import { callerOf, requireAdmin } from '../auth.ts'
import { ApiError, invalid } from '../errors.ts'
import { auditSchema, effectiveViewSchema } from './alarms.ts'
import { decodeCursor, encodeCursor, pageQuery } from './config.ts'

export const rulesPath = '/api/v1/rules'

/** The route table entries of these endpoints (templates of paths → methods). */
export const ruleRouteTable: Record<string, string[]> = {
  [rulesPath]: ['GET'],
  [`${rulesPath}/:name`]: ['GET', 'PUT', 'DELETE'],
}

/** The route template of a request path under these endpoints, if it is one. */
export function ruleRouteOf(path: string): string | undefined {
  const match = new RegExp(`^${rulesPath}(/[^/]+)?$`).exec(path)
  if (!match) return undefined
  return match[1] === undefined ? rulesPath : `${rulesPath}/:name`
}

/** One rule: GET /rules/:name, and each item of the list. */
export const ruleViewSchema = z.object({
  name: z.string(),
  rule: ruleSchema,
  audit: auditSchema
    .nullable()
    .describe("Who wrote the rule: its record's audit headers (herald-user, herald-source, herald-host)"),
  alarm: z
    .object({
      activation: activationSchema
        .nullable()
        .describe("The activation of the rule's alarm (set by the rules service); null while it passes"),
      effective: effectiveViewSchema
        .nullable()
        .describe('What the alarms processor published for the alarm; null until it has seen the alarm'),
      queryFailing: z
        .boolean()
        .describe('The alarm herald.rules.<name>.query-failing is active: the query keeps failing'),
    })
    .nullable()
    .describe(
      "The rule's alarm (named after the rule); null while this api is still reading the alarm topics",
    ),
})
export type RuleView = z.infer<typeof ruleViewSchema>

const listQuery = pageQuery.extend({
  source: z.enum(ruleSources, { error: `must be one of ${ruleSources.join(', ')}` }).optional(),
})

function ready(store: ConfigTopicStore<Rule>): ConfigTopicStore<Rule> {
  if (!store.ready) {
    throw new ApiError(503, 'unavailable', 'rules are still being loaded from Kafka; retry shortly', {
      headers: { 'retry-after': '1' },
    })
  }
  return store
}

function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  const parsed = schema.safeParse(body ?? {})
  if (!parsed.success) throw invalid(problemsOf(parsed.error))
  return parsed.data
}

export function ruleRoutes(
  store: ConfigTopicStore<Rule>,
  options: {
    anyApiKeys: boolean
    logger: Logger
    writeTimeoutMs: number
    /** The alarm topics, for the state of each rule's alarm; without them `alarm` is null. */
    alarms?: AlarmStores
  },
): Router {
  const router = Router()
  const host = hostname()
  const admin = requireAdmin(options.anyApiKeys, 'changing rules')
  const auditOf = (req: Request) => ({ user: callerOf(req).name, source: 'api', host })

  async function write<R>(work: () => Promise<R>, name: string, what: string): Promise<R> {
    try {
      return await work()
    } catch (error) {
      if (error instanceof ApiError) throw error
      options.logger.warn({ err: error, rule: name, what }, 'rule write failed')
      throw new ApiError(
        503,
        'unavailable',
        `the ${what} of rule "${name}" could not be confirmed by Kafka; retry (the write is idempotent)`,
        {
          headers: { 'retry-after': String(Math.max(1, Math.ceil(options.writeTimeoutMs / 1000))) },
          cause: error,
        },
      )
    }
  }

  function alarmOf(name: string): RuleView['alarm'] {
    const alarms = options.alarms
    // A partly read topic would show an alarm as passing that is not: nothing rather than a guess.
    if (alarms === undefined || !alarmStoresReady(alarms)) return null
    const effective = alarms.effective.get(name)
    let shown: z.infer<typeof effectiveViewSchema> | null = null
    if (effective !== undefined) {
      const { memory: _processorsOwn, ...rest } = effective
      shown = rest
    }
    return {
      activation: alarms.activations.get(name) ?? null,
      effective: shown,
      queryFailing: alarms.activations.has(queryFailingAlarmName(name)),
    }
  }

  function viewOf(name: string, rule: Rule): RuleView {
    return { name, rule, audit: store.auditOf(name) ?? null, alarm: alarmOf(name) }
  }

  // A name that cannot be a rule's: 400 naming it, rather than "no rule" for something never valid.
  router.param('name', (_req, _res, next, value: string) => {
    const parsed = ruleName.safeParse(value)
    next(
      parsed.success
        ? undefined
        : invalid([{ field: 'name', reason: parsed.error.issues[0]?.message ?? 'is not a rule name' }]),
    )
  })

  router.get('/rules', (req: Request, res: Response) => {
    ready(store)
    const query = listQuery.safeParse(req.query)
    if (!query.success) {
      throw invalid(
        problemsOf(query.error).map((p) => (p.field === '(body)' ? { ...p, field: '(query)' } : p)),
      )
    }
    const after = query.data.cursor === undefined ? undefined : decodeCursor(query.data.cursor)
    if (query.data.cursor !== undefined && after === undefined) {
      throw invalid([{ field: 'cursor', reason: 'is not a nextCursor this api returned' }])
    }
    const { limit, source } = query.data
    const page: RuleView[] = []
    let more = false
    for (const [name, rule] of store.entries()) {
      if (after !== undefined && name <= after) continue
      if (source !== undefined && rule.source !== source) continue
      if (page.length === limit) {
        more = true
        break
      }
      page.push(viewOf(name, rule))
    }
    const last = page.at(-1)?.name
    res.json({ rules: page, nextCursor: more && last !== undefined ? encodeCursor(last) : null })
  })

  router.get('/rules/:name', (req: Request, res: Response) => {
    const name = String(req.params.name)
    const rule = ready(store).get(name)
    if (rule === undefined) throw new ApiError(404, 'not_found', `no rule "${name}"`)
    res.json(viewOf(name, rule))
  })

  router.put('/rules/:name', admin, async (req: Request, res: Response) => {
    ready(store)
    const name = String(req.params.name)
    if (!req.is('application/json')) {
      throw new ApiError(
        415,
        'unsupported_media_type',
        'send the body as JSON with Content-Type: application/json',
      )
    }
    const body: unknown = req.body
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw invalid([{ field: '(body)', reason: 'must be a JSON object' }])
    }
    const given = (body as Record<string, unknown>).name
    if (given !== undefined && given !== name) {
      throw invalid([
        { field: 'name', reason: `must match the path (${JSON.stringify(name)}) or be left out` },
      ])
    }
    const rule = parseBody(ruleSchema, { ...body, name })
    const { created } = await write(() => store.put(name, rule, auditOf(req)), name, 'write')
    res.status(created ? 201 : 200).json(rule)
  })

  router.delete('/rules/:name', admin, async (req: Request, res: Response) => {
    const name = String(req.params.name)
    if (!ready(store).has(name)) throw new ApiError(404, 'not_found', `no rule "${name}"`)
    await write(() => store.delete(name, auditOf(req)), name, 'deletion')
    res.status(204).end()
  })

  return router
}
