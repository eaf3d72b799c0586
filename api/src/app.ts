// createApp(deps): the express app, built from its parts and never listening by itself (main.ts does).
import { type AlarmStores, alarmStoresReady } from '@herald/shared/alarms/stores'
import type { Config } from '@herald/shared/config'
import type { ConfigTopicStore } from '@herald/shared/config-topics/store'
import { type ConfigStores, configStoresReady } from '@herald/shared/config-topics/stores'
import type { DeadLetterStore } from '@herald/shared/dead-letters'
import type { Logger } from '@herald/shared/logger'
import type { Redis } from '@herald/shared/redis/client'
import type { Rule } from '@herald/shared/rules/schemas'
import type { StatusStore } from '@herald/shared/status'
import { alarmEventTopicName, type TopicNames } from '@herald/shared/topics'
import express, { type ErrorRequestHandler, type NextFunction, type Request, type Response } from 'express'
import { apiKeyAuth } from './auth.ts'
import type { ChannelLagReader } from './channels.ts'
import { consoleRoutes } from './console.ts'
import { ApiError } from './errors.ts'
import type { IdempotencyStore } from './idempotency.ts'
import type { ApiMetrics } from './metrics.ts'
import { buildOpenApi } from './openapi.ts'
import type { NotificationProducer } from './producer.ts'
import { alarmEventRoutes, alarmEventRouteTable } from './routes/alarm-events.ts'
import { alarmRouteOf, alarmRoutes, alarmRouteTable } from './routes/alarms.ts'
import { channelRoutes, channelsPath } from './routes/channels.ts'
import { configRouteOf, configRoutes, configRouteTable } from './routes/config.ts'
import { deadLetterRoutes } from './routes/dead-letters.ts'
import { notificationRoutes } from './routes/notifications.ts'
import { ruleRouteOf, ruleRoutes, ruleRouteTable } from './routes/rules.ts'

export interface AppDeps {
  config: Config
  producer: NotificationProducer
  redis: Redis
  statuses: StatusStore
  idempotency: IdempotencyStore
  topics: TopicNames
  metrics: ApiMetrics
  logger: Logger
  /** Operator access to dead letters (list, replay), for admin API keys only. */
  deadLetters?: DeadLetterStore
  /** Recipients, templates and routes (their endpoints, and /readyz waits until they are loaded). */
  configStores?: ConfigStores
  /** The alarm topics (the alarms endpoints; /readyz waits for them as for the configuration). */
  alarmStores?: AlarmStores
  /** The rules topic (the rules endpoints; /readyz waits for it as for the configuration). */
  ruleStore?: ConfigTopicStore<Rule>
  /** The distributors' lag per channel (GET /api/v1/channels). */
  channelLag?: ChannelLagReader
  /** Test-only: retain 64 KiB per request, to show that the hostile-input memory check catches a leak. */
  leakForTests?: boolean
  /** Is Kafka reachable? (cached by the caller; /readyz fails when not) */
  kafkaReady: () => Promise<boolean>
  maxBatch?: number
  /** In a cluster worker (API_WORKERS > 1): /metrics and /readyz answer for every worker. */
  cluster?: ClusterView
}

/** What /readyz answers: 200 when ready, else 503, with the body. */
export interface Readiness {
  ready: boolean
  body: Record<string, unknown>
}

/** A cluster worker's view of the whole api (api/src/cluster.ts). */
export interface ClusterView {
  /** Sent in a Herald-Worker header on every answer. */
  workerId: number
  /** Every worker's metrics, summed (Prometheus text). */
  metrics(): Promise<string>
  /** Ready when every worker is. */
  readiness(): Promise<Readiness>
}

/** This process's readiness: Kafka reachable and configuration loaded; Redis down is reported, not fatal. */
export async function readinessOf(
  deps: Pick<AppDeps, 'kafkaReady' | 'redis' | 'configStores' | 'alarmStores' | 'ruleStore'>,
): Promise<Readiness> {
  const kafka = await deps.kafkaReady().catch(() => false)
  const redis = deps.redis.status === 'ready' ? 'ok' : 'degraded'
  // `config` covers every compacted topic the api follows: recipients, templates, routes, the alarms and
  // the rules.
  const followed =
    deps.configStores !== undefined || deps.alarmStores !== undefined || deps.ruleStore !== undefined
  const stores =
    (deps.configStores ? configStoresReady(deps.configStores) : true) &&
    (deps.alarmStores ? alarmStoresReady(deps.alarmStores) : true) &&
    (deps.ruleStore ? deps.ruleStore.ready : true)
  const ready = kafka && stores
  return {
    ready,
    body: {
      status: ready ? 'ready' : 'not_ready',
      kafka: kafka ? 'ok' : 'unreachable',
      redis,
      ...(followed ? { config: stores ? 'loaded' : 'loading' } : {}),
    },
  }
}

