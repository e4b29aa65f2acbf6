import { describe, expect, it } from 'vitest'
import {
  ApiError,
  createApi,
  NotFoundError,
  parseRetryAfter,
  RateLimitedError,
  UnavailableError,
} from './api'
import { json, mockFetch, recs } from './test/fakeApi'

const BASE = 'http://api.test:8080/'

describe('api client', () => {
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

  it('creates a user and returns the int64 id as a string', async () => {
    const fetch = mockFetch([{ method: 'POST', match: /^\/v1\/users$/, respond: () => json({ userId: '10000001' }) }])
    expect(await createApi(BASE, fetch).createUser('me')).toBe('10000001')
    expect(JSON.parse(fetch.mock.calls[0][1]!.body as string)).toEqual({ displayName: 'me' })
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

describe('api client identity', () => {
  it('sends x-client-id when configured', async () => {
    const fetch = mockFetch([{ match: /^\/v1\/movies\/1$/, respond: () => json({ movie: { movieId: '1', title: 'A', year: 0, genres: [], popularity: '0' } }) }])
    await createApi(BASE, fetch, { clientId: 'web-abc' }).getMovie('1')
    expect((fetch.mock.calls[0][1]!.headers as Record<string, string>)['x-client-id']).toBe('web-abc')
  })
})
