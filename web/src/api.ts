// The typed REST client of the recsys API (Envoy's gRPC-JSON transcoder).
// This module is the only place that knows URLs. Proto3 JSON rules apply:
// lowerCamelCase fields, int64 values as strings, enums by name, timestamps as RFC 3339 strings.
// The shapes of requests and answers are the protos' own JSON types, generated into src/gen/ by
// `make proto` (protoc-gen-es, json_types=true): `XxxJson` is message recsys.v1.Xxx as proto3
// JSON. Only types are imported, so none of the protobuf runtime reaches the bundle.
//
// Authentication: signIn() asks the gateway for an access token (POST /v1/sessions) and keeps it
// in a SessionStore; every request then carries `Authorization: Bearer <token>`. A 401 answer
// ends the session (the app shows sign-in again); a 403 is an action outside the token's rights.

import type { EventTypeJson, PostEventRequestJson, PostEventResponseJson } from './gen/recsys/v1/event_service_pb'
import type { MovieJson } from './gen/recsys/v1/movie_pb'
import type { GetProfileResponseJson, InteractionJson, ProfileJson } from './gen/recsys/v1/profile_service_pb'
import type {
  GetMovieResponseJson,
  GetRecommendationsRequestJson,
  GetRecommendationsResponseJson,
  GetSimilarMoviesResponseJson,
  ListMoviesRequestJson,
  ListMoviesResponseJson,
  RecommendedMovieJson,
  SimilarMovieJson,
  TierJson,
} from './gen/recsys/v1/recommender_service_pb'
import type { CreateSessionRequestJson, CreateSessionResponseJson } from './gen/recsys/v1/session_service_pb'
import { SessionStore, type Session } from './session'

export type { Session } from './session'

/** A float or double in proto3 JSON: a number, or NaN and the infinities spelled as strings. */
type FloatJson = number | 'NaN' | 'Infinity' | '-Infinity'

/**
 * A proto3 JSON message as the app holds it: every field present. The transcoder leaves out
 * fields at their default value (0, "", false, [], the zero enum value); the client puts them
 * back, and makes floats plain numbers. Message fields are spelled out by each view below.
 */
type Filled<T> = { [K in keyof T]-?: [Exclude<T[K], undefined>] extends [FloatJson] ? number : Exclude<T[K], undefined> }

/** The serving cascade's layer (recsys.v1.Tier). */
export type Tier = TierJson

/** What a user can do with a movie (recsys.v1.EventType; the zero value is refused). */
export type EventType = Exclude<EventTypeJson, 'EVENT_TYPE_UNSPECIFIED'>

/** recsys.v1.Movie: movieId and popularity are int64, so strings. */
export type Movie = Filled<MovieJson>

export type RecommendedMovie = Filled<Omit<RecommendedMovieJson, 'movie'>> & { movie: Movie }

/** GetRecommendationsResponse. */
export type Recommendations = Filled<Omit<GetRecommendationsResponseJson, 'items'>> & { items: RecommendedMovie[] }

export type SimilarMovie = Filled<Omit<SimilarMovieJson, 'movie'>> & { movie: Movie }

/** GetSimilarMoviesResponse. */
export type SimilarMovies = Filled<Omit<GetSimilarMoviesResponseJson, 'items'>> & { items: SimilarMovie[] }

/** ListMoviesResponse. */
export type MoviePage = Filled<Omit<ListMoviesResponseJson, 'movies'>> & { movies: Movie[] }

/** One event of the profile; movie and occurredAt (RFC 3339) stay absent when the server sent none. */
export type Interaction = Filled<Omit<InteractionJson, 'movie' | 'occurredAt'>> &
  Pick<InteractionJson, 'occurredAt'> & { movie?: Movie }

/** recsys.v1.Profile; updatedAt (RFC 3339) stays absent when the server sent none. */
export type Profile = Filled<Omit<ProfileJson, 'updatedAt' | 'recentInteractions'>> &
  Pick<ProfileJson, 'updatedAt'> & { recentInteractions: Interaction[] }

/** PostEventRequest: who did what to which movie is required; rating (0.5 to 5) is for
 * EVENT_TYPE_RATE only; requestId is the serve's, when acting on a recommended movie. */
export type NewEvent = PostEventRequestJson &
  Required<Pick<PostEventRequestJson, 'userId' | 'movieId'>> & { type: EventType }

/** GetRecommendationsRequest's query parameters (the user is in the path). */
export type RecommendationsQuery = Omit<GetRecommendationsRequestJson, 'userId'>

/** ListMoviesRequest's query parameters. */
export type MoviesQuery = ListMoviesRequestJson

