// docker-compose.yml cannot run here (no Docker engine), so it is checked against the code it must match:
// the broker settings of dev/kafka/broker.properties, the Kafka version of dev/kafka/pom.xml, and the
// environment variables the config schema reads.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { envVariableNames } from '@herald/shared/config'
import { kafkaVersion, readBrokerProperties } from '../../dev/lib/kafka.ts'
import { repoRoot } from '../../dev/lib/process.ts'

const compose = readFileSync(join(repoRoot, 'docker-compose.yml'), 'utf8')

/** KAFKA_* settings of the kafka service, as written in the compose file. */
function composeKafkaEnv(): Map<string, string> {
  const env = new Map<string, string>()
  for (const match of compose.matchAll(/^\s+(KAFKA_[A-Z0-9_]+):\s*"?([^"\n]*)"?\s*$/gm)) {
    env.set(match[1] ?? '', (match[2] ?? '').trim())
  }
  return env
}

test('the compose broker has every setting of dev/kafka/broker.properties, with the same value', () => {
  const env = composeKafkaEnv()
  for (const [key, value] of readBrokerProperties()) {
    const name = `KAFKA_${key.toUpperCase().replaceAll('.', '_')}`
    assert.equal(env.get(name), value, `${name} (from ${key})`)
  }
})

test('the compose broker image is the Kafka version the local broker runs', () => {
  assert.match(compose, new RegExp(`image: apache/kafka:${kafkaVersion().replaceAll('.', '\\.')}\\n`))
})

test('every variable the compose file sets for Herald is one the config schema reads', () => {
  const block = compose.slice(compose.indexOf('x-herald-env:'), compose.indexOf('x-distributor:'))
  const names = [...block.matchAll(/^ {2}([A-Z][A-Z0-9_]+):/gm)].map((m) => m[1])
  assert.ok(names.length > 10)
  for (const name of names)
    assert.ok(envVariableNames.includes(name ?? ''), `${name} is not read by loadConfig`)
})
