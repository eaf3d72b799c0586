// GET /api/v1/channels[?channel=C]: the distributors' lag per channel and partition (any API key), as the
// console's Channels view and `herald lag` show it.
import { type Channel, channels } from '@herald/shared/config'
import { type Request, type Response, Router } from 'express'
import { z } from 'zod'
import type { ChannelLagReader } from '../channels.ts'
import { ApiError, invalid } from '../errors.ts'

export const channelsPath = '/api/v1/channels'

const age = z.number().int().min(0).nullable()

export const channelsSnapshotSchema = z.object({
  at: z.string().describe('When the snapshot was read (ISO 8601); it is reused for up to a second'),
  channels: z.array(
    z.object({
      channel: z.enum(channels),
      topic: z.string(),
      group: z.string().describe("The distributors' consumer group"),
      replicas: z
        .number()
        .int()
        .nullable()
        .describe('Members of the consumer group (distributor replicas); null when the broker did not say'),
      lag: z.number().int().describe('Records written and not finished yet, over every partition'),
      oldestUnfinishedAgeSeconds: age.describe('Age of the oldest unfinished record; null when none lags'),
      deliveriesPerSecond: z
        .number()
        .min(0)
        .nullable()
        .describe(
          'Records the distributors finished per second (delivered, dead-lettered or skipped): how far the sum ' +
            "of their stored next offsets moved since this api's oldest snapshot of the last 10 s (else its " +
            'previous one), one decimal; null on the first snapshot',
        ),
      breakers: z
        .array(
          z.object({
            destination: z
              .string()
              .nullable()
              .describe(
                "A Slack or webhook destination's name; null for the channel's own breaker (the provider)",
              ),
            state: z.enum(['closed', 'open', 'half-open']),
            openUntil: z
              .string()
              .nullable()
              .describe('When an open breaker lets a probe through (ISO 8601); null unless open'),
            reason: z.string().describe('The failure that opened it; empty when closed'),
            replica: z.string().describe('The distributor replica: each keeps breakers of its own'),
          }),
        )
        .describe(
          "Every breaker of the channel's live distributor replicas, as they publish them to Redis on each " +
            'change and every 5 s (a replica gone for 15 s drops out); the channel breaker first, then by ' +
            'destination and replica',
        ),
      partitions: z.array(
        z.object({
          partition: z.number().int(),
          next: z.number().int().describe('The first offset not finished (stored by the distributors)'),
          end: z.number().int().describe('The log end offset'),
          lag: z.number().int().describe('end − next'),
          oldestUnfinishedAgeSeconds: age.describe('Age of the record at next; null when it does not lag'),
        }),
      ),
    }),
  ),
})

export function channelRoutes(reader: ChannelLagReader): Router {
  const router = Router()
  router.get('/channels', async (req: Request, res: Response) => {
    const asked = req.query.channel
    if (asked !== undefined && (typeof asked !== 'string' || !channels.includes(asked as Channel))) {
      throw invalid([{ field: 'channel', reason: `must be one of ${channels.join(', ')}` }])
    }
    const snapshot = await reader.snapshot().catch((error: unknown) => {
      throw new ApiError(503, 'unavailable', 'the lag could not be read from Kafka and Redis; retry', {
        headers: { 'retry-after': '1' },
        cause: error,
      })
    })
    res.json(
      asked === undefined
        ? snapshot
        : { ...snapshot, channels: snapshot.channels.filter((c) => c.channel === asked) },
    )
  })
  return router
}
