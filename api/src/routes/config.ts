// Recipients, templates and routes: PUT/GET/DELETE /api/v1/<kind>/:name and GET /api/v1/<kind> (paged).
// Writes need an admin key and are answered after Kafka acknowledged them (acks=all) and this api read them
// back; reads take any key and answer from the stores kept in memory.
import { hostname } from 'node:os'
import {
  type FieldProblem,
  problemsOf,
  type Recipient,
  type Route,
  recipientSchema,
  routeSchema,
  type Template,
  templateSchema,
} from '@herald/shared/config-topics/schemas'
import type { ConfigTopicStore } from '@herald/shared/config-topics/store'
import type { ConfigStores } from '@herald/shared/config-topics/stores'
import { checkTemplate } from '@herald/shared/config-topics/templates'
import type { Logger } from '@herald/shared/logger'
import { type Request, type Response, Router } from 'express'
import { z } from 'zod'
import { callerOf, requireAdmin } from '../auth.ts'
import { ApiError, invalid } from '../errors.ts'

export const defaultConfigPageSize = 50
export const maxConfigPageSize = 500

/** Each kind: its path segment, the field that holds the name, and its schema. */
export const configResources = {
  recipients: { key: 'id', schema: recipientSchema, singular: 'recipient' },
  templates: { key: 'name', schema: templateSchema, singular: 'template' },
  routes: { key: 'name', schema: routeSchema, singular: 'route' },
} as const
type Kind = keyof typeof configResources

/** The route table entries of these endpoints (templates of paths → methods). */
export const configRouteTable: Record<string, string[]> = Object.fromEntries(
  Object.keys(configResources).flatMap((kind) => [
    [`/api/v1/${kind}`, ['GET']],
    [`/api/v1/${kind}/:name`, ['GET', 'PUT', 'DELETE']],
  ]),
)

/** The route template of a request path under these endpoints, if it is one. */
export function configRouteOf(path: string): string | undefined {
  const match = /^\/api\/v1\/(recipients|templates|routes)(\/[^/]+)?$/.exec(path)
  if (!match) return undefined
  return match[2] ? `/api/v1/${match[1]}/:name` : `/api/v1/${match[1]}`
}

/** `limit` and `cursor` of a paged list (the alarms list extends it with its filters). */
export const pageQuery = z.strictObject({
  limit: z.coerce
    .number({ error: 'must be a number' })
    .int('must be a whole number')
    .min(1, 'must be at least 1')
    .max(maxConfigPageSize, `at most ${maxConfigPageSize} per page; follow nextCursor for more`)
    .default(defaultConfigPageSize),
  cursor: z.string().max(2000).optional(),
})

/** A list's `nextCursor`: the last name of the page, opaque to clients. */
export const encodeCursor = (name: string) => Buffer.from(name, 'utf8').toString('base64url')
export function decodeCursor(text: string): string | undefined {
  if (!/^[\w-]+$/.test(text)) return undefined
  const name = Buffer.from(text, 'base64url').toString('utf8')
  return name.length > 0 && encodeCursor(name) === text ? name : undefined
}

function storeOf(stores: ConfigStores, kind: Kind): ConfigTopicStore<Recipient | Template | Route> {
  const store = stores[kind] as ConfigTopicStore<Recipient | Template | Route>
  if (!store.ready) {
    throw new ApiError(503, 'unavailable', `${kind} are still being loaded from Kafka; retry shortly`, {
      headers: { 'retry-after': '1' },
    })
  }
  return store
}

/**
 * Checks beyond the schema: a template compiles, a recipient's Slack destination is configured, a route
 * names known recipients and templates of the right channel.
 */
function crossCheck(
  stores: ConfigStores,
  kind: Kind,
  value: Recipient | Template | Route,
  slackDestinations: readonly string[],
): FieldProblem[] {
  if (kind === 'templates') return checkTemplate(value as Template)
  if (kind === 'recipients') {
    const slack = (value as Recipient).slack
    if (slack === undefined || slackDestinations.includes(slack)) return []
    const known = slackDestinations.length > 0 ? slackDestinations.join(', ') : 'none'
    return [{ field: 'slack', reason: `unknown Slack destination "${slack}" (configured: ${known})` }]
  }
  if (kind !== 'routes') return []
  const route = value as Route
  const problems: FieldProblem[] = []
  route.recipients.forEach((id, i) => {
    if (!stores.recipients.has(id))
      problems.push({ field: `recipients.${i}`, reason: `no recipient "${id}"` })
  })
  const choice = route.template
  const named = typeof choice === 'string' ? [['template', choice, undefined] as const] : []
  const mapped =
    choice && typeof choice === 'object'
      ? Object.entries(choice).map(([channel, name]) => [`template.${channel}`, name, channel] as const)
      : []
  for (const [field, name, channel] of [...named, ...mapped]) {
    const template = stores.templates.get(name)
    if (!template) problems.push({ field, reason: `no template "${name}"` })
    else if (channel !== undefined && template.channel !== channel) {
      problems.push({ field, reason: `template "${name}" is for ${template.channel}, not ${channel}` })
    }
  }
  return problems
}

