// Alarms (issue 15, seed 004): registrations (PUT/GET/DELETE /api/v1/alarms/:name), the list with effective
// states (GET /api/v1/alarms), and the operators' actions (POST /api/v1/alarms/:name/<action>).
//
// Everything is a record on an alarm topic: a registration keyed by name, an activation keyed by name (a
// tombstone clears it), an override keyed `<name>/<kind>` (a tombstone removes it). Writes need an admin key,
// carry the audit headers and are answered once Kafka acknowledged them (acks=all) and this api read them
// back. An action is answered 202 with the record written: the alarms processor applies it, and the
// effective state it publishes follows shortly after.
import { hostname } from 'node:os'
import {
  type Activation,
  activationSchema,
  alarmName,
  checkShelve,
  disabledOverrideSchema,
  type Effective,
  effectiveSchema,
  effectiveStates,
  latchedOverrideSchema,
  maskedOverrideSchema,
  type OverrideKind,
  offdelayedOverrideSchema,
  ondelayedOverrideSchema,
  overrideKey,
  type Registration,
  registrationSchema,
  type ShelvedOverride,
  shelvedOverrideSchema,
} from '@herald/shared/alarms/schemas'
import { type AlarmStores, alarmStoresReady, overridesOf } from '@herald/shared/alarms/stores'
import { type FieldProblem, problemsOf } from '@herald/shared/config-topics/schemas'
import type { ConfigTopicStore } from '@herald/shared/config-topics/store'
import type { Logger } from '@herald/shared/logger'
import { type Request, type Response, Router } from 'express'
import { z } from 'zod'
import { callerOf, requireAdmin } from '../auth.ts'
import { ApiError, invalid } from '../errors.ts'
import { decodeCursor, encodeCursor, pageQuery } from './config.ts'

export const alarmsPath = '/api/v1/alarms'

const day = 86_400

/** POST /alarms/:name/activate: an activation; `source` is "api" and `at` is set by the api. */
export const activateRequestSchema = activationSchema
  .omit({ at: true })
  .extend({ source: activationSchema.shape.source.optional() })

/** POST /alarms/:name/shelve: for how long (`for` seconds, or `until` a time), or until it clears. */
export const shelveRequestSchema = z
  .strictObject({
    for: z
      .number({ error: 'must be a number of seconds' })
      .int('must be a whole number of seconds')
      .min(1, 'must be at least 1')
      .max(365 * day, `must be at most ${365 * day} (a year)`)
      .optional()
      .describe('How long the shelve lasts, in seconds from now'),
    until: z
      .union(
        [
          z
            .number()
            .int('must be a whole number of milliseconds')
            .min(100_000_000_000, 'must be milliseconds since the epoch (this looks like seconds)')
            .max(Number.MAX_SAFE_INTEGER, 'must be milliseconds since the epoch'),
          z.iso.datetime({ offset: true, error: 'must be an ISO 8601 date-time, e.g. 2026-11-25T10:00:00Z' }),
        ],
        { error: 'must be an ISO 8601 date-time or milliseconds since the epoch' },
      )
      .optional()
      .describe('When the shelve ends: an ISO 8601 date-time or milliseconds since the epoch'),
    oneshot: shelvedOverrideSchema.shape.oneshot,
    reason: shelvedOverrideSchema.shape.reason,
  })
  .superRefine((s, ctx) => {
    if (s.for !== undefined && s.until !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['until'], message: 'give for or until, not both' })
    } else if (s.for === undefined && s.until === undefined && s.oneshot !== true) {
      ctx.addIssue({
        code: 'custom',
        path: ['for'],
        message:
          'is required (or until, or oneshot: true): a shelve ends at a time, or when the alarm clears',
      })
    }
  })

/** POST /alarms/:name/disable. */
export const disableRequestSchema = z.strictObject({ reason: disabledOverrideSchema.shape.reason })

/** The body of the actions that take none: nothing, or `{}`. */
export const emptyRequestSchema = z.strictObject({})

