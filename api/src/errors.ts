// The api's error answers: JSON {error, message, details?} with a stable `error` code per status.
import { HeraldError } from '@herald/shared/errors'
import type { FieldIssue } from '@herald/shared/notification'

export class ApiError extends HeraldError {
  readonly status: number
  readonly headers: Record<string, string>

  constructor(
    status: number,
    code: string,
    message: string,
    options: { details?: unknown; headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(code, message, {
      ...(options.cause !== undefined ? { cause: options.cause } : {}),
      ...(options.details !== undefined ? { details: { list: options.details } } : {}),
    })
    this.status = status
    this.headers = options.headers ?? {}
  }

  get body(): { error: string; message: string; details?: unknown } {
    return {
      error: this.code,
      message: this.message,
      ...(this.details ? { details: this.details.list } : {}),
    }
  }
}

export const invalid = (issues: FieldIssue[]) =>
  new ApiError(400, 'invalid_request', issues.map((i) => `${i.field} ${i.reason}`).join('; '), {
    details: issues,
  })

/** The write could not be confirmed in time: the record may or may not be in Kafka. */
export const outcomeUnknown = (retryAfterSeconds: number, cause?: unknown) =>
  new ApiError(
    503,
    'unavailable',
    'the notification could not be confirmed by Kafka in time; outcome unknown — retry with the same Idempotency-Key',
    { headers: { 'retry-after': String(retryAfterSeconds) }, cause },
  )
