import { vi } from 'vitest'
import type { MovieJson } from '../gen/recsys/v1/movie_pb'
import type { GetRecommendationsResponseJson, TierJson } from '../gen/recsys/v1/recommender_service_pb'
import type { CreateSessionResponseJson } from '../gen/recsys/v1/session_service_pb'
import { SessionStore } from '../session'

/** A fetch mock at the boundary: routes are matched by method + path prefix, in order. */
export interface Route {
  method?: string
  match: RegExp
  respond: (url: URL, init?: RequestInit) => Response | Promise<Response>
}

export function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', ...headers } })
}

export function mockFetch(routes: Route[]) {
  const fn = vi.fn(async (input: string, init?: RequestInit) => {
    const url = new URL(input)
    const method = (init?.method ?? 'GET').toUpperCase()
    for (const r of routes) {
      if ((r.method ?? 'GET') === method && r.match.test(url.pathname)) return r.respond(url, init)
    }
    return json({ code: 5, message: `no route for ${method} ${url.pathname}` }, 404)
  })
  return fn
}

/** Fixtures are typed by the protos' JSON types, so they are what the transcoder can answer. */
export const movie = (id: number, title: string, genres: string[] = ['Comedy']): MovieJson => ({
  movieId: String(id),
  title,
  year: 1990 + (id % 30),
  genres,
  popularity: String(100 - id),
})

export function recs(tier: TierJson, ids: number[], requestId = 'req-1'): GetRecommendationsResponseJson {
  return {
    userId: '7',
    items: ids.map((id, i) => ({
      movie: movie(id, `Movie ${id}`),
      score: 1 - i / 100,
      tier,
      position: i,
      reason: tier === 'TIER_POPULAR' ? 'Popular with everyone' : 'Because you liked comedies',
    })),
    tier,
    modelVersion: tier === 'TIER_POPULAR' ? '' : 'als-1',
    requestId,
  }
}

/** An in-memory session store signed in as `userId` (token `token`). */
export function session(userId: string, token = `tok-${userId}`): SessionStore {
  const store = new SessionStore(null)
  store.set({ accessToken: token, tokenType: 'Bearer', userId, expiresAt: '2999-01-01T00:00:00Z' })
  return store
}

/** The body of a CreateSessionResponse. */
export function sessionAnswer(userId: string, token = `tok-${userId}`): CreateSessionResponseJson {
  return { accessToken: token, tokenType: 'Bearer', userId, expiresAt: '2999-01-01T00:00:00Z' }
}
