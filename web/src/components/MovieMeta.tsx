import type { Movie } from '../api'

export function MovieMeta({ movie }: { movie: Movie }) {
  return (
    <p className="movie-meta">
      {movie.year ? <span>{movie.year}</span> : null}
      {movie.genres.length ? <span>{movie.genres.join(' · ')}</span> : null}
    </p>
  )
}
