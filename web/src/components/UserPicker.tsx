import { useState, type FormEvent } from 'react'
import type { ApiClient } from '../api'
import { ErrorState } from './ErrorState'

interface Props {
  api: ApiClient
  onChoose: (userId: string) => void
}

/** Choose a user by id, or start as a new one (POST /v1/users). */
export function UserPicker({ api, onChoose }: Props) {
  const [id, setId] = useState('')
  const [invalid, setInvalid] = useState(false)
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<Error | null>(null)

  const submit = (e: FormEvent) => {
    e.preventDefault()
    const trimmed = id.trim()
    if (!/^[1-9]\d{0,18}$/.test(trimmed)) {
      setInvalid(true)
      return
    }
    setInvalid(false)
    onChoose(trimmed)
  }

  const startNew = async () => {
    setBusy(true)
    setError(null)
    try {
      const userId = await api.createUser('web user')
      onChoose(userId)
    } catch (err) {
      setError(err as Error)
    } finally {
      setBusy(false)
    }
  }

  return (
    <section className="picker card" aria-labelledby="picker-title">
      <h2 id="picker-title">Who is watching?</h2>
      <p className="muted">Enter a user id to see that user&rsquo;s recommendations, or start fresh.</p>
      <form onSubmit={submit} className="picker-form" noValidate>
        <label htmlFor="user-id">User id</label>
        <div className="row">
          <input
            id="user-id"
            name="user-id"
            inputMode="numeric"
            autoComplete="off"
            value={id}
            onChange={(e) => setId(e.target.value)}
            aria-invalid={invalid || undefined}
            aria-describedby={invalid ? 'user-id-error' : undefined}
            placeholder="e.g. 42"
          />
          <button type="submit" className="btn btn-primary">
            Show recommendations
          </button>
        </div>
        {invalid ? (
          <p id="user-id-error" className="field-error">
            A user id is a positive whole number.
          </p>
        ) : null}
      </form>
      <div className="picker-or" aria-hidden="true">
        or
      </div>
      <button type="button" className="btn btn-secondary" onClick={startNew} disabled={busy}>
        {busy ? 'Creating…' : 'Start as a new user'}
      </button>
      {error ? <ErrorState error={error} what="Could not create a user" /> : null}
    </section>
  )
}
