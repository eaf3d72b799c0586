import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ruleSchema } from '@herald/shared/rules/schemas'
import { Ajv2020 } from 'ajv/dist/2020.js'
import { buildOpenApi } from '../src/openapi.ts'
import { ruleRouteOf, ruleRouteTable } from '../src/routes/rules.ts'

interface Operation {
  requestBody?: { required?: boolean; content: Record<string, { schema: object }> }
  responses: Record<string, unknown>
  parameters?: Array<{ name: string; schema: Record<string, unknown> }>
}
const doc = JSON.parse(JSON.stringify(buildOpenApi({ maxBatch: 3 }))) as {
  components: Record<string, unknown>
  paths: Record<string, Record<string, Operation>>
}

function validatorOf(schema: object) {
  return new Ajv2020({ strict: false, allErrors: true }).compile({ ...schema, components: doc.components })
}

test('every rule route of the route table is documented with its methods, and only those', () => {
  const documented = Object.entries(doc.paths)
    .filter(([path]) => path.startsWith('/api/v1/rules'))
    .map(([path, item]) => [
      path.replace('{name}', ':name'),
      Object.keys(item)
        .map((m) => m.toUpperCase())
        .sort(),
    ])
  assert.deepEqual(
    documented.sort(),
    Object.entries(ruleRouteTable)
      .map(([path, methods]) => [path, [...methods].sort()])
      .sort(),
  )
})

test('request paths map to their route templates (metric labels, 405s) and nothing else does', () => {
  assert.equal(ruleRouteOf('/api/v1/rules'), '/api/v1/rules')
  assert.equal(ruleRouteOf('/api/v1/rules/disk-full'), '/api/v1/rules/:name')
  assert.equal(ruleRouteOf('/api/v1/rules/disk/evaluate'), undefined)
  assert.equal(ruleRouteOf('/api/v1/rulesets'), undefined)
  assert.equal(ruleRouteOf('/api/v1/routes/disk'), undefined)
})

test('writes are documented as admin-only; the list pages by 50, at most 500, filtered by source', () => {
  const item = doc.paths['/api/v1/rules/{name}']
  for (const method of ['put', 'delete']) assert.ok(item?.[method]?.responses['403'], method)
  assert.ok(item?.put?.responses['201'] && item.put.responses['200'])
  assert.ok(item?.get?.responses['404'] && item.delete?.responses['404'])
  const list = doc.paths['/api/v1/rules']?.get
  const limit = list?.parameters?.find((p) => p.name === 'limit')?.schema
  assert.deepEqual([limit?.default, limit?.minimum, limit?.maximum], [50, 1, 500])
  assert.deepEqual(
    list?.parameters?.map((p) => p.name),
    ['source', 'limit', 'cursor'],
  )
  assert.deepEqual(list?.parameters?.[0]?.schema.enum, ['prometheus', 'alerts-engine'])
})

test('the documented rule accepts what the api accepts and refuses what it refuses for a stated reason', () => {
  const schema = doc.paths['/api/v1/rules/{name}']?.put?.requestBody?.content['application/json']?.schema
  assert.ok(schema)
  const validate = validatorOf(schema)
  const full = {
    name: 'disk',
    source: 'alerts-engine',
    query: 'disk',
    intervalSecs: 30,
    repeatIntervalSecs: 600,
    sustainSecs: 0,
    comparison: 'below',
    warn: { value: 0.2, message: 'disk low' },
    critical: { value: 0.1, message: 'disk very low' },
    labels: { team: 'storage' },
  }
  const minimal = {
    query: 'up',
    intervalSecs: 10,
    repeatIntervalSecs: 60,
    critical: { value: 0, message: 'x' },
  }
  for (const value of [full, { ...minimal, name: 'up' }]) {
    assert.ok(ruleSchema.safeParse(value).success, `the api accepts ${JSON.stringify(value)}`)
    assert.ok(validate(value), JSON.stringify(validate.errors))
  }
  // The api takes the name from the path; the document only requires what the body must hold.
  assert.ok(validate(minimal), JSON.stringify(validate.errors))
  for (const value of [
    { ...full, unknown: 1 },
    { ...full, source: 'graphite' },
    { ...full, comparison: 'over' },
    { ...full, intervalSecs: 0 },
    { ...full, repeatIntervalSecs: 1.5 },
    { ...full, warn: { value: 'high', message: 'x' } },
    { ...full, query: undefined },
  ]) {
    assert.equal(ruleSchema.safeParse(value).success, false, `the api refuses ${JSON.stringify(value)}`)
    assert.equal(validate(value), false, `the document refuses ${JSON.stringify(value)}`)
  }
})

test('a rule as shown (GET) has the rule, who wrote it and the state of its alarm', () => {
  const view = validatorOf({ $ref: '#/components/schemas/RuleView' })
  const shown = {
    name: 'disk',
    rule: {
      name: 'disk',
      source: 'prometheus',
      query: 'q',
      intervalSecs: 10,
      repeatIntervalSecs: 60,
      comparison: 'above',
      warn: { value: 1, message: 'x' },
    },
    audit: { user: 'ops', source: 'api', host: 'api-1' },
    alarm: { activation: null, effective: null, queryFailing: false },
  }
  assert.ok(view(shown), JSON.stringify(view.errors))
  assert.ok(view({ ...shown, audit: null, alarm: null }), JSON.stringify(view.errors))
  assert.equal(view({ ...shown, alarm: { activation: null, effective: null } }), false)
})