/** Any error answer of the API; message is the server's (it names the field for 400). */
export class ApiError extends Error {
  readonly status: number
  readonly code: number | string | undefined

  constructor(status: number, message: string, code?: number | string) {
    super(message)
    this.name = 'ApiError'
    this.status = status
    this.code = code
  }
}

/** HTTP 429: the gateway's rate limit; retryAfterSeconds when the server said so. */
export class RateLimitedError extends ApiError {
  readonly retryAfterSeconds: number | null

  constructor(message: string, retryAfterSeconds: number | null, code?: number | string) {
    super(429, message, code)
    this.name = 'RateLimitedError'
    this.retryAfterSeconds = retryAfterSeconds
  }
}

/** HTTP 503 (or 502/504, or no answer at all): the service cannot be reached right now. */
export class UnavailableError extends ApiError {
  constructor(message: string, status = 503, code?: number | string) {
    super(status, message, code)
    this.name = 'UnavailableError'
  }
}

/** HTTP 401: no token, or one the API does not accept (expired, bad signature); sign in again. */
export class UnauthorizedError extends ApiError {
  constructor(message: string, code?: number | string) {
    super(401, message, code)
    this.name = 'UnauthorizedError'
  }
}

/** HTTP 403: the token is valid but may not do this (e.g. another user's data). */
export class ForbiddenError extends ApiError {
  constructor(message: string, code?: number | string) {
    super(403, message, code)
    this.name = 'ForbiddenError'
  }
}

/** HTTP 501 from POST /v1/sessions: this deployment has no development token issuer. */
export class SignInUnavailableError extends ApiError {
  constructor(message: string, code?: number | string) {
    super(501, message, code)
    this.name = 'SignInUnavailableError'
  }
}

/** HTTP 404: the user or movie does not exist. */
export class NotFoundError extends ApiError {
  constructor(message: string, code?: number | string) {
    super(404, message, code)
    this.name = 'NotFoundError'
  }
}

export const DEFAULT_API_BASE = 'http://localhost:8080'

export function envBase(): string {
  try {
    return import.meta.env?.VITE_API_BASE || DEFAULT_API_BASE
  } catch {
    return DEFAULT_API_BASE
  }
}

/** Parses a Retry-After header: delta-seconds or an HTTP date. */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | null {
  if (!value) return null
  const trimmed = value.trim()
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.max(0, Math.ceil(Number(trimmed)))
  const date = Date.parse(trimmed)
  if (Number.isNaN(date)) return null
  return Math.max(0, Math.ceil((date - now) / 1000))
}

export async function errorFromResponse(res: Response): Promise<ApiError> {
  let message = ''
  let code: number | string | undefined
  const text = await res.text().catch(() => '')
  if (text) {
    try {
      const body = JSON.parse(text) as { message?: unknown; code?: unknown }
      if (typeof body.message === 'string') message = body.message
      if (typeof body.code === 'number' || typeof body.code === 'string') code = body.code
    } catch {
      // Envoy's own local replies (rate limit, no healthy upstream) are plain text.
      message = text.trim()
    }
  }
  switch (res.status) {
    case 429:
      return new RateLimitedError(
        message || 'Too many requests',
        parseRetryAfter(res.headers.get('retry-after')),
        code,
      )
    case 502:
    case 503:
    case 504:
      return new UnavailableError(message || 'The service is unavailable', res.status, code)
    case 401:
      return new UnauthorizedError(message || 'Sign in to continue', code)
    case 403:
      return new ForbiddenError(message || 'Not allowed', code)
    case 404:
      return new NotFoundError(message || 'Not found', code)
    default:
      return new ApiError(res.status, message || `Request failed (HTTP ${res.status})`, code)
  }
}

type FetchLike = (input: string, init?: RequestInit) => Promise<Response>

/** Who to sign in as (CreateSessionRequest): an existing user by id, or a new user with this display name. */
export type SignInRequest =
  | Required<Pick<CreateSessionRequestJson, 'userId'>>
  | Required<Pick<CreateSessionRequestJson, 'displayName'>>

export interface ApiClient {
  readonly baseUrl: string
  /** The session every request authenticates with; subscribe to see sign-in and sign-out. */
  readonly session: SessionStore
  /** POST /v1/sessions: gets a token for the user (or a new user) and stores it. */
  signIn(who: SignInRequest): Promise<Session>
  /** Forgets the token (the app shows sign-in again). */
  signOut(): void
  getRecommendations(userId: string, q?: RecommendationsQuery, signal?: AbortSignal): Promise<Recommendations>
  listMovies(q?: MoviesQuery, signal?: AbortSignal): Promise<MoviePage>
  getMovie(movieId: string, signal?: AbortSignal): Promise<Movie>
  /** With `userId`, the movies that user has already interacted with are left out. */
  getSimilarMovies(movieId: string, limit?: number, signal?: AbortSignal, userId?: string): Promise<SimilarMovies>
  postEvent(event: NewEvent): Promise<string>
  getProfile(userId: string, signal?: AbortSignal): Promise<Profile>
}