/** What still names `name` (recipients and templates are named by routes). */
function referencesTo(stores: ConfigStores, kind: Kind, name: string): string[] {
  if (kind === 'routes') return []
  return stores.routes
    .entries()
    .filter(([, route]) =>
      kind === 'recipients'
        ? route.recipients.includes(name)
        : typeof route.template === 'string'
          ? route.template === name
          : Object.values(route.template ?? {}).includes(name),
    )
    .map(([routeName]) => routeName)
}

export function configRoutes(
  stores: ConfigStores,
  options: {
    anyApiKeys: boolean
    logger: Logger
    writeTimeoutMs: number
    /** Names of the configured Slack destinations (SLACK_WEBHOOKS keys, `default`). */
    slackDestinations: readonly string[]
  },
): Router {
  const router = Router()
  const host = hostname()
  const admin = requireAdmin(options.anyApiKeys, 'changing recipients, templates and routes')

  async function write(work: () => Promise<unknown>, kind: Kind, name: string): Promise<void> {
    try {
      await work()
    } catch (error) {
      if (error instanceof ApiError) throw error
      options.logger.warn({ err: error, kind, name }, 'configuration write failed')
      throw new ApiError(
        503,
        'unavailable',
        `the ${configResources[kind].singular} could not be confirmed by Kafka; retry (the write is idempotent)`,
        {
          headers: { 'retry-after': String(Math.max(1, Math.ceil(options.writeTimeoutMs / 1000))) },
          cause: error,
        },
      )
    }
  }

  for (const kind of Object.keys(configResources) as Kind[]) {
    const { key, schema, singular } = configResources[kind]

    router.get(`/${kind}`, (req: Request, res: Response) => {
      const store = storeOf(stores, kind)
      const query = pageQuery.safeParse(req.query)
      if (!query.success) throw invalid(problemsOf(query.error))
      const after = query.data.cursor === undefined ? undefined : decodeCursor(query.data.cursor)
      if (query.data.cursor !== undefined && after === undefined) {
        throw invalid([{ field: 'cursor', reason: 'is not a nextCursor this api returned' }])
      }
      const page = store.page({ limit: query.data.limit, ...(after !== undefined ? { after } : {}) })
      res.json({ [kind]: page.items, nextCursor: page.next === undefined ? null : encodeCursor(page.next) })
    })

    router.get(`/${kind}/:name`, (req: Request, res: Response) => {
      const name = String(req.params.name)
      const value = storeOf(stores, kind).get(name)
      if (value === undefined) throw new ApiError(404, 'not_found', `no ${singular} "${name}"`)
      res.json(value)
    })

    router.put(`/${kind}/:name`, admin, async (req: Request, res: Response) => {
      const store = storeOf(stores, kind)
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
      const given = (body as Record<string, unknown>)[key]
      if (given !== undefined && given !== name) {
        throw invalid([
          { field: key, reason: `must match the path (${JSON.stringify(name)}) or be left out` },
        ])
      }
      const parsed = schema.safeParse({ ...body, [key]: name })
      if (!parsed.success) throw invalid(problemsOf(parsed.error))
      const problems = crossCheck(stores, kind, parsed.data, options.slackDestinations)
      if (problems.length > 0) throw invalid(problems)
      let created = false
      await write(
        async () => {
          created = (await store.put(name, parsed.data, { user: callerOf(req).name, source: 'api', host }))
            .created
        },
        kind,
        name,
      )
      res.status(created ? 201 : 200).json(parsed.data)
    })

    router.delete(`/${kind}/:name`, admin, async (req: Request, res: Response) => {
      const store = storeOf(stores, kind)
      const name = String(req.params.name)
      if (!store.has(name)) throw new ApiError(404, 'not_found', `no ${singular} "${name}"`)
      const users = referencesTo(stores, kind, name)
      if (users.length > 0) {
        throw new ApiError(
          409,
          'conflict',
          `${singular} "${name}" is named by route(s) ${users.join(', ')}`,
          {
            details: users.map((route) => ({ field: 'route', reason: route })),
          },
        )
      }
      await write(() => store.delete(name, { user: callerOf(req).name, source: 'api', host }), kind, name)
      res.status(204).end()
    })
  }
  return router
}