/**
 * The actions, in the order of the API: what each takes and writes. The route table, the handlers and the
 * OpenAPI paths are all built from this.
 */
export const alarmActions = {
  activate: {
    body: activateRequestSchema,
    summary: 'Activates the alarm (or updates its activation)',
    writes:
      'an activation keyed by name: `source` defaults to "api"; `at` is kept when the alarm is already active, else now',
  },
  clear: {
    body: emptyRequestSchema,
    summary: 'Clears the alarm',
    writes: 'a tombstone of its activation',
    conflict: 'is not active: nothing to clear',
  },
  ack: {
    body: emptyRequestSchema,
    summary: 'Acknowledges a latched alarm',
    writes: 'a tombstone of `<name>/latched`',
    conflict: 'is not latched: nothing to acknowledge',
  },
  shelve: {
    body: shelveRequestSchema,
    summary: 'Shelves the alarm: no notifications until the shelve ends',
    writes:
      'the override `<name>/shelved` `{kind: "shelved", until?, oneshot?, reason, user}` (user = the API key name); ' +
      "refused (400 naming the field) beyond the alarm's maxShelveSeconds, and always when it is 0",
  },
  unshelve: {
    body: emptyRequestSchema,
    summary: 'Ends a shelve',
    writes: 'a tombstone of `<name>/shelved`',
    conflict: 'is not shelved: nothing to unshelve',
  },
  disable: {
    body: disableRequestSchema,
    summary: 'Disables the alarm: no notifications until it is enabled',
    writes: 'the override `<name>/disabled` `{kind: "disabled", reason, user}` (user = the API key name)',
  },
  enable: {
    body: emptyRequestSchema,
    summary: 'Enables a disabled alarm',
    writes: 'a tombstone of `<name>/disabled`',
    conflict: 'is not disabled: nothing to enable',
  },
} as const
export type AlarmAction = keyof typeof alarmActions
const actionNames = Object.keys(alarmActions) as AlarmAction[]

/** The route table entries of these endpoints (templates of paths → methods). */
export const alarmRouteTable: Record<string, string[]> = {
  [alarmsPath]: ['GET'],
  [`${alarmsPath}/:name`]: ['GET', 'PUT', 'DELETE'],
  ...Object.fromEntries(actionNames.map((action) => [`${alarmsPath}/:name/${action}`, ['POST']])),
}

const routePattern = new RegExp(`^${alarmsPath}(/[^/]+)?(?:/(${actionNames.join('|')}))?$`)

/** The route template of a request path under these endpoints, if it is one. */
export function alarmRouteOf(path: string): string | undefined {
  const match = routePattern.exec(path)
  if (!match) return undefined
  if (match[1] === undefined) return match[2] === undefined ? alarmsPath : undefined
  return match[2] === undefined ? `${alarmsPath}/:name` : `${alarmsPath}/:name/${match[2]}`
}

/** The effective state as the api shows it: without the processor's memory. */
export const effectiveViewSchema = effectiveSchema.omit({ memory: true })

export const auditSchema = z.object({
  user: z.string(),
  source: z.string(),
  host: z.string(),
})

/** One alarm: GET /alarms/:name, and each item of the list. */
export const alarmViewSchema = z.object({
  name: z.string(),
  registration: registrationSchema,
  activation: activationSchema.nullable().describe('The activation on the topic; null when cleared'),
  overrides: z
    .object({
      disabled: disabledOverrideSchema.optional(),
      masked: maskedOverrideSchema.optional(),
      ondelayed: ondelayedOverrideSchema.optional(),
      shelved: shelvedOverrideSchema.optional(),
      offdelayed: offdelayedOverrideSchema.optional(),
      latched: latchedOverrideSchema.optional(),
    })
    .describe('The overrides on the topic, by kind (an expired one stays until the processor removes it)'),
  effective: effectiveViewSchema
    .nullable()
    .describe('What the alarms processor published; null until it has seen the alarm'),
  effectiveAudit: auditSchema
    .nullable()
    .describe('The audit headers of the effective record (herald-user, herald-source, herald-host)'),
})
export type AlarmView = z.infer<typeof alarmViewSchema>