/** A float of the JSON as a number ("NaN" and the infinities included); 0 when absent. */
function num(v: FloatJson | undefined): number {
  return Number(v ?? 0)
}

function normalizeMovie(m: MovieJson | undefined): Movie {
  return {
    movieId: String(m?.movieId ?? ''),
    title: m?.title ?? '',
    year: Number(m?.year ?? 0),
    genres: m?.genres ?? [],
    popularity: String(m?.popularity ?? '0'),
    retired: m?.retired ?? false,
  }
}

export interface ApiOptions {
  /** Where the token is kept; default: an in-memory store (the app passes a sessionStorage one). */
  session?: SessionStore
}

export function createApi(baseUrl: string = envBase(), fetchImpl?: FetchLike, opts: ApiOptions = {}): ApiClient {
  const base = baseUrl.replace(/\/+$/, '')
  const doFetch: FetchLike = fetchImpl ?? ((input, init) => globalThis.fetch(input, init))
  const session = opts.session ?? new SessionStore(null)

  /** anonymous: send no token even when there is one (signing in must not depend on the old one). */
  async function request<T>(path: string, init?: RequestInit, anonymous = false): Promise<T> {
    const token = anonymous ? null : session.token()
    let res: Response
    try {
      res = await doFetch(base + path, {
        ...init,
        headers: {
          // Only headers the gateway's CORS policy allows (authorization, content-type): any
          // other makes the browser's preflight fail. The gateway's rate limit keys on the
          // token's user (else the address), so no client id header is needed.
          Accept: 'application/json',
          ...(token ? { Authorization: `Bearer ${token}` } : {}),
          ...(init?.body ? { 'Content-Type': 'application/json' } : {}),
        },
      })
    } catch (err) {
      if ((err as Error)?.name === 'AbortError') throw err
      // fetch rejects on network failures (and on CORS-less error replies).
      throw new UnavailableError('Cannot reach the API', 0)
    }
    if (!res.ok) {
      const err = await errorFromResponse(res)
      // The token was refused (or one is needed): end the session, unless a newer sign-in
      // replaced the token this request carried while it was in flight.
      if (err instanceof UnauthorizedError && !anonymous) session.clear('rejected', token)
      throw err
    }
    const text = await res.text()
    return (text ? JSON.parse(text) : {}) as T
  }

  const seg = encodeURIComponent

  return {
    baseUrl: base,
    session,

    async signIn(who) {
      // New users come from the session endpoint too: POST /v1/users needs a service token.
      const payload: CreateSessionRequestJson = 'userId' in who ? { userId: who.userId } : { displayName: who.displayName }
      let body: CreateSessionResponseJson
      try {
        body = await request<CreateSessionResponseJson>('/v1/sessions', { method: 'POST', body: JSON.stringify(payload) }, true)
      } catch (err) {
        if (err instanceof ApiError && err.status === 501)
          throw new SignInUnavailableError(
            'Signing in is not available here: this deployment has no development token issuer.',
            err.code,
          )
        throw err
      }
      if (typeof body.accessToken !== 'string' || !body.accessToken || body.userId === undefined)
        throw new ApiError(200, 'The sign-in answer has no access token')
      const s: Session = {
        accessToken: body.accessToken,
        tokenType: body.tokenType || 'Bearer',
        userId: String(body.userId),
        expiresAt: body.expiresAt,
        displayName: 'displayName' in who ? who.displayName : undefined,
      }
      session.set(s)
      return s
    },

    signOut() {
      session.clear('signed-out')
    },

    async getRecommendations(userId, q = {}, signal) {
      const params = new URLSearchParams()
      if (q.limit !== undefined) params.set('limit', String(q.limit))
      for (const g of q.genres ?? []) params.append('genres', g)
      for (const id of q.excludeMovieIds ?? []) params.append('excludeMovieIds', id)
      const qs = params.toString()
      const body = await request<GetRecommendationsResponseJson>(
        `/v1/users/${seg(userId)}/recommendations${qs ? `?${qs}` : ''}`,
        { signal },
      )
      return {
        userId: String(body.userId ?? userId),
        items: (body.items ?? []).map((it) => ({
          movie: normalizeMovie(it.movie),
          score: num(it.score),
          tier: it.tier ?? 'TIER_UNSPECIFIED',
          position: Number(it.position ?? 0),
          reason: it.reason ?? '',
        })),
        tier: body.tier ?? 'TIER_UNSPECIFIED',
        modelVersion: body.modelVersion ?? '',
        requestId: body.requestId ?? '',
        experiment: body.experiment ?? '',
        variant: body.variant ?? '',
      }
    },

    async listMovies(q = {}, signal) {
      const params = new URLSearchParams()
      if (q.query) params.set('query', q.query)
      if (q.genre) params.set('genre', q.genre)
      if (q.pageSize !== undefined) params.set('pageSize', String(q.pageSize))
      if (q.pageToken) params.set('pageToken', q.pageToken)
      const qs = params.toString()
      const body = await request<ListMoviesResponseJson>(`/v1/movies${qs ? `?${qs}` : ''}`, { signal })
      return { movies: (body.movies ?? []).map(normalizeMovie), nextPageToken: body.nextPageToken ?? '' }
    },

    async getMovie(movieId, signal) {
      const body = await request<GetMovieResponseJson>(`/v1/movies/${seg(movieId)}`, { signal })
      return normalizeMovie(body.movie)
    },

    async getSimilarMovies(movieId, limit, signal, userId) {
      const params = new URLSearchParams()
      if (limit !== undefined) params.set('limit', String(limit))
      if (userId) params.set('userId', userId)
      const qs = params.toString() ? `?${params.toString()}` : ''
      const body = await request<GetSimilarMoviesResponseJson>(`/v1/movies/${seg(movieId)}/similar${qs}`, { signal })
      return {
        movieId: String(body.movieId ?? movieId),
        items: (body.items ?? []).map((it) => ({ movie: normalizeMovie(it.movie), score: num(it.score) })),
        modelVersion: body.modelVersion ?? '',
      }
    },

    async postEvent(event) {
      const payload: PostEventRequestJson = { userId: event.userId, movieId: event.movieId, type: event.type }
      if (event.rating !== undefined) payload.rating = event.rating
      if (event.requestId) payload.requestId = event.requestId
      if (event.eventId) payload.eventId = event.eventId
      if (event.occurredAt) payload.occurredAt = event.occurredAt
      const body = await request<PostEventResponseJson>('/v1/events', {
        method: 'POST',
        body: JSON.stringify(payload),
      })
      return body.eventId ?? ''
    },

    async getProfile(userId, signal) {
      const body = await request<GetProfileResponseJson>(`/v1/users/${seg(userId)}/profile`, { signal })
      const p = body.profile ?? {}
      return {
        userId: String(p.userId ?? userId),
        hasPreferenceVector: Boolean(p.hasPreferenceVector),
        interactionCount: String(p.interactionCount ?? '0'),
        ratingCount: String(p.ratingCount ?? '0'),
        modelVersion: p.modelVersion ?? '',
        updatedAt: p.updatedAt,
        topGenres: p.topGenres ?? [],
        recentInteractions: (p.recentInteractions ?? []).map((i) => ({
          eventId: i.eventId ?? '',
          movie: i.movie ? normalizeMovie(i.movie) : undefined,
          type: i.type ?? 'EVENT_TYPE_UNSPECIFIED',
          rating: num(i.rating),
          occurredAt: i.occurredAt,
        })),
      }
    },
  }
}

