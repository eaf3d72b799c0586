// Herald's error base: a stable `code`, whether retrying can help, and the cause.

export interface HeraldErrorOptions {
  retryable?: boolean
  cause?: unknown
  details?: Record<string, unknown>
}

export class HeraldError extends Error {
  readonly code: string
  readonly retryable: boolean
  readonly details: Record<string, unknown> | undefined

  constructor(code: string, message: string, options: HeraldErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = new.target.name
    this.code = code
    this.retryable = options.retryable ?? false
    this.details = options.details
  }
}

/** One or more environment variables are missing or invalid. */
export class ConfigError extends HeraldError {
  readonly problems: string[]
  constructor(problems: string[]) {
    super('HERALD_CONFIG_INVALID', `invalid configuration:\n  ${problems.join('\n  ')}`)
    this.problems = problems
  }
}

/** A topic exists with settings Herald cannot work with (e.g. another partition count). */
export class TopicMismatchError extends HeraldError {
  constructor(message: string, details: Record<string, unknown>) {
    super('HERALD_TOPIC_MISMATCH', message, { details })
  }
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
