import { ForbiddenError, NotFoundError, RateLimitedError, UnauthorizedError, UnavailableError } from '../api'
import { useCountdown } from '../usePolling'

interface Props {
  error: Error
  /** When the automatic retry happens (ms epoch), if one is scheduled. */
  retryAt?: number
  onRetry?: () => void
  /** What failed, for the generic message ("Could not load recommendations"). */
  what?: string
}

/**
 * One error, described for people: rate limited, unavailable, not signed in, not allowed, not
 * found or the server's message.
 */
export function ErrorState({ error, retryAt, onRetry, what }: Props) {
  const seconds = useCountdown(retryAt)
  const retrying = seconds !== null ? (seconds > 0 ? `retrying in ${seconds} s` : 'retrying now') : null

  let kind = 'error'
  let title: string
  let detail: string | null = null
  if (error instanceof RateLimitedError) {
    kind = 'rate-limited'
    title = `Too many requests, ${retrying ?? 'try again in a moment'}.`
    detail = 'The API limits how fast one client may ask.'
  } else if (error instanceof UnavailableError) {
    kind = 'unavailable'
    title = 'The service is unavailable right now.'
    detail = retrying ? `It may be restarting; ${retrying}.` : error.message
  } else if (error instanceof UnauthorizedError) {
    kind = 'unauthorized'
    title = 'Please sign in again.'
    detail = error.message
  } else if (error instanceof ForbiddenError) {
    kind = 'forbidden'
    title = what ? `${what}: not allowed.` : 'Not allowed.'
    detail = error.message
  } else if (error instanceof NotFoundError) {
    kind = 'not-found'
    title = what ? `${what}: not found.` : 'Not found.'
    detail = error.message
  } else {
    title = what ? `${what}.` : 'Something went wrong.'
    detail = error.message
  }

  return (
    <div className={`notice notice-${kind}`} role="alert" data-error-kind={kind}>
      <p className="notice-title">{title}</p>
      {detail ? <p className="notice-detail">{detail}</p> : null}
      {onRetry && seconds === null ? (
        <button type="button" className="btn" onClick={onRetry}>
          Try again
        </button>
      ) : null}
    </div>
  )
}

export function Loading({ label }: { label: string }) {
  return (
    <p className="loading" role="status" aria-live="polite">
      <span className="spinner" aria-hidden="true" />
      {label}
    </p>
  )
}
