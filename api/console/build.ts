// Builds the operator console (api/console/src: Preact with htm, no JSX step) with esbuild: app.js, app.css
// and index.html. The api builds it in memory at its first /console request when esbuild is installed (a
// development checkout); the api image has no devDependencies, so its Dockerfile runs this file, which
// writes them to api/console/dist, and the api serves that folder.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { build } from 'esbuild'

export interface ConsoleAsset {
  type: string
  body: Buffer
}

const root = import.meta.dirname

export async function buildConsole(): Promise<Map<string, ConsoleAsset>> {
  const result = await build({
    entryPoints: { app: join(root, 'src/main.ts'), style: join(root, 'src/style.css') },
    bundle: true,
    format: 'esm',
    target: 'es2022',
    minify: true,
    sourcemap: false,
    write: false,
    outdir: join(root, 'dist'),
    logLevel: 'silent',
  })
  const assets = new Map<string, ConsoleAsset>()
  for (const file of result.outputFiles) {
    const name = file.path.slice(file.path.lastIndexOf('/') + 1)
    const type = name.endsWith('.css') ? 'text/css; charset=utf-8' : 'text/javascript; charset=utf-8'
    assets.set(name === 'style.css' ? 'app.css' : name, { type, body: Buffer.from(file.contents) })
  }
  assets.set('index.html', {
    type: 'text/html; charset=utf-8',
    body: readFileSync(join(root, 'index.html')),
  })
  return assets
}

if (import.meta.main) {
  const out = join(root, 'dist')
  mkdirSync(out, { recursive: true })
  const assets = await buildConsole()
  for (const [name, asset] of assets) writeFileSync(join(out, name), asset.body)
  console.log(`console built into ${out}: ${[...assets.keys()].join(', ')}`)
}
