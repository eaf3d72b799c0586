// The Dockerfiles and the compose services cannot be built or run here (no Docker engine), so what the
// images promise is checked against the code they must match: the ports and health path of config.ts and
// the services, the commands of package.json, a non-root user Kubernetes can verify, node as PID 1 for
// SIGTERM, a type-check stage, production dependencies only, and a grace period above the shutdown bound.
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { loadConfig } from '@herald/shared/config'
import { repoRoot } from '../../dev/lib/process.ts'
import { defaultPorts } from '../../dev/standins/index.ts'
import {
  composeServiceScript,
  containersOf,
  dockerfile,
  type Instruction,
  kustomize,
  readText,
  readYaml,
} from '../support/deploy-files.ts'

const defaults = loadConfig({})
const scripts = (JSON.parse(readText('package.json')) as { scripts: Record<string, string> }).scripts

/** Each service's image: its npm script (= its workspace) and the Deployments that run it. */
const images = [
  {
    file: 'Dockerfile.api',
    script: 'api',
    deployments: 'herald-api',
    portVariable: 'PORT',
    port: defaults.port,
  },
  {
    file: 'Dockerfile.distributor',
    script: 'distributor',
    deployments: 'herald-distributor-',
    portVariable: 'METRICS_PORT',
    port: defaults.metricsPort,
  },
  {
    file: 'Dockerfile.router',
    script: 'router',
    deployments: 'herald-router',
    portVariable: 'METRICS_PORT',
    port: defaults.metricsPort,
  },
  {
    file: 'Dockerfile.alarms',
    script: 'alarms',
    deployments: 'herald-alarms',
    portVariable: 'METRICS_PORT',
    port: defaults.metricsPort,
  },
  {
    file: 'Dockerfile.rules',
    script: 'rules',
    deployments: 'herald-rules',
    portVariable: 'METRICS_PORT',
    port: defaults.metricsPort,
  },
] as const
const workspaces = (JSON.parse(readText('package.json')) as { workspaces: string[] }).workspaces

/** Instructions of each stage, by stage name (the last one is the image). */
function stages(instructions: Instruction[]): Array<{ name: string; from: string; body: Instruction[] }> {
  const found: Array<{ name: string; from: string; body: Instruction[] }> = []
  for (const instruction of instructions) {
    if (instruction.keyword === 'FROM') {
      const [image = '', , name = ''] = instruction.args.split(/\s+/)
      found.push({ name, from: image, body: [] })
    } else found.at(-1)?.body.push(instruction)
  }
  return found
}

test('every service of package.json (a workspace with a main.ts) has an image', () => {
  // A workspace is a service once it has its main.ts (alarms/ starts as the pure core, without one).
  const services = workspaces.filter((w) => w !== 'shared' && existsSync(join(repoRoot, w, 'src/main.ts')))
  assert.deepEqual(
    images.map((i) => i.script),
    services,
    'one Dockerfile.<service> per workspace besides shared',
  )
})

