import { useEffect, useRef, useState, type FormEvent, type KeyboardEvent } from 'react'
import { EVENT_LABELS, type ApiClient, type EventType, type Movie, type SimilarMovies } from '../api'
import { ErrorState, Loading } from './ErrorState'
import { MovieMeta } from './MovieMeta'
import { StarRating } from './StarRating'

interface Props {
  api: ApiClient
  userId: string
  movie: Movie
  /** The serve's requestId when the movie was opened from the recommendations. */
  requestId?: string
  onClose: () => void
  onOpenMovie: (movie: Movie) => void
  /** Called after an event was accepted (so recommendations poll faster). */
  onEventPosted: (type: EventType) => void
}

const FOCUSABLE = 'button:not([disabled]), [href], input:not([disabled]), select, textarea, [tabindex]:not([tabindex="-1"])'

/** A modal with one movie: rate, like, dislike, watch, and its similar movies. Escape closes it. */
export function MovieDialog({ api, userId, movie, requestId, onClose, onOpenMovie, onEventPosted }: Props) {
  const dialogRef = useRef<HTMLDivElement>(null)
  const closeRef = useRef<HTMLButtonElement>(null)
  const [rating, setRating] = useState<number | null>(null)
  const [posting, setPosting] = useState<EventType | null>(null)
  const [done, setDone] = useState<string | null>(null)
  const [postError, setPostError] = useState<Error | null>(null)
  const [similar, setSimilar] = useState<SimilarMovies | null>(null)
  const [similarError, setSimilarError] = useState<Error | null>(null)

  // Focus moves into the dialog and back to where it was when the dialog closes.
  useEffect(() => {
    const before = document.activeElement as HTMLElement | null
    closeRef.current?.focus()
    return () => before?.focus?.()
  }, [])

  useEffect(() => {
    setRating(null)
    setDone(null)
    setPostError(null)
    setSimilar(null)
    setSimilarError(null)
    closeRef.current?.focus()
    const controller = new AbortController()
    api
      .getSimilarMovies(movie.movieId, 8, controller.signal, userId)
      .then(setSimilar)
      .catch((err: Error) => err.name !== 'AbortError' && setSimilarError(err))
    return () => controller.abort()
  }, [api, movie.movieId, userId])

  // Escape closes the dialog wherever focus is (a button that just got disabled drops it to body).
  const onCloseRef = useRef(onClose)
  onCloseRef.current = onClose
  useEffect(() => {
    const onEscape = (e: globalThis.KeyboardEvent) => {
      if (e.key === 'Escape') {
        e.preventDefault()
        onCloseRef.current()
      }
    }
    document.addEventListener('keydown', onEscape)
    return () => document.removeEventListener('keydown', onEscape)
  }, [])

  const onKeyDown = (e: KeyboardEvent) => {
    if (e.key !== 'Tab' || !dialogRef.current) return
    const nodes = Array.from(dialogRef.current.querySelectorAll<HTMLElement>(FOCUSABLE))
    if (nodes.length === 0) return
    const first = nodes[0]
    const last = nodes[nodes.length - 1]
    if (e.shiftKey && document.activeElement === first) {
      e.preventDefault()
      last.focus()
    } else if (!e.shiftKey && document.activeElement === last) {
      e.preventDefault()
      first.focus()
    }
  }

  const post = async (type: EventType, value?: number) => {
    setPosting(type)
    setPostError(null)
    setDone(null)
    try {
      await api.postEvent({ userId, movieId: movie.movieId, type, rating: value, requestId })
      setDone(
        type === 'EVENT_TYPE_RATE'
          ? `Rated ${value} ★. Your recommendations will update in a few seconds.`
          : `${EVENT_LABELS[type]}. Your recommendations will update in a few seconds.`,
      )
      onEventPosted(type)
    } catch (err) {
      setPostError(err as Error)
    } finally {
      setPosting(null)
    }
  }

  const submitRating = (e: FormEvent) => {
    e.preventDefault()
    if (rating !== null) post('EVENT_TYPE_RATE', rating)
  }

  return (
    <div className="backdrop" onMouseDown={(e) => e.target === e.currentTarget && onClose()}>
      <div
        ref={dialogRef}
        className="dialog"
        role="dialog"
        aria-modal="true"
        aria-labelledby="dialog-title"
        onKeyDown={onKeyDown}
      >
        <header className="dialog-head">
          <div>
            <h2 id="dialog-title">{movie.title}</h2>
            <MovieMeta movie={movie} />
            {requestId ? <p className="muted small">From your recommendations</p> : null}
          </div>
          <button ref={closeRef} type="button" className="btn btn-icon" onClick={onClose} aria-label="Close">
            ✕
          </button>
        </header>

        <form className="rate-form" onSubmit={submitRating}>
          <fieldset>
            <legend>Your rating</legend>
            <StarRating value={rating} onChange={setRating} name={`rating-${movie.movieId}`} />
            <button type="submit" className="btn btn-primary" disabled={rating === null || posting !== null}>
              {rating === null ? 'Rate' : `Rate ${rating} ★`}
            </button>
          </fieldset>
        </form>

        <div className="actions" role="group" aria-label="Actions">
          <button type="button" className="btn" disabled={posting !== null} onClick={() => post('EVENT_TYPE_LIKE')}>
            <span aria-hidden="true" className="icon">♥</span> Like
          </button>
          <button type="button" className="btn" disabled={posting !== null} onClick={() => post('EVENT_TYPE_DISLIKE')}>
            <span aria-hidden="true" className="icon">⊘</span> Dislike
          </button>
          <button type="button" className="btn" disabled={posting !== null} onClick={() => post('EVENT_TYPE_WATCH')}>
            <span aria-hidden="true" className="icon">▶</span> Watch
          </button>
        </div>

        <div aria-live="polite">
          {posting ? <Loading label="Saving…" /> : null}
          {done ? (
            <p className="success" role="status">
              {done}
            </p>
          ) : null}
        </div>
        {postError ? <ErrorState error={postError} what="Could not save that" /> : null}

        <section className="similar" aria-labelledby="similar-title">
          <h3 id="similar-title">Similar movies</h3>
          {similarError ? <ErrorState error={similarError} what="Could not load similar movies" /> : null}
          {!similar && !similarError ? <Loading label="Loading similar movies…" /> : null}
          {similar && similar.items.length === 0 ? <p className="empty">No similar movies known yet.</p> : null}
          {similar && similar.items.length > 0 ? (
            <ul className="similar-list">
              {similar.items.map((s) => (
                <li key={s.movie.movieId}>
                  <button type="button" className="link-button" onClick={() => onOpenMovie(s.movie)}>
                    {s.movie.title}
                  </button>{' '}
                  <span className="muted small">
                    {s.movie.year ? `${s.movie.year} · ` : ''}
                    {s.movie.genres.slice(0, 3).join(', ')}
                  </span>
                </li>
              ))}
            </ul>
          ) : null}
        </section>
      </div>
    </div>
  )
}
