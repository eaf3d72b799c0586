// Environment variables across the deployment files: .env.example documents every variable the config
// schema reads, with its exact default, and the Kubernetes manifests and the compose file set no variable
// the schema does not read (a renamed variable would otherwise be silently ignored in production).
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { channels, envVariableNames, loadConfig } from '@herald/shared/config'
import dotenv from 'dotenv'
import {
  composeServiceScript,
  containersOf,
  k8sFiles,
  k8sObjects,
  readText,
  readYaml,
} from '../support/deploy-files.ts'

const envExample = readText('.env.example')

test('.env.example names every variable the config schema reads, and nothing else', () => {
  const named = [...envExample.matchAll(/^#?\s*([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1] ?? '')
  const missing = envVariableNames.filter((name) => !named.includes(name))
  assert.deepEqual(missing, [], `.env.example lacks ${missing.join(', ')}`)
  const unknown = named.filter((name) => !envVariableNames.includes(name))
  assert.deepEqual(unknown, [], `.env.example names variables config.ts does not read: ${unknown.join(', ')}`)
})

test("README's Configuration table names every variable the config schema reads, and nothing else", () => {
  const readme = readText('README.md')
  const start = readme.indexOf('\n## Configuration\n')
  assert.ok(start >= 0, 'README has a Configuration section')
  const section = readme.slice(start, readme.indexOf('\n## ', start + 1))
  // The first cell of each row: `NAME` [default], possibly several names.
  const named = section
    .split('\n')
    .filter((line) => line.startsWith('| `'))
    .flatMap((line) =>
      [...(line.split(' | ')[0] ?? '').matchAll(/`([A-Z][A-Z0-9_]*)`/g)].map((m) => m[1] ?? ''),
    )
  const missing = envVariableNames.filter((name) => !named.includes(name))
  assert.deepEqual(missing, [], `README's Configuration table lacks ${missing.join(', ')}`)
  const unknown = named.filter((name) => !envVariableNames.includes(name))
  assert.deepEqual(unknown, [], `README documents variables config.ts does not read: ${unknown.join(', ')}`)
})

test('every value written in .env.example is the default of config.ts', () => {
  const values = dotenv.parse(envExample)
  assert.ok(Object.keys(values).length > 30)
  // Equal configs from the file's values and from an empty environment: each value is the default (or,
  // for a variable without one, empty = not set).
  assert.deepEqual(loadConfig(values), loadConfig({}))
})

/** Variables a manifest sets: ConfigMap and Secret keys, container env. */
function manifestVariables(): Array<{ where: string; name: string }> {
  const found: Array<{ where: string; name: string }> = []
  for (const file of k8sFiles()) {
    for (const object of k8sObjects(file)) {
      const where = `${object.file} ${object.kind}/${object.metadata.name}`
      if (object.kind === 'ConfigMap' || object.kind === 'Secret') {
        for (const name of Object.keys({ ...object.data, ...object.stringData })) found.push({ where, name })
      }
      if (object.kind === 'Deployment') {
        for (const container of containersOf(object))
          for (const { name } of container.env ?? []) found.push({ where, name })
      }
    }
  }
  return found
}

test('every variable the Kubernetes manifests set is one the config schema reads', () => {
  const found = manifestVariables()
  assert.ok(found.length > 20, `found only ${found.length} variables`)
  const unknown = found.filter(({ name }) => !envVariableNames.includes(name))
  assert.deepEqual(
    unknown.map(({ where, name }) => `${where}: ${name}`),
    [],
    'variables that loadConfig never reads',
  )
})

test('every variable the compose file sets for the api, the distributors, the router, alarms and rules is one the schema reads', () => {
  const [compose] = readYaml<{ services: Record<string, { environment?: Record<string, unknown> }> }>(
    'docker-compose.yml',
  )
  const herald = Object.entries(compose?.services ?? {}).filter(([name]) => composeServiceScript(name))
  assert.equal(
    herald.length,
    4 + channels.length,
    'the api, one distributor per channel, the router, the alarms processor and the rules evaluator',
  )
  for (const [service, { environment }] of herald) {
    const names = Object.keys(environment ?? {})
    assert.ok(names.length > 10, `${service} sets ${names.length} variables`)
    for (const name of names)
      assert.ok(envVariableNames.includes(name), `compose ${service}: ${name} is not read by loadConfig`)
  }
})

test('the secret example is only an example: placeholders, and listed in no kustomization', () => {
  const secrets = k8sObjects('base/secret.example.yaml')
  assert.ok(secrets.every((s) => s.kind === 'Secret'))
  for (const secret of secrets) {
    for (const [name, value] of Object.entries(secret.stringData ?? {})) {
      const placeholder = /REPLACE|^AC0+$/.test(value)
      assert.ok(placeholder, `${secret.metadata.name}.${name} must hold a placeholder, not a value`)
    }
  }
  for (const file of k8sFiles().filter((f) => f.endsWith('kustomization.yaml'))) {
    const [kustomization] = k8sObjects(file) as unknown as Array<{ resources?: string[] }>
    for (const resource of kustomization?.resources ?? [])
      assert.doesNotMatch(resource, /secret\.example/, `${file} lists ${resource}`)
  }
})
