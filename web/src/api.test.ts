import { describe, expect, expectTypeOf, it, vi } from 'vitest'
import {
  ApiError,
  createApi,
  ForbiddenError,
  NotFoundError,
  parseRetryAfter,
  RateLimitedError,
  SignInUnavailableError,
  UnauthorizedError,
  UnavailableError,
  type EventType,
  type Movie,
  type NewEvent,
  type Profile,
  type Recommendations,
  type Tier,
} from './api'
import { SESSION_KEY, SessionStore, type Session } from './session'
import { json, mockFetch, recs, session as signedIn, sessionAnswer } from './test/fakeApi'

const BASE = 'http://api.test:8080/'

describe('api client', () => {
  // Checked by tsc (npm run typecheck): the app's shapes come from the protos' generated JSON
  // types (src/gen/, `make proto`), with the fields the transcoder omits filled in.
  it('takes its shapes from the JSON types generated from the protos', () => {
    expectTypeOf<Movie>().toEqualTypeOf<{
      movieId: string
      title: string
      year: number
      genres: string[]
      popularity: string
      retired: boolean
    }>()
    expectTypeOf<Tier>().toEqualTypeOf<'TIER_UNSPECIFIED' | 'TIER_CACHE' | 'TIER_REALTIME' | 'TIER_BATCH' | 'TIER_POPULAR'>()
    expectTypeOf<EventType>().not.toEqualTypeOf<'EVENT_TYPE_UNSPECIFIED'>()
    expectTypeOf<Recommendations['items'][number]['score']>().toEqualTypeOf<number>()
    expectTypeOf<Recommendations['userId']>().toEqualTypeOf<string>()
    expectTypeOf<Profile['updatedAt']>().toEqualTypeOf<string | undefined>()
    expectTypeOf<Profile['interactionCount']>().toEqualTypeOf<string>()
    expectTypeOf<NewEvent['userId']>().toEqualTypeOf<string>()
    expectTypeOf<NewEvent['occurredAt']>().toEqualTypeOf<string | undefined>()
  })

  it('builds recommendation URLs with repeated params and parses the answer', async () => {
    const fetch = mockFetch([{ match: /^\/v1\/users\/7\/recommendations$/, respond: () => json(recs('TIER_REALTIME', [1, 2])) }])
    const api = createApi(BASE, fetch)
    const r = await api.getRecommendations('7', { limit: 5, genres: ['Comedy', 'Drama'], excludeMovieIds: ['3'] })
    const url = new URL(fetch.mock.calls[0][0])
    expect(url.origin).toBe('http://api.test:8080')
    expect(url.searchParams.get('limit')).toBe('5')
    expect(url.searchParams.getAll('genres')).toEqual(['Comedy', 'Drama'])
    expect(url.searchParams.getAll('excludeMovieIds')).toEqual(['3'])
    expect(r.tier).toBe('TIER_REALTIME')
    expect(r.items.map((i) => i.movie.movieId)).toEqual(['1', '2'])
    expect(r.requestId).toBe('req-1')
  })

  it('posts events as proto3 JSON with requestId and rating', async () => {
    const fetch = mockFetch([{ method: 'POST', match: /^\/v1\/events$/, respond: () => json({ eventId: 'e-1' }) }])
    const api = createApi(BASE, fetch)
    const id = await api.postEvent({ userId: '7', movieId: '42', type: 'EVENT_TYPE_RATE', rating: 4.5, requestId: 'req-9' })
    expect(id).toBe('e-1')
    const init = fetch.mock.calls[0][1]!
    expect(init.method).toBe('POST')
    expect(JSON.parse(init.body as string)).toEqual({
      userId: '7',
      movieId: '42',
      type: 'EVENT_TYPE_RATE',
      rating: 4.5,
      requestId: 'req-9',
    })
    expect((init.headers as Record<string, string>)['Content-Type']).toBe('application/json')
  })

  it('omits empty optional fields of an event', async () => {
    const fetch = mockFetch([{ method: 'POST', match: /^\/v1\/events$/, respond: () => json({ eventId: 'e-2' }) }])
    await createApi(BASE, fetch).postEvent({ userId: '7', movieId: '42', type: 'EVENT_TYPE_LIKE' })
    expect(JSON.parse(fetch.mock.calls[0][1]!.body as string)).toEqual({ userId: '7', movieId: '42', type: 'EVENT_TYPE_LIKE' })
  })

  it('lists movies with query, genre and page token', async () => {
    const fetch = mockFetch([{ match: /^\/v1\/movies$/, respond: () => json({ movies: [], nextPageToken: '' }) }])
    const page = await createApi(BASE, fetch).listMovies({ query: 'star wars', genre: 'Sci-Fi', pageSize: 10, pageToken: 'abc' })
    const url = new URL(fetch.mock.calls[0][0])
    expect(url.searchParams.get('query')).toBe('star wars')
    expect(url.searchParams.get('genre')).toBe('Sci-Fi')
    expect(url.searchParams.get('pageSize')).toBe('10')
    expect(url.searchParams.get('pageToken')).toBe('abc')
    expect(page).toEqual({ movies: [], nextPageToken: '' })
  })

  it('maps 429 to RateLimitedError with Retry-After', async () => {
    const fetch = mockFetch([
      { match: /./, respond: () => new Response('local_rate_limited', { status: 429, headers: { 'retry-after': '7', 'x-local-rate-limit': 'true' } }) },
    ])
    const err = await createApi(BASE, fetch).listMovies().catch((e) => e)
    expect(err).toBeInstanceOf(RateLimitedError)
    expect(err).toBeInstanceOf(ApiError)
    expect(err.status).toBe(429)
    expect(err.retryAfterSeconds).toBe(7)
    expect(err.message).toBe('local_rate_limited')
  })

  it('maps 429 without Retry-After to a null retry', async () => {
    const fetch = mockFetch([{ match: /./, respond: () => json({ code: 8, message: 'slow down' }, 429) }])
    const err = await createApi(BASE, fetch).listMovies().catch((e) => e)
    expect(err).toBeInstanceOf(RateLimitedError)
    expect(err.retryAfterSeconds).toBeNull()
  })

  it('maps 503 and network failures to UnavailableError', async () => {
    const fetch = mockFetch([{ match: /./, respond: () => json({ code: 14, message: 'no healthy upstream' }, 503) }])
    const err = await createApi(BASE, fetch).getMovie('1').catch((e) => e)
    expect(err).toBeInstanceOf(UnavailableError)
    expect(err.status).toBe(503)
    expect(err.message).toBe('no healthy upstream')

    const down = createApi(BASE, async () => {
      throw new TypeError('Failed to fetch')
    })
    const err2 = await down.getMovie('1').catch((e) => e)
    expect(err2).toBeInstanceOf(UnavailableError)
  })

  it('maps 400 to ApiError with the server message naming the field', async () => {
    const fetch = mockFetch([{ method: 'POST', match: /./, respond: () => json({ code: 3, message: 'rating: must be between 0.5 and 5' }, 400) }])
    const err = await createApi(BASE, fetch)
      .postEvent({ userId: '1', movieId: '1', type: 'EVENT_TYPE_RATE', rating: 9 })
      .catch((e) => e)
    expect(err).toBeInstanceOf(ApiError)
    expect(err).not.toBeInstanceOf(RateLimitedError)
    expect(err.status).toBe(400)
    expect(err.code).toBe(3)
    expect(err.message).toBe('rating: must be between 0.5 and 5')
  })

  it('maps 404 to NotFoundError', async () => {
    const fetch = mockFetch([])
    const err = await createApi(BASE, fetch).getProfile('99').catch((e) => e)
    expect(err).toBeInstanceOf(NotFoundError)
  })

  it('parses Retry-After as seconds or a date', () => {
    expect(parseRetryAfter(null)).toBeNull()
    expect(parseRetryAfter('3')).toBe(3)
    expect(parseRetryAfter('garbage')).toBeNull()
    const now = Date.parse('2024-01-01T00:00:00Z')
    expect(parseRetryAfter('Mon, 01 Jan 2024 00:00:10 GMT', now)).toBe(10)
  })
})

