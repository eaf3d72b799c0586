import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { matchingRoutes, routeMatches } from '@herald/router/match'
import { alarmEvent, route } from './fixtures.ts'

describe('routeMatches', () => {
  test('a route with only states matches every event in one of those states', () => {
    const onAlarm = route('r', { match: { states: ['ALARM', 'UNDETERMINED'] } })
    assert.equal(routeMatches(onAlarm, alarmEvent()), true)
    assert.equal(routeMatches(onAlarm, alarmEvent({ newState: 'UNDETERMINED' })), true)
    assert.equal(routeMatches(onAlarm, alarmEvent({ newState: 'OK', oldState: 'ALARM' })), false)
  })

  test('the alarm name must be equal, case included', () => {
    const byName = route('r', { match: { states: ['ALARM'], alarmName: 'disk usage high' } })
    assert.equal(routeMatches(byName, alarmEvent()), true)
    assert.equal(routeMatches(byName, alarmEvent({ alarmName: 'Disk usage high' })), false)
  })

  test('a definition id must be equal, and an event without one does not match it', () => {
    const byDefinition = route('r', { match: { states: ['ALARM'], alarmDefinitionId: 'D-1' } })
    assert.equal(routeMatches(byDefinition, alarmEvent()), true)
    assert.equal(routeMatches(byDefinition, alarmEvent({ alarmDefinitionId: 'D-2' })), false)
    assert.equal(routeMatches(byDefinition, alarmEvent({ alarmDefinitionId: undefined })), false)
  })

  test("every label of the route must be on the event with the same value; the event's others do not matter", () => {
    const labelled = (labels: Record<string, string>) => route('r', { match: { states: ['ALARM'], labels } })
    assert.equal(routeMatches(labelled({ team: 'db' }), alarmEvent()), true)
    assert.equal(routeMatches(labelled({ team: 'db', env: 'prod' }), alarmEvent()), true)
    assert.equal(routeMatches(labelled({ team: 'web' }), alarmEvent()), false)
    assert.equal(routeMatches(labelled({ team: 'db', region: 'eu' }), alarmEvent()), false)
    assert.equal(routeMatches(labelled({ team: 'db' }), alarmEvent({ labels: undefined })), false)
    assert.equal(routeMatches(labelled({}), alarmEvent({ labels: undefined })), true)
  })

  test('severity matches ignoring case, and an event without a severity does not match a route that names some', () => {
    const severe = route('r', { match: { states: ['ALARM'], severity: ['high', 'Critical'] } })
    assert.equal(routeMatches(severe, alarmEvent({ severity: 'HIGH' })), true)
    assert.equal(routeMatches(severe, alarmEvent({ severity: 'critical' })), true)
    assert.equal(routeMatches(severe, alarmEvent({ severity: 'LOW' })), false)
    assert.equal(routeMatches(severe, alarmEvent({ severity: null })), false)
    assert.equal(routeMatches(severe, alarmEvent({ severity: undefined })), false)
  })

  test('every criterion given must hold at once', () => {
    const all = route('r', {
      match: {
        states: ['ALARM'],
        alarmName: 'disk usage high',
        alarmDefinitionId: 'D-1',
        labels: { team: 'db' },
        severity: ['HIGH'],
      },
    })
    assert.equal(routeMatches(all, alarmEvent()), true)
    for (const miss of [
      { newState: 'OK' },
      { alarmName: 'other' },
      { alarmDefinitionId: 'D-2' },
      { labels: { team: 'web' } },
      { severity: 'LOW' },
    ]) {
      assert.equal(routeMatches(all, alarmEvent(miss)), false, JSON.stringify(miss))
    }
  })
})

describe('matchingRoutes', () => {
  test('returns the matching routes by name, whatever the order given', () => {
    const routes = [
      route('zeta'),
      route('ok-only', { match: { states: ['OK'] } }),
      route('alpha', { match: { states: ['ALARM'], alarmDefinitionId: 'D-1' } }),
      route('other-definition', { match: { states: ['ALARM'], alarmDefinitionId: 'D-2' } }),
    ]
    const names = (event = alarmEvent()) => matchingRoutes(event, routes).map((r) => r.name)
    assert.deepEqual(names(), ['alpha', 'zeta'])
    assert.deepEqual(
      matchingRoutes(alarmEvent(), routes.toReversed()).map((r) => r.name),
      ['alpha', 'zeta'],
    )
    assert.deepEqual(names(alarmEvent({ newState: 'OK', oldState: 'ALARM' })), ['ok-only'])
  })

  test('no routes, no match', () => {
    assert.deepEqual(matchingRoutes(alarmEvent(), []), [])
  })
})
