import { useEffect, useRef, useState, type FormEvent } from 'react'
import type { ApiClient, Session } from '../api'
import type { EndReason } from '../session'
import { ErrorState } from './ErrorState'

interface Props {
  api: ApiClient
  /** Called once the API issued a token (it is already stored). */
  onSignedIn?: (session: Session) => void
  /** A user id to fill in (?user=ID in the URL). */
  initialUserId?: string
  /** Why the last session ended, to say so above the forms. */
  ended?: EndReason | null
}

const MAX_NAME = 100

const ENDED: Record<EndReason, string> = {
  'signed-out': 'You signed out.',
  expired: 'Your session expired. Sign in again to continue.',
  rejected: 'The API did not accept your session (it may have expired). Sign in again to continue.',
}

/**
 * Sign in (POST /v1/sessions): as an existing user by id, or as a new user with a display name.
 * The local stack's development issuer signs a token for any user, so there is no password.
 */
export function SignIn({ api, onSignedIn, initialUserId = '', ended }: Props) {
  const [id, setId] = useState(initialUserId)
  const [name, setName] = useState('')
  const [idInvalid, setIdInvalid] = useState(false)
  const [nameInvalid, setNameInvalid] = useState(false)
  const [busy, setBusy] = useState<'existing' | 'new' | null>(null)
  const [error, setError] = useState<Error | null>(null)
  const headingRef = useRef<HTMLHeadingElement>(null)

  // When a session just ended (not on first visit), move focus here so the change is announced.
  useEffect(() => {
    if (ended) headingRef.current?.focus()
  }, [ended])

  const signIn = async (which: 'existing' | 'new', who: { userId: string } | { displayName: string }) => {
    setBusy(which)
    setError(null)
    try {
      const session = await api.signIn(who)
      onSignedIn?.(session)
    } catch (err) {
      setError(err as Error)
      setBusy(null)
    }
  }

  const submitExisting = (e: FormEvent) => {
    e.preventDefault()
    const trimmed = id.trim()
    const ok = /^[1-9]\d{0,18}$/.test(trimmed)
    setIdInvalid(!ok)
    if (ok) signIn('existing', { userId: trimmed })
  }

  const submitNew = (e: FormEvent) => {
    e.preventDefault()
    const trimmed = name.trim()
    const ok = trimmed.length > 0 && trimmed.length <= MAX_NAME
    setNameInvalid(!ok)
    if (ok) signIn('new', { displayName: trimmed })
  }

  return (
    <section className="picker card" aria-labelledby="signin-title">
      <h2 id="signin-title" ref={headingRef} tabIndex={-1}>
        Sign in
      </h2>
      {ended ? (
        <p className={`notice notice-${ended === 'signed-out' ? 'info' : 'ended'}`} role="status" data-testid="session-ended">
          {ENDED[ended]}
        </p>
      ) : null}
      <p className="muted">
        Sign in as an existing user to see that user&rsquo;s recommendations, or create a new user. The local stack
        signs you in without a password.
      </p>

      <form onSubmit={submitExisting} className="picker-form" noValidate aria-label="Existing user">
        <label htmlFor="user-id">User id</label>
        <div className="row">
          <input
            id="user-id"
            name="user-id"
            inputMode="numeric"
            autoComplete="off"
            value={id}
            onChange={(e) => setId(e.target.value)}
            aria-invalid={idInvalid || undefined}
            aria-describedby={idInvalid ? 'user-id-error' : undefined}
            placeholder="e.g. 42"
          />
          <button type="submit" className="btn btn-primary" disabled={busy !== null}>
            {busy === 'existing' ? 'Signing in…' : 'Sign in'}
          </button>
        </div>
        {idInvalid ? (
          <p id="user-id-error" className="field-error">
            A user id is a positive whole number.
          </p>
        ) : null}
      </form>

      <div className="picker-or" aria-hidden="true">
        or
      </div>

      <form onSubmit={submitNew} className="picker-form" noValidate aria-label="New user">
        <label htmlFor="display-name">Your name, for a new user</label>
        <div className="row">
          <input
            id="display-name"
            name="display-name"
            autoComplete="nickname"
            maxLength={MAX_NAME}
            value={name}
            onChange={(e) => setName(e.target.value)}
            aria-invalid={nameInvalid || undefined}
            aria-describedby={nameInvalid ? 'display-name-error' : undefined}
            placeholder="e.g. Ada"
          />
          <button type="submit" className="btn btn-secondary" disabled={busy !== null}>
            {busy === 'new' ? 'Creating…' : 'Create user and sign in'}
          </button>
        </div>
        {nameInvalid ? (
          <p id="display-name-error" className="field-error">
            Give the new user a name (at most {MAX_NAME} characters).
          </p>
        ) : null}
      </form>

      {error ? <ErrorState error={error} what="Could not sign in" /> : null}
    </section>
  )
}