for (const { file, script, deployments: wanted, portVariable, port } of images) {
  const all = stages(dockerfile(file))
  const image = all.at(-1)
  const of = (keyword: string) => image?.body.filter((i) => i.keyword === keyword) ?? []

  test(`${file}: multi-stage on Node 24, with a type-check stage whose sources the image ships`, () => {
    assert.ok(all.length >= 2, 'multi-stage')
    for (const stage of all)
      assert.match(stage.from, /^node:24[.-]/, `${stage.name || 'image'}: Node 24 base`)
    const check = all.find((s) => s.body.some((i) => i.keyword === 'RUN' && /tsc --noEmit/.test(i.args)))
    assert.ok(check?.name, 'a named stage runs tsc --noEmit')
    // tsc through node_modules/.bin would meet the `node` devDependency's shim first on PATH.
    assert.ok(check.body.some((i) => /^node node_modules\/typescript\/bin\/tsc /.test(i.args)))
    const fromCheck = of('COPY').filter((i) => i.args.startsWith(`--from=${check.name} `))
    assert.ok(
      fromCheck.some((i) => i.args.includes(`${script}/src`)),
      `the image copies ${script}/src from the ${check.name} stage (so BuildKit cannot skip the check)`,
    )
    assert.ok(
      of('COPY').every((i) => i.args.startsWith('--from=') || !/\bsrc\b/.test(i.args)),
      'no sources copied around the check',
    )
  })

  test(`${file}: every file it copies from the build context exists, and npm ci sees its workspaces`, () => {
    // A missing source fails `docker build` at that COPY; nothing else here would notice.
    const copied = all
      .flatMap((s) => s.body)
      .filter((i) => i.keyword === 'COPY' && !i.args.startsWith('--from='))
      .flatMap((i) => i.args.split(/\s+/).slice(0, -1))
    for (const source of copied)
      assert.ok(existsSync(join(repoRoot, source)), `${file}: COPY ${source}: no such file`)
    // Each stage that installs has the package.json of shared and of this service before its npm ci (npm
    // installs the lockfile's packages of the workspaces present), and the deps stage installs exactly those.
    for (const stage of all.filter((s) => s.body.some((i) => /\bnpm ci\b/.test(i.args)))) {
      const before = stage.body.slice(
        0,
        stage.body.findIndex((i) => /\bnpm ci\b/.test(i.args)),
      )
      for (const workspace of ['shared', script])
        assert.ok(
          before.some((i) => i.keyword === 'COPY' && i.args.startsWith(`${workspace}/package.json `)),
          `${file} ${stage.name}: ${workspace}/package.json before npm ci`,
        )
    }
    const production = all.flatMap((s) => s.body).find((i) => /npm ci .*--omit=dev/.test(i.args))
    assert.deepEqual(
      [...(production?.args.matchAll(/-w (\S+)/g) ?? [])].map((m) => m[1]).sort(),
      [`@herald/${script}`, '@herald/shared'].sort(),
    )
  })

  test(`${file}: production dependencies only, and the base image's node (no second node from npm)`, () => {
    const npmCi = all.flatMap((s) => s.body).filter((i) => i.keyword === 'RUN' && /\bnpm ci\b/.test(i.args))
    assert.ok(npmCi.length >= 2)
    for (const run of npmCi) assert.match(run.args, /--ignore-scripts/, run.args)
    const modules = of('COPY').find((i) => /node_modules/.test(i.args))
    const depsStage = /^--from=(\S+)/.exec(modules?.args ?? '')?.[1]
    const deps = all.find((s) => s.name === depsStage)
    assert.ok(
      deps?.body.some((i) => i.keyword === 'RUN' && /npm ci .*--omit=dev/.test(i.args)),
      'node_modules of the image come from npm ci --omit=dev',
    )
  })

  test(`${file}: runs as a numeric non-root user, the one the Kubernetes pods run as`, () => {
    const user = of('USER').at(-1)?.args ?? ''
    const [uid = '', gid = ''] = user.split(':')
    assert.match(uid, /^[1-9]\d*$/, `USER ${user}: numeric and not 0 (runAsNonRoot cannot check a name)`)
    const deployments = kustomize('.').filter((o) => o.metadata.name.startsWith(wanted))
    const running = deployments.filter((o) => o.kind === 'Deployment')
    assert.ok(running.length > 0, `a Deployment ${wanted}… runs ${file}`)
    for (const d of running) {
      const pod = d.spec.template.spec.securityContext
      assert.equal(String(pod.runAsUser), uid, `${d.metadata.name} runAsUser`)
      if (gid) assert.equal(String(pod.runAsGroup), gid, `${d.metadata.name} runAsGroup`)
    }
  })

  test(`${file}: node is PID 1 running the same entry point as "npm run ${script}"`, () => {
    const cmd = JSON.parse(of('CMD').at(-1)?.args ?? 'null') as string[] | null
    assert.ok(Array.isArray(cmd), 'CMD in exec form (a shell form would put sh in front of node)')
    assert.equal(of('ENTRYPOINT').length, 0)
    assert.equal(cmd[0], 'node', 'node itself, not npm (npm does not pass SIGTERM on)')
    const entry = /^node (\S+\.ts)$/.exec(scripts[script] ?? '')?.[1]
    assert.ok(entry, `package.json scripts.${script} runs one .ts file`)
    assert.equal(cmd.at(-1), entry)
    assert.ok(existsSync(join(repoRoot, entry)))
    assert.notEqual(of('STOPSIGNAL').at(-1)?.args ?? 'SIGTERM', 'SIGKILL')
  })

  test(`${file}: port and HEALTHCHECK agree with config.ts (${portVariable}=${port}, /healthz)`, () => {
    assert.deepEqual(
      of('EXPOSE').map((i) => i.args),
      [String(port)],
    )
    const env = of('ENV')
      .map((i) => i.args)
      .join(' ')
    assert.match(env, new RegExp(`\\b${portVariable}=${port}\\b`))
    const check = of('HEALTHCHECK').at(-1)?.args ?? ''
    assert.match(check, new RegExp(`process\\.env\\.${portVariable}\\|\\|${port}\\)\\+'/healthz'`))
  })
}