/** What an action wrote: `value` null for a tombstone. */
export const alarmWriteSchema = z.object({
  name: z.string(),
  action: z.enum(actionNames as [AlarmAction, ...AlarmAction[]]),
  topic: z.string(),
  key: z.string(),
  value: z.record(z.string(), z.unknown()).nullable(),
})
export type AlarmWrite = z.infer<typeof alarmWriteSchema>

const listQuery = pageQuery.extend({
  state: z.string().max(1000).optional(),
  label: z.union([z.string().max(2000), z.array(z.string().max(2000)).max(64)]).optional(),
})

interface ListFilter {
  states: ReadonlySet<string> | undefined
  labels: Array<[string, string]>
}

function filterOf(query: z.infer<typeof listQuery>): ListFilter {
  const problems: FieldProblem[] = []
  let states: Set<string> | undefined
  if (query.state !== undefined) {
    states = new Set(
      query.state
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    )
    for (const state of states) {
      if (!(effectiveStates as readonly string[]).includes(state)) {
        problems.push({
          field: 'state',
          reason: `unknown state "${state}" (one of ${effectiveStates.join(', ')}; several separated by commas)`,
        })
      }
    }
    if (states.size === 0) problems.push({ field: 'state', reason: 'must name at least one state' })
  }
  const labels: Array<[string, string]> = []
  const given = query.label === undefined ? [] : Array.isArray(query.label) ? query.label : [query.label]
  for (const label of given) {
    const at = label.indexOf('=')
    if (at <= 0) problems.push({ field: 'label', reason: `"${label}" must be key=value` })
    else labels.push([label.slice(0, at), label.slice(at + 1)])
  }
  if (problems.length > 0) throw invalid(problems)
  return { states, labels }
}

function matches(view: AlarmView, filter: ListFilter): boolean {
  if (filter.states && !(view.effective && filter.states.has(view.effective.state))) return false
  return filter.labels.every(([key, value]) => view.registration.labels?.[key] === value)
}

function effectiveView(effective: Effective): z.infer<typeof effectiveViewSchema> {
  const { memory: _processorsOwn, ...shown } = effective
  return shown
}

function ready(stores: AlarmStores): AlarmStores {
  if (!alarmStoresReady(stores)) {
    throw new ApiError(503, 'unavailable', 'alarms are still being loaded from Kafka; retry shortly', {
      headers: { 'retry-after': '1' },
    })
  }
  return stores
}

function viewOf(stores: AlarmStores, name: string): AlarmView | undefined {
  const registration = stores.registrations.get(name)
  if (registration === undefined) return undefined
  const effective = stores.effective.get(name)
  return {
    name,
    registration,
    activation: stores.activations.get(name) ?? null,
    overrides: overridesOf(stores, name),
    effective: effective === undefined ? null : effectiveView(effective),
    effectiveAudit: effective === undefined ? null : (stores.effective.auditOf(name) ?? null),
  }
}

/**
 * The chain of `maskedBy` parents from `registration`, if it leads back to it: a mask cycle would keep
 * every alarm on it masked by another for ever. Only registrations on the topic are followed.
 */
function maskCycle(stores: AlarmStores, registration: Registration): string[] | undefined {
  const chain = [registration.name]
  for (let parent = registration.maskedBy; parent !== undefined; ) {
    chain.push(parent)
    if (parent === registration.name) return chain
    // A cycle the new registration is not on was refused when it was made; do not loop on one anyway.
    if (chain.indexOf(parent) < chain.length - 1) return undefined
    parent = stores.registrations.get(parent)?.maskedBy
  }
  return undefined
}

function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  const parsed = schema.safeParse(body ?? {})
  if (!parsed.success) throw invalid(problemsOf(parsed.error))
  return parsed.data
}