describe('api client headers', () => {
  it('sends only headers the gateway allows cross-origin (no x-client-id)', async () => {
    const fetch = mockFetch([
      { match: /^\/v1\/movies\/1$/, respond: () => json({ movie: { movieId: '1', title: 'A', year: 0, genres: [], popularity: '0' } }) },
      { method: 'POST', match: /^\/v1\/events$/, respond: () => json({ eventId: 'e' }) },
    ])
    const api = createApi(BASE, fetch, { session: signedIn('7', 'tok-7') })
    await api.getMovie('1')
    await api.postEvent({ userId: '7', movieId: '1', type: 'EVENT_TYPE_LIKE' })
    expect(Object.keys(fetch.mock.calls[0][1]!.headers as object).sort()).toEqual(['Accept', 'Authorization'])
    expect(Object.keys(fetch.mock.calls[1][1]!.headers as object).sort()).toEqual(['Accept', 'Authorization', 'Content-Type'])
  })
})

const headersOf = (fetch: ReturnType<typeof mockFetch>, i = 0) => fetch.mock.calls[i][1]!.headers as Record<string, string>
const profileAnswer = { profile: { userId: '7' } }

describe('api client authentication', () => {
  it('sends the token as a bearer token on user-scoped and catalogue calls', async () => {
    const fetch = mockFetch([
      { match: /^\/v1\/users\/7\/recommendations$/, respond: () => json(recs('TIER_POPULAR', [1])) },
      { match: /^\/v1\/users\/7\/profile$/, respond: () => json(profileAnswer) },
      { match: /^\/v1\/movies$/, respond: () => json({ movies: [] }) },
      { method: 'POST', match: /^\/v1\/events$/, respond: () => json({ eventId: 'e' }) },
    ])
    const api = createApi(BASE, fetch, { session: signedIn('7', 'tok-7') })
    await api.getRecommendations('7')
    await api.getProfile('7')
    await api.listMovies()
    await api.postEvent({ userId: '7', movieId: '1', type: 'EVENT_TYPE_VIEW' })
    expect(fetch).toHaveBeenCalledTimes(4)
    for (let i = 0; i < 4; i++) expect(headersOf(fetch, i).Authorization).toBe('Bearer tok-7')
  })

  it('sends no Authorization header without a session', async () => {
    const fetch = mockFetch([{ match: /^\/v1\/movies$/, respond: () => json({ movies: [] }) }])
    await createApi(BASE, fetch).listMovies()
    expect(headersOf(fetch)).not.toHaveProperty('Authorization')
  })

  it('signs in as an existing user through POST /v1/sessions and keeps the token', async () => {
    const fetch = mockFetch([
      { method: 'POST', match: /^\/v1\/sessions$/, respond: () => json(sessionAnswer('42', 'tok-42')) },
      { match: /^\/v1\/users\/42\/profile$/, respond: () => json(profileAnswer) },
    ])
    const store = new SessionStore(window.sessionStorage)
    const api = createApi(BASE, fetch, { session: store })
    const s = await api.signIn({ userId: '42' })
    expect(s).toMatchObject({ accessToken: 'tok-42', tokenType: 'Bearer', userId: '42' })
    expect(fetch.mock.calls[0][1]!.method).toBe('POST')
    expect(JSON.parse(fetch.mock.calls[0][1]!.body as string)).toEqual({ userId: '42' })
    expect(store.get()?.accessToken).toBe('tok-42')
    expect(JSON.parse(window.sessionStorage.getItem(SESSION_KEY)!)).toMatchObject({ accessToken: 'tok-42', userId: '42' })
    await api.getProfile('42')
    expect(headersOf(fetch, 1).Authorization).toBe('Bearer tok-42')
  })

  it('creates a new user by signing in with a display name, never with POST /v1/users', async () => {
    const fetch = mockFetch([
      { method: 'POST', match: /^\/v1\/sessions$/, respond: () => json(sessionAnswer('10000001', 'tok-new')) },
    ])
    const api = createApi(BASE, fetch)
    expect('createUser' in api).toBe(false)
    const s = await api.signIn({ displayName: 'Ada' })
    expect(s).toMatchObject({ userId: '10000001', displayName: 'Ada' })
    expect(JSON.parse(fetch.mock.calls[0][1]!.body as string)).toEqual({ displayName: 'Ada' })
    expect(fetch.mock.calls.map(([u]) => new URL(u).pathname)).toEqual(['/v1/sessions'])
  })

  it('signs in without sending the old token (a stale one must not block a new sign-in)', async () => {
    const fetch = mockFetch([{ method: 'POST', match: /^\/v1\/sessions$/, respond: () => json(sessionAnswer('8', 'tok-8')) }])
    const store = signedIn('7', 'tok-old')
    await createApi(BASE, fetch, { session: store }).signIn({ userId: '8' })
    expect(headersOf(fetch)).not.toHaveProperty('Authorization')
    expect(store.get()?.userId).toBe('8')
  })

  it('a 401 drops the token, tells subscribers and throws UnauthorizedError', async () => {
    const fetch = mockFetch([
      { match: /recommendations$/, respond: () => json({ code: 16, message: 'Jwt is expired' }, 401) },
    ])
    const store = new SessionStore(window.sessionStorage)
    store.set(signedIn('7', 'tok-7').get()!)
    const seen = vi.fn()
    store.subscribe(seen)
    const err = await createApi(BASE, fetch, { session: store })
      .getRecommendations('7')
      .catch((e) => e)
    expect(err).toBeInstanceOf(UnauthorizedError)
    expect(err.status).toBe(401)
    expect(err.message).toBe('Jwt is expired')
    expect(store.get()).toBeNull()
    expect(window.sessionStorage.getItem(SESSION_KEY)).toBeNull()
    expect(seen).toHaveBeenCalledWith(null, 'rejected')
  })

  it('a late 401 to a request sent with an old token keeps a newer session', async () => {
    let release: (r: Response) => void = () => {}
    const fetch = vi.fn(
      (input: string) =>
        new Promise<Response>((resolve) => {
          if (new URL(input).pathname === '/v1/sessions') resolve(json(sessionAnswer('8', 'tok-8')))
          else release = resolve
        }),
    )
    const store = signedIn('7', 'tok-7')
    const api = createApi(BASE, fetch, { session: store })
    const pending = api.getProfile('7').catch((e) => e)
    await api.signIn({ userId: '8' })
    release(json({ code: 16, message: 'Jwt verification fails' }, 401))
    expect(await pending).toBeInstanceOf(UnauthorizedError)
    expect(store.get()?.accessToken).toBe('tok-8')
  })

  it('a 403 keeps the session and throws ForbiddenError', async () => {
    const fetch = mockFetch([{ method: 'POST', match: /^\/v1\/events$/, respond: () => json({ code: 7, message: 'user_id: not yours' }, 403) }])
    const store = signedIn('7', 'tok-7')
    const err = await createApi(BASE, fetch, { session: store })
      .postEvent({ userId: '8', movieId: '1', type: 'EVENT_TYPE_LIKE' })
      .catch((e) => e)
    expect(err).toBeInstanceOf(ForbiddenError)
    expect(err.message).toBe('user_id: not yours')
    expect(store.get()?.accessToken).toBe('tok-7')
  })

  it('does not send an expired token: the session ends as expired', async () => {
    const fetch = mockFetch([{ match: /^\/v1\/movies$/, respond: () => json({ movies: [] }) }])
    const store = new SessionStore(null)
    store.set({ accessToken: 'tok-old', tokenType: 'Bearer', userId: '7', expiresAt: '2000-01-01T00:00:00Z' })
    const seen = vi.fn()
    store.subscribe(seen)
    await createApi(BASE, fetch, { session: store }).listMovies()
    expect(headersOf(fetch)).not.toHaveProperty('Authorization')
    expect(store.get()).toBeNull()
    expect(seen).toHaveBeenCalledWith(null, 'expired')
  })

  it('maps 501 of POST /v1/sessions to SignInUnavailableError', async () => {
    const fetch = mockFetch([{ method: 'POST', match: /^\/v1\/sessions$/, respond: () => json({ code: 12, message: 'Method not implemented!' }, 501) }])
    const store = new SessionStore(null)
    const err = await createApi(BASE, fetch, { session: store })
      .signIn({ userId: '1' })
      .catch((e) => e)
    expect(err).toBeInstanceOf(SignInUnavailableError)
    expect(err.message).toMatch(/no development token issuer/)
    expect(store.get()).toBeNull()
  })

  it('refuses a sign-in answer without a token', async () => {
    const fetch = mockFetch([{ method: 'POST', match: /^\/v1\/sessions$/, respond: () => json({ userId: '1' }) }])
    const store = new SessionStore(null)
    const err = await createApi(BASE, fetch, { session: store }).signIn({ userId: '1' }).catch((e) => e)
    expect(err).toBeInstanceOf(ApiError)
    expect(store.get()).toBeNull()
  })
})

