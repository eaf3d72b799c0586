// API keys: Authorization: Bearer <key>. Compared in constant time (SHA-256 digests, timingSafeEqual);
// the key's name travels with the notification, the key itself is never logged.
import { createHash, timingSafeEqual } from 'node:crypto'
import type { NextFunction, Request, Response } from 'express'
import { ApiError } from './errors.ts'

const digest = (value: string) => createHash('sha256').update(value).digest()

export function apiKeyAuth(keys: ReadonlyMap<string, string>) {
  const known = [...keys].map(([name, key]) => ({ name, digest: digest(key) }))
  return (req: Request, _res: Response, next: NextFunction) => {
    if (known.length === 0) return next()
    const header = req.get('authorization') ?? ''
    const match = /^Bearer\s+(\S+)$/i.exec(header)
    if (!match?.[1]) {
      return next(
        new ApiError(401, 'unauthorized', 'missing API key: send Authorization: Bearer <key>', {
          headers: { 'www-authenticate': 'Bearer' },
        }),
      )
    }
    const presented = digest(match[1])
    let found: string | undefined
    for (const k of known) if (timingSafeEqual(k.digest, presented)) found = k.name
    if (found === undefined) {
      return next(
        new ApiError(401, 'unauthorized', 'unknown API key', { headers: { 'www-authenticate': 'Bearer' } }),
      )
    }
    ;(req as Request & { heraldUser?: string }).heraldUser = found
    next()
  }
}
