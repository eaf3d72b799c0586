// The api in this process, on a test namespace (its topic and key prefix), against the given Kafka and
// Redis; and JSON calls to it.
import { type Config, loadConfig } from '@herald/shared/config'
import { createLogger } from '@herald/shared/logger'
import { type RunningApi, startApi } from '../../api/src/server.ts'
import type { TestNamespace } from './fixtures.ts'
import { eventually } from './service-process.ts'

export interface TestApi {
  readonly url: string
  readonly config: Config
  /**
   * One request to `/api/v1<path>`: a body that is not a string is sent as JSON. `headers` replace the
   * default ones (JSON content type, and the first API key's bearer when the api has keys).
   */
  call(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<ApiAnswer>
  stop(): Promise<void>
}

export interface ApiAnswer {
  status: number
  headers: Headers
  // biome-ignore lint/suspicious/noExplicitAny: JSON answers, checked field by field by the tests
  body: Record<string, any>
}

/**
 * Starts the api with `env` over the namespace's defaults (PORT 0, TOPIC_PREFIX and KEY_PREFIX from the
 * namespace) and, unless `ready: false`, waits until its /readyz says ready (recipients, templates and
 * routes loaded from Kafka).
 */
export async function startTestApi(
  ns: TestNamespace,
  options: { brokers: string; redisUrl: string; env?: Record<string, string>; ready?: boolean },
): Promise<TestApi> {
  const config = loadConfig(
    {
      KAFKA_BROKERS: options.brokers,
      REDIS_URL: options.redisUrl,
      PORT: '0',
      TOPIC_PREFIX: ns.prefix,
      KEY_PREFIX: ns.prefix,
      ...options.env,
    },
    'api',
  )
  const running: RunningApi = await startApi(config, createLogger({ service: 'api', level: 'silent' }))
  if (options.ready !== false) {
    await eventually(
      'the api is ready (configuration loaded)',
      async () => ((await fetch(`${running.url}/readyz`)).status === 200 ? true : undefined),
      60_000,
    )
  }
  const firstKey = [...config.apiKeys.values()][0]?.key
  const defaults: Record<string, string> = {
    'content-type': 'application/json',
    ...(firstKey !== undefined ? { authorization: `Bearer ${firstKey}` } : {}),
  }
  return {
    url: running.url,
    config,
    async call(method, path, body, headers = defaults) {
      const res = await fetch(`${running.url}/api/v1${path}`, {
        method,
        headers,
        ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
      })
      const text = await res.text()
      return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : {} }
    },
    stop: () => running.stop(),
  }
}