const routes: Record<string, string[]> = {
  '/api/v1/notification': ['POST'],
  '/api/v1/notifications': ['POST'],
  '/api/v1/notification/:id': ['GET'],
  '/api/v1/openapi.json': ['GET'],
  '/api/v1/dead-letters/:channel': ['GET'],
  '/api/v1/dead-letters/:channel/replay': ['POST'],
  [channelsPath]: ['GET'],
  '/healthz': ['GET'],
  '/readyz': ['GET'],
  '/metrics': ['GET'],
  ...configRouteTable,
  ...alarmEventRouteTable,
  ...alarmRouteTable,
  ...ruleRouteTable,
}

function routeOf(path: string): string | undefined {
  if (routes[path]) return path
  const config = configRouteOf(path) ?? alarmRouteOf(path) ?? ruleRouteOf(path)
  if (config) return config
  if (/^\/api\/v1\/notification\/[^/]+$/.test(path)) return '/api/v1/notification/:id'
  if (/^\/api\/v1\/dead-letters\/[^/]+$/.test(path)) return '/api/v1/dead-letters/:channel'
  if (/^\/api\/v1\/dead-letters\/[^/]+\/replay$/.test(path)) return '/api/v1/dead-letters/:channel/replay'
  return undefined
}

export function createApp(deps: AppDeps): express.Express {
  const { config, metrics, logger } = deps
  const maxBatch = deps.maxBatch ?? 1000
  const app = express()
  app.disable('x-powered-by')
  app.set('etag', false)
  app.set('query parser', 'simple')

  // Metrics for every request, labelled by route template (never by raw path: ids would explode labels).
  // The labelled children are kept per route (and per method and status): prom-client hashes the labels
  // of every call otherwise, a cost of every request.
  const perRoute = new Map<
    string,
    {
      inFlight: ReturnType<typeof metrics.requestsInFlight.labels>
      duration: ReturnType<typeof metrics.requestDuration.labels>
      answered: Map<string, ReturnType<typeof metrics.requests.labels>>
    }
  >()
  const routeMetrics = (route: string) => {
    let m = perRoute.get(route)
    if (!m) {
      m = {
        inFlight: metrics.requestsInFlight.labels({ route }),
        duration: metrics.requestDuration.labels({ route }),
        answered: new Map(),
      }
      perRoute.set(route, m)
    }
    return m
  }
  app.use((req: Request, res: Response, next: NextFunction) => {
    const started = performance.now()
    const route = routeOf(req.path) ?? 'unknown'
    const m = routeMetrics(route)
    m.inFlight.inc()
    res.on('close', () => {
      m.inFlight.dec()
      if (!res.writableFinished) return
      const answer = `${req.method} ${res.statusCode}`
      let counter = m.answered.get(answer)
      if (!counter) {
        counter = metrics.requests.labels({ route, method: req.method, status: String(res.statusCode) })
        m.answered.set(answer, counter)
      }
      counter.inc()
      m.duration.observe((performance.now() - started) / 1000)
    })
    next()
  })

  if (deps.cluster) {
    const worker = String(deps.cluster.workerId)
    app.use((_req: Request, res: Response, next: NextFunction) => {
      res.setHeader('herald-worker', worker)
      next()
    })
  }

  if (deps.leakForTests) {
    const retained: Buffer[] = []
    app.use((_req: Request, _res: Response, next: NextFunction) => {
      retained.push(Buffer.alloc(64 * 1024, 1))
      next()
    })
  }

  const openapi = buildOpenApi({ maxBatch })
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' })
  })
  app.get('/readyz', async (_req, res) => {
    const { ready, body } = deps.cluster
      ? await deps.cluster.readiness().catch(() => ({ ready: false, body: { status: 'not_ready' } }))
      : await readinessOf(deps)
    res.status(ready ? 200 : 503).json(body)
  })
  app.get('/metrics', async (_req, res) => {
    if (!deps.cluster) {
      res.type(metrics.registry.contentType).send(await metrics.registry.metrics())
      return
    }
    const text = await deps.cluster.metrics().catch(() => undefined)
    if (text === undefined) res.status(503).type('text/plain').send('metrics of every worker unavailable\n')
    else res.type(metrics.registry.contentType).send(text)
  })
  app.get('/api/v1/openapi.json', (_req, res) => {
    res.json(openapi)
  })
  // The operator console: static files; it signs in with an API key and calls the endpoints below.
  app.use('/console', consoleRoutes(logger))

  // Method check before auth and parsing: a wrong method on a known route is 405, whatever the body.
  app.use((req: Request, res: Response, next: NextFunction) => {
    const route = routeOf(req.path)
    if (route === undefined) return next()
    const allowed = routes[route] ?? []
    if (allowed.includes(req.method) || (req.method === 'HEAD' && allowed.includes('GET'))) return next()
    res.set('allow', allowed.join(', '))
    next(
      new ApiError(
        405,
        'method_not_allowed',
        `${req.method} is not allowed on ${route}; use ${allowed.join(', ')}`,
      ),
    )
  })
  app.use('/api/v1', apiKeyAuth(config.apiKeys))
  app.use('/api/v1', (req: Request, _res: Response, next: NextFunction) => {
    if (req.method !== 'POST') return next()
    if (!req.is('application/json')) {
      return next(
        new ApiError(
          415,
          'unsupported_media_type',
          'send the body as JSON with Content-Type: application/json',
        ),
      )
    }
    next()
  })
  app.use('/api/v1', express.json({ limit: config.maxBodyBytes, strict: false, type: 'application/json' }))
  app.use('/api/v1', notificationRoutes({ ...deps, maxBatch }))
  app.use(
    '/api/v1',
    alarmEventRoutes({
      producer: deps.producer,
      topic: alarmEventTopicName(config.keyPrefix),
      metrics,
      logger,
      deadlineMs: config.kafka.produceTimeoutMs,
      maxBatch,
    }),
  )
  if (deps.configStores) {
    const options = {
      anyApiKeys: config.apiKeys.size > 0,
      logger,
      writeTimeoutMs: config.kafka.produceTimeoutMs,
      slackDestinations: Object.keys(config.slack.webhooks),
    }
    app.use('/api/v1', configRoutes(deps.configStores, options))
  }
  if (deps.alarmStores) {
    app.use(
      '/api/v1',
      alarmRoutes(deps.alarmStores, {
        anyApiKeys: config.apiKeys.size > 0,
        logger,
        writeTimeoutMs: config.kafka.produceTimeoutMs,
      }),
    )
  }
  if (deps.channelLag) app.use('/api/v1', channelRoutes(deps.channelLag))
  if (deps.ruleStore) {
    app.use(
      '/api/v1',
      ruleRoutes(deps.ruleStore, {
        anyApiKeys: config.apiKeys.size > 0,
        logger,
        writeTimeoutMs: config.kafka.produceTimeoutMs,
        ...(deps.alarmStores ? { alarms: deps.alarmStores } : {}),
      }),
    )
  }
  if (deps.deadLetters)
    app.use('/api/v1', deadLetterRoutes(deps.deadLetters, { anyApiKeys: config.apiKeys.size > 0 }))

  app.use((req: Request, _res: Response, next: NextFunction) => {
    next(new ApiError(404, 'not_found', `no route ${req.method} ${req.path}`))
  })

  const onError: ErrorRequestHandler = (error, req, res, _next) => {
    const e = error as { type?: string; status?: number; expose?: boolean; message?: string }
    let apiError: ApiError
    if (error instanceof ApiError) apiError = error
    else if (e.type === 'entity.too.large') {
      apiError = new ApiError(
        413,
        'payload_too_large',
        `the body is larger than ${config.maxBodyBytes} bytes`,
      )
    } else if (e.type === 'entity.parse.failed') {
      apiError = new ApiError(400, 'invalid_json', 'the body is not valid JSON', {
        details: [{ field: '(body)', reason: 'is not valid JSON' }],
      })
    } else if (e.type === 'encoding.unsupported' || e.type === 'charset.unsupported') {
      apiError = new ApiError(
        415,
        'unsupported_media_type',
        'unsupported body encoding or charset (use UTF-8)',
      )
    } else if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
      apiError = new ApiError(e.status, 'bad_request', e.expose && e.message ? e.message : 'bad request')
    } else {
      logger.error({ err: error, method: req.method, path: req.path }, 'unexpected error')
      apiError = new ApiError(503, 'unavailable', 'the request could not be completed; retry later', {
        headers: { 'retry-after': '1' },
      })
    }
    if (res.headersSent) return
    res.status(apiError.status).set(apiError.headers).json(apiError.body)
  }
  app.use(onError)
  return app
}
