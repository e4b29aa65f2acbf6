// The dashboard's client of the AnalyticsService (GET /v1/analytics/dashboard through Envoy).
// It authenticates with an analyst (or admin) token of its own, not the signed-in user's: the
// analytics are for operators, and a user token is refused (403). The token is kept in this
// tab's sessionStorage, as the user session is (see session.ts for why not localStorage).
// Counts are int64 in proto3 JSON (strings); the view turns them into numbers, and puts back the
// fields the transcoder leaves out at their default value.

import { UnavailableError, errorFromResponse, type ApiError } from './api'
import type {
  DailyCoverageJson,
  DailyCtrJson,
  GetDashboardResponseJson,
  ModelVersionJson,
  PositionCtrJson,
  ServeLatencyJson,
  TierShareJson,
  VariantCtrJson,
} from './gen/recsys/v1/analytics_service_pb'

export const ANALYST_TOKEN_KEY = 'recsys.analyst-token'

type Numeric = number | string | undefined

const n = (v: Numeric): number => Number(v ?? 0)

export interface DailyCtr { day: string; tier: string; serves: number; impressions: number; clicks: number; ctr: number; serveCtr: number }
export interface PositionCtr { tier: string; position: number; impressions: number; clicks: number; ctr: number }
export interface DailyCoverage { day: string; moviesServed: number; coverage: number }
export interface TierShare { tier: string; serves: number; share: number }
export interface ServeLatency { tier: string; serves: number; p50Ms: number; p99Ms: number }
export interface VariantCtr {
  experiment: string
  variant: string
  users: number
  serves: number
  impressions: number
  clicks: number
  ctr: number
  ctrLow: number
  ctrHigh: number
}
export interface ModelVersion {
  version: string
  status: string
  createdAt?: string
  publishedAt?: string
  ndcgAt10?: number
  precisionAt10?: number
  recallAt10?: number
  mapAt10?: number
  catalogueCoverage?: number
  popularityNdcgAt10?: number
}

/** GetDashboardResponse, every field present, counts as numbers. */
export interface Dashboard {
  generatedAt: string
  days: number
  recentMinutes: number
  ctrDaily: DailyCtr[]
  ctrByPosition: PositionCtr[]
  coverageDaily: DailyCoverage[]
  coverage: { moviesServed: number; catalogue: number; coverage: number }
  tierMix: TierShare[]
  serveLatency: ServeLatency[]
  models: ModelVersion[]
  freshness: { events: number; p50Seconds: number; p95Seconds: number }
  ingest: { events: number; eventsPerSecond: number; perMinute: { minute: string; events: number }[] }
  experimentCtr: VariantCtr[]
}

const opt = (v: Numeric): number | undefined => (v === undefined ? undefined : Number(v))

export function normalizeDashboard(b: GetDashboardResponseJson): Dashboard {
  return {
    generatedAt: b.generatedAt ?? '',
    days: n(b.days),
    recentMinutes: n(b.recentMinutes),
    ctrDaily: (b.ctrDaily ?? []).map((r: DailyCtrJson) => ({
      day: r.day ?? '',
      tier: r.tier ?? '',
      serves: n(r.serves),
      impressions: n(r.impressions),
      clicks: n(r.clicks),
      ctr: n(r.ctr),
      serveCtr: n(r.serveCtr),
    })),
    ctrByPosition: (b.ctrByPosition ?? []).map((r: PositionCtrJson) => ({
      tier: r.tier ?? '',
      position: n(r.position),
      impressions: n(r.impressions),
      clicks: n(r.clicks),
      ctr: n(r.ctr),
    })),
    coverageDaily: (b.coverageDaily ?? []).map((r: DailyCoverageJson) => ({
      day: r.day ?? '',
      moviesServed: n(r.moviesServed),
      coverage: n(r.coverage),
    })),
    coverage: {
      moviesServed: n(b.coverage?.moviesServed),
      catalogue: n(b.coverage?.catalogue),
      coverage: n(b.coverage?.coverage),
    },
    tierMix: (b.tierMix ?? []).map((r: TierShareJson) => ({ tier: r.tier ?? '', serves: n(r.serves), share: n(r.share) })),
    serveLatency: (b.serveLatency ?? []).map((r: ServeLatencyJson) => ({
      tier: r.tier ?? '',
      serves: n(r.serves),
      p50Ms: n(r.p50Ms),
      p99Ms: n(r.p99Ms),
    })),
    models: (b.models ?? []).map((m: ModelVersionJson) => ({
      version: m.version ?? '',
      status: m.status ?? '',
      createdAt: m.createdAt,
      publishedAt: m.publishedAt,
      ndcgAt10: opt(m.ndcgAt10),
      precisionAt10: opt(m.precisionAt10),
      recallAt10: opt(m.recallAt10),
      mapAt10: opt(m.mapAt10),
      catalogueCoverage: opt(m.catalogueCoverage),
      popularityNdcgAt10: opt(m.popularityNdcgAt10),
    })),
    freshness: {
      events: n(b.freshness?.events),
      p50Seconds: n(b.freshness?.p50Seconds),
      p95Seconds: n(b.freshness?.p95Seconds),
    },
    ingest: {
      events: n(b.ingest?.events),
      eventsPerSecond: n(b.ingest?.eventsPerSecond),
      perMinute: (b.ingest?.perMinute ?? []).map((m) => ({ minute: m.minute ?? '', events: n(m.events) })),
    },
    experimentCtr: (b.experimentCtr ?? []).map((v: VariantCtrJson) => ({
      experiment: v.experiment ?? '',
      variant: v.variant ?? '',
      users: n(v.users),
      serves: n(v.serves),
      impressions: n(v.impressions),
      clicks: n(v.clicks),
      ctr: n(v.ctr),
      ctrLow: n(v.ctrLow),
      ctrHigh: n(v.ctrHigh),
    })),
  }
}

type FetchLike = (input: string, init?: RequestInit) => Promise<Response>

export interface AnalyticsClient {
  getDashboard(token: string, q: { days: number; recentMinutes: number }, signal?: AbortSignal): Promise<Dashboard>
}

export function createAnalyticsClient(baseUrl: string, fetchImpl?: FetchLike): AnalyticsClient {
  const base = baseUrl.replace(/\/+$/, '')
  const doFetch: FetchLike = fetchImpl ?? ((input, init) => globalThis.fetch(input, init))
  return {
    async getDashboard(token, q, signal) {
      const qs = new URLSearchParams({ days: String(q.days), recentMinutes: String(q.recentMinutes) })
      let res: Response
      try {
        res = await doFetch(`${base}/v1/analytics/dashboard?${qs}`, {
          signal,
          headers: { Accept: 'application/json', Authorization: `Bearer ${token}` },
        })
      } catch (err) {
        if ((err as Error)?.name === 'AbortError') throw err
        throw new UnavailableError('Cannot reach the API', 0)
      }
      if (!res.ok) throw (await errorFromResponse(res)) as ApiError
      return normalizeDashboard((await res.json()) as GetDashboardResponseJson)
    },
  }
}

/** The analyst token of this tab, or null. */
export function storedToken(): string | null {
  try {
    return window.sessionStorage.getItem(ANALYST_TOKEN_KEY)
  } catch {
    return null
  }
}

export function storeToken(token: string | null): void {
  try {
    if (token) window.sessionStorage.setItem(ANALYST_TOKEN_KEY, token)
    else window.sessionStorage.removeItem(ANALYST_TOKEN_KEY)
  } catch {
    // storage refused (private mode): the token lives as long as the page
  }
}
