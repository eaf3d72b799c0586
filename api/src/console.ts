// The operator console at /console: three static files. In a development checkout they are built in memory
// by api/console/build.ts (esbuild) at the first request; in the api image, which has no devDependencies,
// they were built by its Dockerfile into api/console/dist. Nothing is fetched from elsewhere at run time.
import { readFileSync } from 'node:fs'
import type { Logger } from '@herald/shared/logger'
import { type Request, type Response, Router } from 'express'
import { ApiError } from './errors.ts'

interface Asset {
  type: string
  body: Buffer
}

const files: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
}

async function loadAssets(): Promise<Map<string, Asset>> {
  try {
    const { buildConsole } = await import('../console/build.ts')
    return await buildConsole()
  } catch (error) {
    // Only a missing build tool (the image) falls back to the prebuilt files; a broken source is an error.
    if ((error as { code?: string }).code !== 'ERR_MODULE_NOT_FOUND') throw error
  }
  const dist = new URL('../console/dist/', import.meta.url)
  return new Map(
    Object.entries(files).map(([name, type]) => [name, { type, body: readFileSync(new URL(name, dist)) }]),
  )
}

export function consoleRoutes(logger: Logger): Router {
  const router = Router()
  let assets: Promise<Map<string, Asset>> | undefined
  const load = () => {
    assets ??= loadAssets().catch((error: unknown) => {
      assets = undefined
      logger.error({ err: error }, 'the console could not be built or read')
      throw new ApiError(503, 'unavailable', 'the console is not available; see the api log')
    })
    return assets
  }
  router.get(/^\/(index\.html|app\.js|app\.css)?$/, async (req: Request, res: Response) => {
    // /console without its slash: the page's relative URLs need the folder.
    if (req.originalUrl.split('?')[0] === '/console') return res.redirect(301, '/console/')
    const name = req.path === '/' ? 'index.html' : req.path.slice(1)
    const asset = (await load()).get(name)
    if (!asset) throw new ApiError(404, 'not_found', `no console file ${name}`)
    res
      .set({
        'content-type': asset.type,
        'cache-control': 'no-cache',
        'x-content-type-options': 'nosniff',
        // Everything comes from this api; the page only calls the api itself.
        'content-security-policy':
          "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
      })
      .send(asset.body)
  })
  return router
}
