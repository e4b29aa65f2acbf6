import { useCallback } from 'react'
import type { ApiClient } from '../api'
import { usePolling } from '../usePolling'

interface Props {
  api: ApiClient
  userId: string
  fastUntil: number
}

/** What the system knows about the user, polled like the recommendations. */
export function ProfileSummary({ api, userId, fastUntil }: Props) {
  const fetcher = useCallback((signal: AbortSignal) => api.getProfile(userId, signal), [api, userId])
  const { data } = usePolling(userId, fetcher, { intervalMs: 15_000, fastIntervalMs: 2_000, fastUntil })
  if (!data) return null
  return (
    <dl className="profile" aria-label="Your profile">
      <div>
        <dt>Interactions</dt>
        <dd data-testid="interaction-count">{data.interactionCount}</dd>
      </div>
      <div>
        <dt>Ratings</dt>
        <dd>{data.ratingCount}</dd>
      </div>
      <div>
        <dt>Personalised</dt>
        <dd>{data.hasPreferenceVector ? 'Yes' : 'Not yet'}</dd>
      </div>
      {data.topGenres.length ? (
        <div>
          <dt>Top genres</dt>
          <dd>{data.topGenres.slice(0, 3).join(', ')}</dd>
        </div>
      ) : null}
    </dl>
  )
}