export function alarmRoutes(
  stores: AlarmStores,
  options: {
    anyApiKeys: boolean
    logger: Logger
    writeTimeoutMs: number
    /** The clock (tests may move it); Date.now by default. */
    now?: () => number
  },
): Router {
  const router = Router()
  const host = hostname()
  const now = options.now ?? Date.now
  const admin = requireAdmin(options.anyApiKeys, 'changing alarms')
  const auditOf = (req: Request) => ({ user: callerOf(req).name, source: 'api', host })

  async function write<R>(work: () => Promise<R>, name: string, what: string): Promise<R> {
    try {
      return await work()
    } catch (error) {
      if (error instanceof ApiError) throw error
      options.logger.warn({ err: error, alarm: name, what }, 'alarm write failed')
      throw new ApiError(
        503,
        'unavailable',
        `the ${what} of alarm "${name}" could not be confirmed by Kafka; retry`,
        {
          headers: { 'retry-after': String(Math.max(1, Math.ceil(options.writeTimeoutMs / 1000))) },
          cause: error,
        },
      )
    }
  }

  function registered(name: string): Registration {
    const registration = ready(stores).registrations.get(name)
    if (registration === undefined) throw new ApiError(404, 'not_found', `no alarm "${name}"`)
    return registration
  }

  /** 409: what the action would undo is not there. */
  const nothingTo = (action: 'clear' | 'ack' | 'unshelve' | 'enable', name: string) =>
    new ApiError(409, 'conflict', `alarm "${name}" ${alarmActions[action].conflict}`)

  /** Writes `value` (null: a tombstone) to an alarm topic and answers what was written. */
  async function record(
    req: Request,
    action: AlarmAction,
    name: string,
    target: { store: ConfigTopicStore<unknown>; key: string; value: Record<string, unknown> | null },
  ): Promise<AlarmWrite> {
    const { store, key, value } = target
    await write(
      async () => {
        if (value === null) await store.delete(key, auditOf(req))
        else await store.put(key, value, auditOf(req))
      },
      name,
      action,
    )
    return { name, action, topic: store.topic, key, value }
  }

  const removeOverride = (req: Request, action: AlarmAction, name: string, kind: OverrideKind) => {
    const key = overrideKey(name, kind)
    return record(req, action, name, { store: stores.overrides, key, value: null })
  }

  const actions: Record<AlarmAction, (req: Request, name: string) => Promise<AlarmWrite>> = {
    activate: async (req, name) => {
      const body = parseBody(activateRequestSchema, req.body)
      const current = stores.activations.get(name)
      // An update of an alarm still active is the same trip: on-delays and latches count from its `at`.
      const activation: Activation = { ...body, source: body.source ?? 'api', at: current?.at ?? now() }
      return record(req, 'activate', name, { store: stores.activations, key: name, value: activation })
    },
    clear: async (req, name) => {
      parseBody(emptyRequestSchema, req.body)
      if (!stores.activations.has(name)) throw nothingTo('clear', name)
      return record(req, 'clear', name, { store: stores.activations, key: name, value: null })
    },
    ack: async (req, name) => {
      parseBody(emptyRequestSchema, req.body)
      if (overridesOf(stores, name).latched === undefined) {
        throw nothingTo('ack', name)
      }
      return removeOverride(req, 'ack', name, 'latched')
    },
    shelve: async (req, name) => {
      const body = parseBody(shelveRequestSchema, req.body)
      const at = now()
      const until =
        body.for !== undefined
          ? at + body.for * 1000
          : typeof body.until === 'string'
            ? Date.parse(body.until)
            : body.until
      const shelve: ShelvedOverride = {
        kind: 'shelved',
        ...(until !== undefined ? { until } : {}),
        ...(body.oneshot === true ? { oneshot: true } : {}),
        reason: body.reason,
        user: callerOf(req).name,
      }
      const problem = checkShelve(registered(name), shelve, at)
      if (problem) {
        // The limit is about the time asked for, whichever field asked for it.
        const field = problem.field === 'until' && body.for !== undefined ? 'for' : problem.field
        throw invalid([{ field, reason: problem.reason }])
      }
      const value = parseBody(shelvedOverrideSchema, shelve)
      const key = overrideKey(name, 'shelved')
      return record(req, 'shelve', name, { store: stores.overrides, key, value })
    },
    unshelve: async (req, name) => {
      parseBody(emptyRequestSchema, req.body)
      if (overridesOf(stores, name).shelved === undefined) {
        throw nothingTo('unshelve', name)
      }
      return removeOverride(req, 'unshelve', name, 'shelved')
    },
    disable: async (req, name) => {
      const body = parseBody(disableRequestSchema, req.body)
      const value = { kind: 'disabled', reason: body.reason, user: callerOf(req).name }
      const key = overrideKey(name, 'disabled')
      return record(req, 'disable', name, {
        store: stores.overrides,
        key,
        value: parseBody(disabledOverrideSchema, value),
      })
    },
    enable: async (req, name) => {
      parseBody(emptyRequestSchema, req.body)
      if (overridesOf(stores, name).disabled === undefined) {
        throw nothingTo('enable', name)
      }
      return removeOverride(req, 'enable', name, 'disabled')
    },
  }

  // A name that is not one of an alarm: 400 naming it, rather than "no alarm" for something never valid.
  router.param('name', (_req, _res, next, value: string) => {
    const parsed = alarmName.safeParse(value)
    next(
      parsed.success
        ? undefined
        : invalid([{ field: 'name', reason: parsed.error.issues[0]?.message ?? 'is not an alarm name' }]),
    )
  })
  router.get('/alarms', (req: Request, res: Response) => {
    ready(stores)
    const query = listQuery.safeParse(req.query)
    if (!query.success) {
      throw invalid(
        problemsOf(query.error).map((p) => (p.field === '(body)' ? { ...p, field: '(query)' } : p)),
      )
    }
    const filter = filterOf(query.data)
    const after = query.data.cursor === undefined ? undefined : decodeCursor(query.data.cursor)
    if (query.data.cursor !== undefined && after === undefined) {
      throw invalid([{ field: 'cursor', reason: 'is not a nextCursor this api returned' }])
    }
    const { limit } = query.data
    const page: AlarmView[] = []
    let more = false
    for (const [name] of stores.registrations.entries()) {
      if (after !== undefined && name <= after) continue
      const view = viewOf(stores, name)
      if (view === undefined || !matches(view, filter)) continue
      if (page.length === limit) {
        more = true
        break
      }
      page.push(view)
    }
    const last = page.at(-1)?.name
    res.json({ alarms: page, nextCursor: more && last !== undefined ? encodeCursor(last) : null })
  })

  router.get('/alarms/:name', (req: Request, res: Response) => {
    const name = String(req.params.name)
    const view = viewOf(ready(stores), name)
    if (view === undefined) throw new ApiError(404, 'not_found', `no alarm "${name}"`)
    res.json(view)
  })

  router.put('/alarms/:name', admin, async (req: Request, res: Response) => {
    ready(stores)
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
    const registration = parseBody(registrationSchema, { ...body, name })
    const cycle = maskCycle(stores, registration)
    if (cycle) {
      throw invalid([{ field: 'maskedBy', reason: `would make a mask cycle: ${cycle.join(' → ')}` }])
    }
    const { created } = await write(
      () => stores.registrations.put(name, registration, auditOf(req)),
      name,
      'registration',
    )
    res.status(created ? 201 : 200).json(registration)
  })

  router.delete('/alarms/:name', admin, async (req: Request, res: Response) => {
    const name = String(req.params.name)
    registered(name)
    await write(() => stores.registrations.delete(name, auditOf(req)), name, 'unregistration')
    res.status(204).end()
  })

  for (const action of actionNames) {
    router.post(`/alarms/:name/${action}`, admin, async (req: Request, res: Response) => {
      const name = String(req.params.name)
      registered(name)
      res.status(202).json(await actions[action](req, name))
    })
  }

  return router
}