describe('SessionStore', () => {
  const s: Session = { accessToken: 't', tokenType: 'Bearer', userId: '5', expiresAt: '2999-01-01T00:00:00Z' }

  it('keeps the session in sessionStorage, not localStorage, across stores (a reload)', () => {
    new SessionStore(window.sessionStorage).set(s)
    expect(window.localStorage.getItem(SESSION_KEY)).toBeNull()
    expect(new SessionStore(window.sessionStorage).get()).toEqual(s)
  })

  it('drops an expired or malformed stored session', () => {
    window.sessionStorage.setItem(SESSION_KEY, JSON.stringify({ ...s, expiresAt: '2000-01-01T00:00:00Z' }))
    const expired = new SessionStore(window.sessionStorage)
    expect(expired.get()).toBeNull()
    expect(expired.endedBeforeLoad).toBe('expired')
    expect(new SessionStore(window.sessionStorage).endedBeforeLoad).toBeNull()
    expect(window.sessionStorage.getItem(SESSION_KEY)).toBeNull()
    window.sessionStorage.setItem(SESSION_KEY, '{not json')
    expect(new SessionStore(window.sessionStorage).get()).toBeNull()
    window.sessionStorage.setItem(SESSION_KEY, JSON.stringify({ userId: '5' }))
    expect(new SessionStore(window.sessionStorage).get()).toBeNull()
  })

  it('signs out: clears storage and tells subscribers why', () => {
    const store = new SessionStore(window.sessionStorage)
    store.set(s)
    const seen = vi.fn()
    const unsubscribe = store.subscribe(seen)
    store.clear()
    expect(seen).toHaveBeenCalledWith(null, 'signed-out')
    expect(window.sessionStorage.getItem(SESSION_KEY)).toBeNull()
    unsubscribe()
    store.set(s)
    expect(seen).toHaveBeenCalledTimes(1)
  })
})
