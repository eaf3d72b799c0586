// /healthz, /readyz and /metrics on a consumer service's METRICS_PORT (distributors, router).
import { createServer, type Server } from 'node:http'
import type { Registry } from 'prom-client'

export interface HealthChecks {
  /** The process is alive and its loop runs. */
  live: () => boolean
  /** Ready to deliver: consumer running, Redis connected. Returns the failing parts. */
  ready: () => { ok: boolean; details: Record<string, unknown> }
}

export function createHealthServer(registry: Registry, checks: HealthChecks): Server {
  return createServer((req, res) => {
    const send = (status: number, body: unknown, type = 'application/json') => {
      res.writeHead(status, { 'content-type': type })
      res.end(typeof body === 'string' ? body : JSON.stringify(body))
    }
    const path = (req.url ?? '/').split('?')[0]
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return send(405, { error: 'method_not_allowed', message: 'use GET' })
    if (path === '/healthz') return send(checks.live() ? 200 : 503, { status: checks.live() ? 'ok' : 'down' })
    if (path === '/readyz') {
      const { ok, details } = checks.ready()
      return send(ok ? 200 : 503, { status: ok ? 'ready' : 'not_ready', ...details })
    }
    if (path === '/metrics') {
      registry.metrics().then(
        (text) => send(200, text, registry.contentType),
        (error: Error) => send(500, { error: 'metrics_failed', message: error.message }),
      )
      return
    }
    send(404, { error: 'not_found', message: `no route ${path}` })
  })
}
