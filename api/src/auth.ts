// API keys: Authorization: Bearer <key>. Compared in constant time (SHA-256 digests, timingSafeEqual);
// the key's name and role travel with the request, the key itself is never logged.
import { createHash, timingSafeEqual } from 'node:crypto'
import type { ApiKey, ApiKeyRole } from '@herald/shared/config'
import type { NextFunction, Request, Response } from 'express'
import { ApiError } from './errors.ts'

const digest = (value: string) => createHash('sha256').update(value).digest()

/** Who sent the request: the API key's name and role ('anonymous' and no role when the api runs open). */
export interface Caller {
  name: string
  role: ApiKeyRole | undefined
}

type WithCaller = Request & { heraldCaller?: Caller }
const anonymous: Caller = { name: 'anonymous', role: undefined }

export function callerOf(req: Request): Caller {
  return (req as WithCaller).heraldCaller ?? anonymous
}

export function apiKeyAuth(keys: ReadonlyMap<string, Readonly<ApiKey>>) {
  const known = [...keys].map(([name, { key, role }]) => ({ name, role, digest: digest(key) }))
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
    let found: Caller | undefined
    for (const k of known) if (timingSafeEqual(k.digest, presented)) found = { name: k.name, role: k.role }
    if (found === undefined) {
      return next(
        new ApiError(401, 'unauthorized', 'unknown API key', { headers: { 'www-authenticate': 'Bearer' } }),
      )
    }
    ;(req as WithCaller).heraldCaller = found
    next()
  }
}

/**
 * Lets only admin keys through. With no API keys configured nobody is an admin: the routes behind this
 * refuse every request rather than open dead letters (recipients, errors) to anyone who can connect.
 */
export function requireAdmin(anyKeys: boolean, what = 'dead letters') {
  return (req: Request, _res: Response, next: NextFunction) => {
    if (callerOf(req).role === 'admin') return next()
    next(
      new ApiError(
        403,
        'forbidden',
        anyKeys
          ? `${what} need an admin API key (an API_KEYS entry name:key:admin)`
          : `${what} need an admin API key, and none is configured (set API_KEYS=name:key:admin)`,
      ),
    )
  }
}
