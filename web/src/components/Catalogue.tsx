import { useEffect, useState, type FormEvent } from 'react'
import type { ApiClient, Movie, MoviePage } from '../api'
import { ErrorState, Loading } from './ErrorState'
import { MovieMeta } from './MovieMeta'

/** The MovieLens genres; the list grows with any other genre seen in the catalogue. */
export const GENRES = [
  'Action',
  'Adventure',
  'Animation',
  'Children',
  'Comedy',
  'Crime',
  'Documentary',
  'Drama',
  'Fantasy',
  'Film-Noir',
  'Horror',
  'IMAX',
  'Musical',
  'Mystery',
  'Romance',
  'Sci-Fi',
  'Thriller',
  'War',
  'Western',
]

interface Props {
  api: ApiClient
  onOpen: (movie: Movie) => void
  pageSize?: number
}

interface Query {
  query: string
  genre: string
  /** Tokens of the pages before the current one; the current page's token is last. */
  tokens: string[]
}

/** Browse and search the catalogue: title words, one genre, pages. */
export function Catalogue({ api, onOpen, pageSize = 20 }: Props) {
  const [text, setText] = useState('')
  const [genre, setGenre] = useState('')
  const [q, setQ] = useState<Query>({ query: '', genre: '', tokens: [''] })
  const [page, setPage] = useState<MoviePage | null>(null)
  const [error, setError] = useState<Error | null>(null)
  const [loading, setLoading] = useState(true)
  const [attempt, setAttempt] = useState(0)
  const [genres, setGenres] = useState<string[]>(GENRES)

  useEffect(() => {
    const controller = new AbortController()
    setLoading(true)
    setError(null)
    api
      .listMovies({ query: q.query, genre: q.genre, pageSize, pageToken: q.tokens[q.tokens.length - 1] }, controller.signal)
      .then((p) => {
        setPage(p)
        setLoading(false)
        const seen = new Set(genres)
        const extra = p.movies.flatMap((m) => m.genres).filter((g) => g && !seen.has(g) && g !== '(no genres listed)')
        if (extra.length) setGenres((gs) => Array.from(new Set([...gs, ...extra])).sort())
      })
      .catch((err: Error) => {
        if (err.name === 'AbortError') return
        setError(err)
        setLoading(false)
      })
    return () => controller.abort()
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [api, q, pageSize, attempt])

  const search = (e: FormEvent) => {
    e.preventDefault()
    setQ({ query: text.trim(), genre, tokens: [''] })
  }
  const chooseGenre = (g: string) => {
    setGenre(g)
    setQ({ query: text.trim(), genre: g, tokens: [''] })
  }
  const pageNumber = q.tokens.length

  return (
    <section className="catalogue" aria-labelledby="catalogue-title" aria-busy={loading || undefined}>
      <div className="section-head">
        <h2 id="catalogue-title">Catalogue</h2>
      </div>
      <form className="search-form" role="search" onSubmit={search}>
        <div className="field">
          <label htmlFor="catalogue-query">Search titles</label>
          <input
            id="catalogue-query"
            type="search"
            value={text}
            onChange={(e) => setText(e.target.value)}
            placeholder="e.g. star"
          />
        </div>
        <div className="field">
          <label htmlFor="catalogue-genre">Genre</label>
          <select id="catalogue-genre" value={genre} onChange={(e) => chooseGenre(e.target.value)}>
            <option value="">All genres</option>
            {genres.map((g) => (
              <option key={g} value={g}>
                {g}
              </option>
            ))}
          </select>
        </div>
        <button type="submit" className="btn btn-primary">
          Search
        </button>
      </form>

      {error ? (
        <ErrorState error={error} onRetry={() => setAttempt((a) => a + 1)} what="Could not load the catalogue" />
      ) : null}
      {loading ? <Loading label="Loading movies…" /> : null}

      {!loading && page && page.movies.length === 0 && !error ? (
        <p className="empty">No movies match{q.query ? ` “${q.query}”` : ''}{q.genre ? ` in ${q.genre}` : ''}.</p>
      ) : null}

      {page && page.movies.length > 0 ? (
        <ul className="movie-grid" aria-label="Movies">
          {page.movies.map((m) => (
            <li key={m.movieId} className="movie-card" data-movie-id={m.movieId}>
              <h3 className="movie-title">
                <button type="button" className="link-button" onClick={() => onOpen(m)}>
                  {m.title}
                </button>
              </h3>
              <MovieMeta movie={m} />
              <p className="muted small">{Number(m.popularity).toLocaleString()} interactions</p>
            </li>
          ))}
        </ul>
      ) : null}

      <nav className="pager" aria-label="Catalogue pages">
        <button
          type="button"
          className="btn"
          disabled={pageNumber <= 1 || loading}
          onClick={() => setQ((s) => ({ ...s, tokens: s.tokens.slice(0, -1) }))}
        >
          ← Previous
        </button>
        <span className="muted">Page {pageNumber}</span>
        <button
          type="button"
          className="btn"
          disabled={!page?.nextPageToken || loading}
          onClick={() => page && setQ((s) => ({ ...s, tokens: [...s.tokens, page.nextPageToken] }))}
        >
          Next →
        </button>
      </nav>
    </section>
  )
}
