// The OpenAPI path and schema of GET /api/v1/channels (merged by openapi.ts).
import type { z } from 'zod'
import { channelsPath, channelsSnapshotSchema } from './routes/channels.ts'

interface Helpers {
  json: (schema: z.ZodType, io?: 'input' | 'output') => Record<string, unknown>
  errorResponse: (description: string, options?: { retryAfter?: boolean }) => unknown
  commonErrors: Record<string, unknown>
}

export function channelsOpenApi(h: Helpers) {
  return {
    schemas: { Channels: h.json(channelsSnapshotSchema) },
    paths: {
      [channelsPath]: {
        get: {
          summary:
            "Each channel's delivery lag per partition, throughput, destination breakers and distributor replicas (any API key)",
          description:
            "Lag is the log end of the channel's topic minus the next offset the distributors stored in Redis " +
            '(the offset mirrored to Kafka, else the log start, when Redis has none), as their ' +
            'herald_consumer_lag_records metric; the age of the oldest unfinished record comes from its broker ' +
            'timestamp. Throughput (deliveriesPerSecond) is the rate at which the sum of the stored next offsets ' +
            "moved across this api replica's snapshots of the last 10 seconds: records finished, whatever " +
            'their outcome; a console polling every 2 s keeps the window full. One snapshot serves every ' +
            'request for a second. Breakers are what the distributor replicas publish to Redis ' +
            '(RedisKeys.breakers): each replica its own, the channel breaker (destination null) and one per ' +
            'Slack or webhook destination it delivered to; a replica that stopped refreshing them drops out.',
          parameters: [
            {
              name: 'channel',
              in: 'query',
              required: false,
              schema: { type: 'string', enum: ['email', 'sms', 'slack', 'webhook'] },
              description: 'Only this channel',
            },
          ],
          responses: {
            '200': {
              description: 'Every channel (or the one asked for)',
              content: { 'application/json': { schema: { $ref: '#/components/schemas/Channels' } } },
            },
            '400': h.errorResponse('An unknown channel'),
            '503': h.errorResponse('Kafka or Redis did not answer', { retryAfter: true }),
            ...h.commonErrors,
          },
        },
      },
    },
  }
}
