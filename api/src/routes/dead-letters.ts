// GET /api/v1/dead-letters/:channel and POST /api/v1/dead-letters/:channel/replay: admin keys only, one
// bounded page per request (a default and a maximum page size, and a cursor to the next page).
import { type Channel, channels } from '@herald/shared/config'
import {
  type DeadLetterCursor,
  type DeadLetterFilter,
  type DeadLetterStore,
  decodeCursor,
  encodeCursor,
  maxPageSize,
} from '@herald/shared/dead-letters'
import { type Request, Router } from 'express'
import { z } from 'zod'
import { requireAdmin } from '../auth.ts'
import { ApiError, invalid } from '../errors.ts'

export const defaultPageSize = 50
export { maxPageSize }
export const errorClasses = ['poison', 'permanent', 'retryable', 'provider', 'crash-loop'] as const

const selectionSchema = z.strictObject({
  class: z.enum(errorClasses).optional(),
  since: z.iso.datetime({ offset: true }).optional(),
  until: z.iso.datetime({ offset: true }).optional(),
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(maxPageSize, `at most ${maxPageSize} per page; follow nextCursor for more`)
    .default(defaultPageSize),
  cursor: z.string().optional(),
  at: z
    .array(z.string().regex(/^\d+:\d+$/, 'partition:offset'))
    .max(maxPageSize)
    .optional(),
  all: z.boolean().optional(),
})

function channelOf(req: Request): Channel {
  const channel = String(req.params.channel).toLowerCase() as Channel
  if (!channels.includes(channel)) throw new ApiError(404, 'not_found', `no channel ${req.params.channel}`)
  return channel
}

interface Selection {
  filter: DeadLetterFilter
  limit: number
  cursor?: DeadLetterCursor
  all: boolean
}

function selectionOf(input: unknown): Selection {
  const parsed = selectionSchema.safeParse(input)
  if (!parsed.success) {
    throw invalid(
      parsed.error.issues.map((i) => ({ field: i.path.join('.') || '(body)', reason: i.message })),
    )
  }
  const f = parsed.data
  const cursor = f.cursor === undefined ? undefined : decodeCursor(f.cursor)
  if (f.cursor !== undefined && !cursor) {
    throw invalid([{ field: 'cursor', reason: 'is not a nextCursor this api returned' }])
  }
  return {
    filter: {
      ...(f.class ? { errorClass: f.class } : {}),
      ...(f.since ? { since: new Date(f.since) } : {}),
      ...(f.until ? { until: new Date(f.until) } : {}),
      ...(f.at ? { positions: new Set(f.at) } : {}),
    },
    limit: f.limit,
    ...(cursor ? { cursor } : {}),
    all: f.all === true,
  }
}

export function deadLetterRoutes(store: DeadLetterStore, options: { anyApiKeys: boolean }): Router {
  const router = Router()
  router.use('/dead-letters', requireAdmin(options.anyApiKeys))
  router.get('/dead-letters/:channel', async (req, res) => {
    const channel = channelOf(req)
    const { filter, limit, cursor } = selectionOf(req.query)
    const page = await store.page(channel, { filter, limit, ...(cursor ? { cursor } : {}) })
    res.json({
      channel,
      deadLetters: page.deadLetters,
      nextCursor: page.next ? encodeCursor(page.next) : null,
    })
  })
  router.post('/dead-letters/:channel/replay', async (req, res) => {
    const channel = channelOf(req)
    const { filter, limit, cursor, all } = selectionOf(req.body ?? {})
    if (!all && !filter.positions && !filter.errorClass && !filter.since && !filter.until) {
      throw invalid([
        { field: '(body)', reason: 'choose what to replay: at, class, since/until, or all: true' },
      ])
    }
    const page = await store.replayPage(channel, { filter, limit, ...(cursor ? { cursor } : {}) })
    res.json({
      channel,
      replayed: page.replayed,
      nextCursor: page.next ? encodeCursor(page.next) : null,
    })
  })
  return router
}
