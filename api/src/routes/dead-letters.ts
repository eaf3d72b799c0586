// GET /api/v1/dead-letters/:channel and POST /api/v1/dead-letters/:channel/replay, behind the API key.
import { type Channel, channels } from '@herald/shared/config'
import type { DeadLetterFilter, DeadLetterStore } from '@herald/shared/dead-letters'
import { type Request, Router } from 'express'
import { z } from 'zod'
import { ApiError, invalid } from '../errors.ts'

const filterSchema = z.strictObject({
  class: z.enum(['poison', 'permanent', 'retryable', 'provider', 'crash-loop']).optional(),
  since: z.iso.datetime({ offset: true }).optional(),
  until: z.iso.datetime({ offset: true }).optional(),
  limit: z.coerce.number().int().min(1).max(10_000).optional(),
  at: z
    .array(z.string().regex(/^\d+:\d+$/, 'partition:offset'))
    .max(10_000)
    .optional(),
  all: z.boolean().optional(),
})

function channelOf(req: Request): Channel {
  const channel = String(req.params.channel).toLowerCase() as Channel
  if (!channels.includes(channel)) throw new ApiError(404, 'not_found', `no channel ${req.params.channel}`)
  return channel
}

function toFilter(input: unknown): DeadLetterFilter {
  const parsed = filterSchema.safeParse(input)
  if (!parsed.success) {
    throw invalid(
      parsed.error.issues.map((i) => ({ field: i.path.join('.') || '(body)', reason: i.message })),
    )
  }
  const f = parsed.data
  return {
    ...(f.class ? { errorClass: f.class } : {}),
    ...(f.since ? { since: new Date(f.since) } : {}),
    ...(f.until ? { until: new Date(f.until) } : {}),
    ...(f.limit ? { limit: f.limit } : {}),
    ...(f.at ? { positions: new Set(f.at) } : {}),
  }
}

export function deadLetterRoutes(store: DeadLetterStore): Router {
  const router = Router()
  router.get('/dead-letters/:channel', async (req, res) => {
    const channel = channelOf(req)
    const query = { ...req.query, ...(req.query.limit ? { limit: req.query.limit } : {}) }
    res.json({ channel, deadLetters: await store.list(channel, toFilter(query)) })
  })
  router.post('/dead-letters/:channel/replay', async (req, res) => {
    const channel = channelOf(req)
    const body = (req.body ?? {}) as Record<string, unknown>
    const filter = toFilter(body)
    if (!body.all && !filter.positions && !filter.errorClass && !filter.since && !filter.until) {
      throw invalid([
        { field: '(body)', reason: 'choose what to replay: at, class, since/until, or all: true' },
      ])
    }
    res.json({ channel, replayed: await store.replay(channel, filter) })
  })
  return router
}