test('.dockerignore keeps secrets, data and host modules out, and nothing a COPY needs', () => {
  const ignored = readText('.dockerignore')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
  for (const entry of ['node_modules', '.env', '.git', '.data', '.cache'])
    assert.ok(ignored.includes(entry), `.dockerignore lists ${entry}`)
  for (const { file } of images) {
    const sources = dockerfile(file)
      .filter((i) => i.keyword === 'COPY' && !i.args.startsWith('--from='))
      .flatMap((i) => i.args.split(/\s+/).slice(0, -1))
    for (const source of sources) {
      const top = source.split('/')[0] ?? ''
      assert.ok(!ignored.includes(top) && !ignored.includes(source), `${file}: ${source} is dockerignored`)
    }
  }
})

test('compose: the api, distributors, router, alarms and rules on the default ports, stopped within a grace above the shutdown bound', () => {
  const [compose] = readYaml<{
    services: Record<
      string,
      {
        build?: { dockerfile?: string }
        environment?: Record<string, string>
        ports?: string[]
        stop_grace_period?: string
        depends_on?: Record<string, { condition: string }>
      }
    >
  }>('docker-compose.yml')
  const services = compose?.services ?? {}
  const seconds = (value: string | undefined) => Number(/^(\d+)s$/.exec(value ?? '10s')?.[1])
  const herald = Object.keys(services).filter((name) => composeServiceScript(name))
  assert.deepEqual(
    new Set(herald.map(composeServiceScript)),
    new Set(images.map((i) => i.script)),
    'a compose service for every image',
  )
  for (const name of herald) {
    const service = services[name] ?? {}
    const script = composeServiceScript(name)
    assert.equal(service.build?.dockerfile, `Dockerfile.${script}`, `${name}: built from its image`)
    // The alarms processor reads and writes Kafka only: it need not wait for Redis.
    const servers = script === 'alarms' ? ['kafka'] : ['kafka', 'redis']
    for (const server of servers)
      assert.equal(service.depends_on?.[server]?.condition, 'service_healthy', `${name}: waits for ${server}`)
    assert.deepEqual(
      Object.keys(service.depends_on ?? {}).filter((s) => s === 'kafka' || s === 'redis'),
      servers,
      `${name}: waits for ${servers.join(' and ')} only`,
    )
    const env = service.environment ?? {}
    const shutdownMs = Number(env.SHUTDOWN_TIMEOUT_MS ?? defaults.shutdownTimeoutMs)
    assert.ok(
      seconds(service.stop_grace_period) * 1000 >= shutdownMs + 5000,
      `${name}: stop_grace_period ${service.stop_grace_period ?? '10s (default)'} ≥ shutdown bound + 5 s`,
    )
    if (name === 'api') {
      assert.equal(env.PORT, String(defaults.port))
      assert.ok(service.ports?.includes(`${defaults.port}:${defaults.port}`))
    } else if (name === 'router' || name === 'alarms' || name === 'rules') {
      assert.equal(env.METRICS_PORT, String(defaults.metricsPort))
      assert.equal(env.CHANNEL, undefined, `${name}: delivers no channel`)
    } else {
      assert.equal(env.METRICS_PORT, String(defaults.metricsPort))
      assert.equal(env.CHANNEL, name.slice('distributor-'.length))
    }
  }
})

test("compose: the rules evaluator asks the alerts engine's stand-in, which the sandbox service runs and publishes", () => {
  const [compose] = readYaml<{
    services: Record<
      string,
      { environment?: Record<string, string>; ports?: string[]; depends_on?: Record<string, unknown> }
    >
  }>('docker-compose.yml')
  const port = defaultPorts.alertsEngine
  const rules = compose?.services.rules
  assert.equal(rules?.environment?.ALERTS_ENGINE_URL, `http://sandbox:${port}`)
  assert.ok(rules?.depends_on?.sandbox, 'rules: starts after the sandbox')
  assert.ok(compose?.services.sandbox?.ports?.includes(`${port}:${port}`), `sandbox publishes ${port}`)
  // The sandbox image runs dev/sandbox.ts (which starts the engine's stand-in: test/standins/sandbox.test.ts)
  // and exposes its port.
  const sandbox = dockerfile('dev/Dockerfile.sandbox')
  assert.deepEqual(JSON.parse(sandbox.findLast((i) => i.keyword === 'CMD')?.args ?? 'null'), [
    'node',
    'dev/sandbox.ts',
  ])
  const exposed = sandbox.filter((i) => i.keyword === 'EXPOSE').flatMap((i) => i.args.split(/\s+/))
  assert.ok(exposed.includes(String(port)), `dev/Dockerfile.sandbox exposes ${port}`)
})

test('the Kubernetes containers run the images commands (no command or args override)', () => {
  for (const d of kustomize('.').filter((o) => o.kind === 'Deployment')) {
    for (const c of containersOf(d)) {
      assert.equal(c.command, undefined, `${d.metadata.name}: command`)
      assert.equal(c.args, undefined, `${d.metadata.name}: args`)
    }
  }
})
