// Periodic re-notification (a route's `periodSeconds`, monasca's periodic engine) as pure state: which
// (alarm, route) pairs repeat, when each is next due, and when they stop. No timers and no I/O: the caller
// passes the time, produces the reminders, and persists the entries (plain JSON) so a restart neither
// loses the schedule nor bursts.
import { type AlarmEvent, hashedUuid } from '@herald/shared/alarm-events'
import type { Route } from '@herald/shared/config-topics/schemas'
import { routeMatches } from './match.ts'

/** The alarm an event is about: monasca's `alarmId` (one per alarm of a definition), else its name. */
export function alarmKeyOf(event: Pick<AlarmEvent, 'alarmId' | 'alarmName'>): string {
  return event.alarmId ?? event.alarmName
}

/** One (alarm, route) that repeats: what the caller persists, keyed by `entryKey`. */
export interface ReminderEntry {
  alarm: string
  route: string
  /** The event last notified on this route (its `newState` is the matched state); reminders repeat it. */
  event: AlarmEvent
  periodSeconds: number
  /** When the last notification of it went out (the first one or a reminder), in ms since the epoch. */
  lastSentAt: number
  /** Reminders sent so far. */
  sent: number
}

/** The notified event again, as a reminder (see `DueReminder`). */
export type ReminderEvent = AlarmEvent & { kind: 'reminder'; reminderOf: string; reminderNumber: number }

/** A reminder to produce now: `event` is planned and rendered for `route` like a consumed event. */
export interface DueReminder {
  alarm: string
  route: Route
  /** 1 for the first reminder of an event. */
  number: number
  /**
   * The notified event as a reminder: `kind: 'reminder'`, `reminderOf` (the event's id), `reminderNumber`,
   * and an `eventId` derived from (event id, route, number), so a reminder produced again after a crash
   * carries the same notification ids.
   */
  event: ReminderEvent
}

export interface ObserveResult {
  started: ReminderEntry[]
  stopped: ReminderEntry[]
}

export function entryKey(entry: Pick<ReminderEntry, 'alarm' | 'route'>): string {
  return JSON.stringify([entry.alarm, entry.route])
}

export class ReminderSchedule {
  /** Alarm → route name → entry. */
  readonly #alarms = new Map<string, Map<string, ReminderEntry>>()

  /** Starts from persisted entries (those `entries()` gave, possibly through JSON). */
  constructor(entries: Iterable<ReminderEntry> = []) {
    for (const entry of entries) this.#set({ ...entry })
  }

  #set(entry: ReminderEntry): void {
    const routes = this.#alarms.get(entry.alarm) ?? new Map<string, ReminderEntry>()
    routes.set(entry.route, entry)
    this.#alarms.set(entry.alarm, routes)
  }

  #delete(entry: ReminderEntry): void {
    const routes = this.#alarms.get(entry.alarm)
    routes?.delete(entry.route)
    if (routes?.size === 0) this.#alarms.delete(entry.alarm)
  }

  *#all(): Generator<ReminderEntry> {
    for (const routes of this.#alarms.values()) yield* routes.values()
  }

  /**
   * Follows an alarm's events, every one of them and in the order of the topic: `notified` are the routes
   * `event` was notified on (none when it was skipped). The alarm's schedule follows its latest event: its
   * entries stop, and each notified route with a period starts one, due a period after `nowMs`. The same
   * event again (a replay after a restart) keeps its entries as they are, and an event older than one the
   * schedule holds for the alarm changes nothing.
   */
  observe(event: AlarmEvent, notified: readonly Route[], nowMs: number): ObserveResult {
    const result: ObserveResult = { started: [], stopped: [] }
    const alarm = alarmKeyOf(event)
    const current = [...(this.#alarms.get(alarm)?.values() ?? [])]
    if (current.some((e) => e.event.timestamp > event.timestamp)) return result
    const kept = new Set<string>()
    for (const entry of current) {
      const again = entry.event.eventId === event.eventId && notified.some((r) => r.name === entry.route)
      if (again) {
        kept.add(entry.route)
        continue
      }
      this.#delete(entry)
      result.stopped.push(entry)
    }
    for (const route of notified) {
      if (route.periodSeconds === undefined || kept.has(route.name)) continue
      const entry: ReminderEntry = {
        alarm,
        route: route.name,
        event,
        periodSeconds: route.periodSeconds,
        lastSentAt: nowMs,
        sent: 0,
      }
      this.#set(entry)
      result.started.push(entry)
    }
    return result
  }

  /**
   * The reminders due at `nowMs`: at most one per entry, however many periods passed (a router that was
   * down does not burst). Routes are read as they are now: an entry whose route is gone, has no period any
   * more or no longer matches the event stops (`dropped`); a changed period applies from here on.
   * Nothing is marked sent: call `sent` once a reminder is produced.
   */
  due(
    nowMs: number,
    routeOf: (name: string) => Route | undefined,
  ): { due: DueReminder[]; dropped: ReminderEntry[] } {
    const due: DueReminder[] = []
    const dropped: ReminderEntry[] = []
    for (const entry of [...this.#all()]) {
      const route = routeOf(entry.route)
      if (route?.periodSeconds === undefined || !routeMatches(route, entry.event)) {
        this.#delete(entry)
        dropped.push(entry)
        continue
      }
      entry.periodSeconds = route.periodSeconds
      if (nowMs < dueAt(entry)) continue
      const number = entry.sent + 1
      const eventId = hashedUuid(['reminder', entry.event.eventId, entry.route, number])
      due.push({
        alarm: entry.alarm,
        route,
        number,
        event: {
          ...entry.event,
          kind: 'reminder',
          eventId,
          reminderOf: entry.event.eventId,
          reminderNumber: number,
        },
      })
    }
    return { due, dropped }
  }

  /**
   * Records that `reminder` went out at `atMs`; the next is due a period later. Returns the entry to
   * persist, or undefined when the reminder is stale (its alarm moved on, or it was recorded already).
   */
  sent(reminder: DueReminder, atMs: number): ReminderEntry | undefined {
    const entry = this.#alarms.get(reminder.alarm)?.get(reminder.route.name)
    if (entry === undefined || entry.event.eventId !== reminder.event.reminderOf) return undefined
    if (entry.sent !== reminder.number - 1) return undefined
    entry.sent = reminder.number
    entry.lastSentAt = atMs
    return { ...entry }
  }

  /** When the earliest entry is next due (with the periods last read), or undefined when none repeats. */
  nextDueAt(): number | undefined {
    let next: number | undefined
    for (const entry of this.#all()) next = Math.min(next ?? Infinity, dueAt(entry))
    return next
  }

  /** How many (alarm, route) entries repeat. */
  get size(): number {
    let size = 0
    for (const routes of this.#alarms.values()) size += routes.size
    return size
  }

  /** Every entry, as plain JSON-able objects (copies). */
  entries(): ReminderEntry[] {
    return [...this.#all()].map((e) => ({ ...e }))
  }
}

const dueAt = (entry: ReminderEntry) => entry.lastSentAt + entry.periodSeconds * 1000