/** The client the app uses, pointed at VITE_API_BASE (default http://localhost:8080), its token in
 * this tab's sessionStorage (see session.ts for why). */
export const api: ApiClient = createApi(envBase(), undefined, { session: new SessionStore() })

/** Short, human names for the tiers. */
export const TIER_LABELS: Record<Tier, string> = {
  TIER_UNSPECIFIED: 'Unknown',
  TIER_CACHE: 'Cache',
  TIER_REALTIME: 'Realtime',
  TIER_BATCH: 'Batch',
  TIER_POPULAR: 'Popular',
}

export const TIER_DESCRIPTIONS: Record<Tier, string> = {
  TIER_UNSPECIFIED: 'Unknown source',
  TIER_CACHE: 'Served from the cache',
  TIER_REALTIME: 'Computed now from your latest activity',
  TIER_BATCH: 'Pre-computed by the daily model',
  TIER_POPULAR: 'Popular with everyone',
}

export const EVENT_LABELS: Record<EventType, string> = {
  EVENT_TYPE_VIEW: 'Viewed',
  EVENT_TYPE_CLICK: 'Clicked',
  EVENT_TYPE_WATCH: 'Watched',
  EVENT_TYPE_RATE: 'Rated',
  EVENT_TYPE_LIKE: 'Liked',
  EVENT_TYPE_DISLIKE: 'Disliked',
}
