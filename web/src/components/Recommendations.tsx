import { useCallback, useEffect, useRef, useState } from 'react'
import { TIER_LABELS, type ApiClient, type Movie, type Recommendations as Recs, type Tier } from '../api'
import { usePolling } from '../usePolling'
import { ErrorState, Loading } from './ErrorState'
import { MovieMeta } from './MovieMeta'
import { TierBadge } from './TierBadge'

export interface RecommendationsProps {
  api: ApiClient
  userId: string
  /** Poll every 2 s (fastIntervalMs) until this time, after a user action. */
  fastUntil: number
  intervalMs?: number
  fastIntervalMs?: number
  limit?: number
  onOpen: (movie: Movie, requestId: string) => void
  /** Called when the list changed on its own (not on first load). */
  onUpdate?: (update: RecsUpdate) => void
}

export interface RecsUpdate {
  at: number
  fromTier: Tier
  toTier: Tier
}

function signature(r: Recs): string {
  return r.items.map((i) => i.movie.movieId).join(',')
}

/** The user's recommendations, polled, with the tier behind each and an "updated" indicator. */
export function Recommendations({
  api,
  userId,
  fastUntil,
  intervalMs = 15_000,
  fastIntervalMs = 2_000,
  limit = 20,
  onOpen,
  onUpdate,
}: RecommendationsProps) {
  const fetcher = useCallback(
    (signal: AbortSignal) => api.getRecommendations(userId, { limit }, signal),
    [api, userId, limit],
  )
  const { data, error, loading, retryAt, refresh } = usePolling(userId, fetcher, {
    intervalMs,
    fastIntervalMs,
    fastUntil,
  })

  const [update, setUpdate] = useState<RecsUpdate | null>(null)
  const prev = useRef<{ sig: string; tier: Tier; user: string } | null>(null)
  const onUpdateRef = useRef(onUpdate)
  onUpdateRef.current = onUpdate

  useEffect(() => {
    if (!data) return
    const sig = signature(data)
    const before = prev.current
    prev.current = { sig, tier: data.tier, user: userId }
    if (before && before.user === userId && before.sig !== sig) {
      const u = { at: Date.now(), fromTier: before.tier, toTier: data.tier }
      setUpdate(u)
      onUpdateRef.current?.(u)
    }
  }, [data, userId])

  useEffect(() => {
    setUpdate(null)
    prev.current = null
  }, [userId])

  // A cache hit does not say which tier computed the list; remember the last computed one.
  const computed = useRef<{ sig: string; tier: Tier } | null>(null)
  let cachedFrom: Tier | null = null
  if (data) {
    const sig = signature(data)
    if (data.tier !== 'TIER_CACHE') computed.current = { sig, tier: data.tier }
    else if (computed.current?.sig === sig) cachedFrom = computed.current.tier
  }

  // The "updated" highlight fades after a few seconds; the note stays.
  const [fresh, setFresh] = useState(false)
  useEffect(() => {
    if (!update) return
    setFresh(true)
    const t = setTimeout(() => setFresh(false), 4000)
    return () => clearTimeout(t)
  }, [update])

  return (
    <section className="recs" aria-labelledby="recs-title" aria-busy={loading || undefined}>
      <div className="section-head">
        <h2 id="recs-title">Recommended for you</h2>
        {data ? (
          <p className="served-by">
            Served by <TierBadge tier={data.tier} />
            {cachedFrom ? <span className="muted small">(a cached {TIER_LABELS[cachedFrom]} list)</span> : null}
            {data.modelVersion ? <span className="muted small"> model {data.modelVersion}</span> : null}
          </p>
        ) : null}
      </div>

      <div aria-live="polite" className="live-note">
        {update ? (
          <p className={`updated ${fresh ? 'updated-fresh' : ''}`} data-testid="recs-updated">
            <span className="dot" aria-hidden="true" />
            Updated {new Date(update.at).toLocaleTimeString()}
            {update.fromTier !== update.toTier ? (
              <>
                {' '}
                · {TIER_LABELS[update.fromTier]} → {TIER_LABELS[update.toTier]}
              </>
            ) : null}
          </p>
        ) : null}
      </div>

      {error ? <ErrorState error={error} retryAt={retryAt} onRetry={refresh} what="Could not load recommendations" /> : null}
      {loading && !data ? <Loading label="Loading recommendations…" /> : null}

      {data && data.items.length === 0 ? (
        <p className="empty">No recommendations yet. Rate a few movies from the catalogue to get some.</p>
      ) : null}

      {data && data.items.length > 0 ? (
        <ol className={`movie-grid ${fresh ? 'is-fresh' : ''}`} data-request-id={data.requestId}>
          {data.items.map((item) => (
            <li key={item.movie.movieId} className="movie-card" data-movie-id={item.movie.movieId}>
              <div className="card-top">
                <span className="rank">
                  <span className="visually-hidden">Rank </span>
                  {item.position + 1}
                </span>
                <TierBadge tier={item.tier} prefix="Tier:" />
              </div>
              <h3 className="movie-title">
                <button type="button" className="link-button" onClick={() => onOpen(item.movie, data.requestId)}>
                  {item.movie.title}
                </button>
              </h3>
              <MovieMeta movie={item.movie} />
              {item.reason ? <p className="reason">{item.reason}</p> : null}
            </li>
          ))}
        </ol>
      ) : null}
    </section>
  )
}
