// Alarm events, routes and recipients for the router's unit tests, validated by the same schemas as the
// records the router reads, so a fixture cannot be something the router would never see.
import { type AlarmEvent, parseAlarmEvent } from '@herald/shared/alarm-events'
import {
  type Recipient,
  type Route,
  recipientSchema,
  routeSchema,
  type Template,
  templateSchema,
} from '@herald/shared/config-topics/schemas'
import { monascaEvent } from '../../test/support/alarm-events.ts'

/** monasca's event (definition D-1, ALARM, HIGH) with `overrides`, as the router decodes it. */
export function alarmEvent(overrides: Record<string, unknown> = {}): AlarmEvent {
  const parsed = parseAlarmEvent(
    monascaEvent({ alarmDefinitionId: 'D-1', labels: { team: 'db', env: 'prod' }, ...overrides }),
  )
  if (!parsed.ok) throw new Error(`fixture event refused: ${JSON.stringify(parsed.issues)}`)
  return parsed.event
}

export function route(name: string, fields: Partial<Omit<Route, 'name'>> = {}): Route {
  return routeSchema.parse({ match: { states: ['ALARM'] }, recipients: ['ann'], ...fields, name })
}

export function recipient(id: string, fields: Partial<Omit<Recipient, 'id'>> = {}): Recipient {
  return recipientSchema.parse({
    name: `Person ${id}`,
    email: `${id}@example.com`,
    phone: '+14155550123',
    slack: 'ops',
    channels: ['email', 'sms', 'slack'],
    ...fields,
    id,
  })
}

export function template(fields: Template): Template {
  return templateSchema.parse(fields)
}

/** A lookup by name, as the configuration stores give one. */
export function directory<T>(entries: Array<[string, T]>): (name: string) => T | undefined {
  const map = new Map(entries)
  return (name) => map.get(name)
}
