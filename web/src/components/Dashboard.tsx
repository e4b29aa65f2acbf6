import { useCallback, useMemo, useState, type FormEvent, type ReactNode } from 'react'
import {
  Bar,
  BarChart,
  CartesianGrid,
  ErrorBar,
  Legend,
  Line,
  LineChart,
  ResponsiveContainer,
  Tooltip,
  XAxis,
  YAxis,
} from 'recharts'
import { ForbiddenError, UnauthorizedError } from '../api'
import {
  storedToken,
  storeToken,
  type AnalyticsClient,
  type Dashboard as DashboardData,
  type ModelVersion,
  type VariantCtr,
} from '../analytics'
import { usePolling } from '../usePolling'

/** The dashboard reads the AnalyticsService again this often. */
export const REFRESH_MS = 10_000

const TIER_COLOURS: Record<string, string> = {
  cache: '#0f766e',
  realtime: '#4338ca',
  batch: '#b45309',
  popular: '#be185d',
  all: '#1b1f2a',
}
const colour = (tier: string) => TIER_COLOURS[tier] ?? '#5b6475'

const pct = (v: number, digits = 1) => `${(v * 100).toFixed(digits)}%`
const day = (iso: string) => iso.slice(5, 10) // MM-DD
const minute = (iso: string) => new Date(iso).toISOString().slice(11, 16) // HH:MM UTC

/** Rows keyed by `x`, one column per tier: what recharts draws one line or bar per tier from. */
function pivot<T>(rows: T[], x: (r: T) => string | number, tier: (r: T) => string, value: (r: T) => number) {
  const byX = new Map<string | number, Record<string, string | number>>()
  const tiers = new Set<string>()
  for (const r of rows) {
    const key = x(r)
    const row = byX.get(key) ?? { x: key }
    row[tier(r)] = value(r)
    tiers.add(tier(r))
    byX.set(key, row)
  }
  return { data: [...byX.values()], tiers: [...tiers].sort() }
}

function Chart({ id, title, points, children }: { id: string; title: string; points: number; children: ReactNode }) {
  return (
    <figure className="chart card" data-testid={`chart-${id}`} data-points={points}>
      <figcaption>{title}</figcaption>
      {points === 0 ? (
        <p className="muted small chart-empty">No data in this window yet.</p>
      ) : (
        <div className="chart-body">
          <ResponsiveContainer width="100%" height="100%" initialDimension={{ width: 400, height: 240 }}>
            {children as React.ReactElement}
          </ResponsiveContainer>
        </div>
      )}
    </figure>
  )
}

function Stat({ id, label, value, hint }: { id: string; label: string; value: string; hint?: string }) {
  return (
    <div className="stat card" data-testid={`stat-${id}`}>
      <div className="stat-label muted small">{label}</div>
      <div className="stat-value">{value}</div>
      {hint ? <div className="muted small">{hint}</div> : null}
    </div>
  )
}

const metric = (v: number | undefined) => (v === undefined ? '–' : v.toFixed(3))

function ModelTable({ models }: { models: ModelVersion[] }) {
  return (
    <div className="card table-wrap" data-testid="models">
      <table>
        <caption>Models (offline holdout metrics; newest first)</caption>
        <thead>
          <tr>
            <th scope="col">Version</th>
            <th scope="col">Status</th>
            <th scope="col">NDCG@10</th>
            <th scope="col">Popularity NDCG@10</th>
            <th scope="col">Precision@10</th>
            <th scope="col">Recall@10</th>
            <th scope="col">Coverage@10</th>
            <th scope="col">Published</th>
          </tr>
        </thead>
        <tbody>
          {models.map((m) => (
            <tr key={m.version} data-status={m.status}>
              <td>
                <code>{m.version}</code>
              </td>
              <td>{m.status}</td>
              <td>{metric(m.ndcgAt10)}</td>
              <td>{metric(m.popularityNdcgAt10)}</td>
              <td>{metric(m.precisionAt10)}</td>
              <td>{metric(m.recallAt10)}</td>
              <td>{metric(m.catalogueCoverage)}</td>
              <td>{m.publishedAt ? m.publishedAt.slice(0, 16).replace('T', ' ') : '–'}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  )
}

/** CTR per variant of each experiment, with its 95 % interval (the AnalyticsService's Wilson bounds). */
function Experiments({ rows }: { rows: VariantCtr[] }) {
  const data = rows.map((v) => ({
    x: `${v.experiment} · ${v.variant}`,
    ctr: v.ctr,
    interval: [v.ctr - v.ctrLow, v.ctrHigh - v.ctr],
  }))
  return (
    <>
      <Chart id="experiments" title="Experiments: CTR per variant (95 % interval)" points={data.length}>
        <BarChart data={data}>
          <CartesianGrid strokeDasharray="3 3" />
          <XAxis dataKey="x" />
          <YAxis tickFormatter={(v: number) => pct(v, 1)} width={48} />
          <Tooltip formatter={(v) => pct(Number(v), 2)} />
          <Bar dataKey="ctr" fill="#4338ca" isAnimationActive={false}>
            <ErrorBar dataKey="interval" width={8} stroke="#1b1f2a" />
          </Bar>
        </BarChart>
      </Chart>
      {rows.length ? (
        <div className="card table-wrap" data-testid="experiment-table">
          <table>
            <caption>Experiments (clicks on served items / served items)</caption>
            <thead>
              <tr>
                <th scope="col">Experiment</th>
                <th scope="col">Variant</th>
                <th scope="col">Users</th>
                <th scope="col">Clicks / served</th>
                <th scope="col">CTR</th>
                <th scope="col">95 % interval</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((v) => (
                <tr key={`${v.experiment}/${v.variant}`} data-variant={v.variant}>
                  <td>{v.experiment}</td>
                  <td>{v.variant}</td>
                  <td>{v.users}</td>
                  <td>
                    {v.clicks} / {v.impressions}
                  </td>
                  <td>{pct(v.ctr, 2)}</td>
                  <td>
                    {pct(v.ctrLow, 2)} – {pct(v.ctrHigh, 2)}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
    </>
  )
}

export function DashboardView({ data }: { data: DashboardData }) {
  const ctrDaily = useMemo(() => pivot(data.ctrDaily, (r) => day(r.day), (r) => r.tier, (r) => r.ctr), [data])
  const ctrPosition = useMemo(
    () => pivot(data.ctrByPosition, (r) => r.position, (r) => r.tier, (r) => r.ctr),
    [data],
  )
  const impressions = data.ctrDaily.reduce((s, r) => s + r.impressions, 0)
  const clicks = data.ctrDaily.reduce((s, r) => s + r.clicks, 0)
  const serves = data.ctrDaily.reduce((s, r) => s + r.serves, 0)
  const all = data.serveLatency.find((l) => l.tier === 'all')
  const tiersOnly = data.serveLatency.filter((l) => l.tier !== 'all')
  const models = [...data.models].reverse().filter((m) => m.ndcgAt10 !== undefined)
  const percentAxis = (v: number) => pct(v, 0)

  return (
    <>
      <section className="stats" aria-label="Headline figures">
        <Stat id="ctr" label={`CTR, last ${data.days} days`} value={pct(impressions ? clicks / impressions : 0, 2)} hint={`${clicks} clicks / ${impressions} served items`} />
        <Stat id="serves" label="Lists served" value={String(serves)} hint={all ? `p50 ${all.p50Ms.toFixed(1)} ms · p99 ${all.p99Ms.toFixed(1)} ms` : undefined} />
        <Stat id="coverage" label="Catalogue coverage" value={pct(data.coverage.coverage)} hint={`${data.coverage.moviesServed} of ${data.coverage.catalogue} movies`} />
        <Stat id="freshness" label={`Freshness, last ${data.recentMinutes} min`} value={`${data.freshness.p50Seconds.toFixed(1)} s`} hint={`p95 ${data.freshness.p95Seconds.toFixed(1)} s over ${data.freshness.events} events`} />
        <Stat id="ingest" label="Ingest rate" value={`${data.ingest.eventsPerSecond.toFixed(2)}/s`} hint={`${data.ingest.events} events in ${data.recentMinutes} min`} />
      </section>

      <section className="charts" aria-label="Charts">
        <Chart id="ctr-daily" title="CTR per day and tier (clicks on served items only)" points={ctrDaily.data.length}>
          <LineChart data={ctrDaily.data}>
            <CartesianGrid strokeDasharray="3 3" />
            <XAxis dataKey="x" />
            <YAxis tickFormatter={percentAxis} width={48} />
            <Tooltip formatter={(v) => pct(Number(v), 2)} />
            <Legend />
            {ctrDaily.tiers.map((t) => (
              <Line key={t} dataKey={t} stroke={colour(t)} strokeWidth={2} isAnimationActive={false} />
            ))}
          </LineChart>
        </Chart>
        <Chart id="ctr-position" title="CTR by position in the list" points={ctrPosition.data.length}>
          <LineChart data={ctrPosition.data}>
            <CartesianGrid strokeDasharray="3 3" />
            <XAxis dataKey="x" />
            <YAxis tickFormatter={percentAxis} width={48} />
            <Tooltip formatter={(v) => pct(Number(v), 2)} labelFormatter={(p) => `Position ${p}`} />
            <Legend />
            {ctrPosition.tiers.map((t) => (
              <Line key={t} dataKey={t} stroke={colour(t)} strokeWidth={2} isAnimationActive={false} />
            ))}
          </LineChart>
        </Chart>
        <Chart id="tier-mix" title="Tier mix (share of lists served)" points={data.tierMix.length}>
          <BarChart data={data.tierMix}>
            <CartesianGrid strokeDasharray="3 3" />
            <XAxis dataKey="tier" />
            <YAxis tickFormatter={percentAxis} width={48} />
            <Tooltip formatter={(v) => pct(Number(v))} />
            <Bar dataKey="share" name="share" fill="#4338ca" isAnimationActive={false} />
          </BarChart>
        </Chart>
        <Chart id="latency" title="Serve latency per tier (ms)" points={tiersOnly.length}>
          <BarChart data={tiersOnly}>
            <CartesianGrid strokeDasharray="3 3" />
            <XAxis dataKey="tier" />
            <YAxis width={48} />
            <Tooltip formatter={(v) => `${Number(v).toFixed(2)} ms`} />
            <Legend />
            <Bar dataKey="p50Ms" name="p50" fill="#0f766e" isAnimationActive={false} />
            <Bar dataKey="p99Ms" name="p99" fill="#b45309" isAnimationActive={false} />
          </BarChart>
        </Chart>
        <Chart id="coverage" title="Catalogue coverage per day" points={data.coverageDaily.length}>
          <LineChart data={data.coverageDaily.map((c) => ({ x: day(c.day), coverage: c.coverage }))}>
            <CartesianGrid strokeDasharray="3 3" />
            <XAxis dataKey="x" />
            <YAxis tickFormatter={percentAxis} width={48} />
            <Tooltip formatter={(v) => pct(Number(v))} />
            <Line dataKey="coverage" stroke="#be185d" strokeWidth={2} isAnimationActive={false} />
          </LineChart>
        </Chart>
        <Chart id="ingest" title={`Events ingested per minute (UTC), last ${data.recentMinutes} min`} points={data.ingest.perMinute.length}>
          <BarChart data={data.ingest.perMinute.map((m) => ({ x: minute(m.minute), events: m.events }))}>
            <CartesianGrid strokeDasharray="3 3" />
            <XAxis dataKey="x" />
            <YAxis width={48} allowDecimals={false} />
            <Tooltip />
            <Bar dataKey="events" fill="#4338ca" isAnimationActive={false} />
          </BarChart>
        </Chart>
        <Chart id="models" title="Model NDCG@10 per version (holdout) vs popularity" points={models.length}>
          <LineChart data={models.map((m) => ({ x: m.version, model: m.ndcgAt10, popularity: m.popularityNdcgAt10 }))}>
            <CartesianGrid strokeDasharray="3 3" />
            <XAxis dataKey="x" tick={false} />
            <YAxis width={48} />
            <Tooltip formatter={(v) => Number(v).toFixed(3)} />
            <Legend />
            <Line dataKey="model" name="model" stroke="#4338ca" strokeWidth={2} isAnimationActive={false} />
            <Line dataKey="popularity" name="popularity" stroke="#5b6475" strokeDasharray="4 4" isAnimationActive={false} />
          </LineChart>
        </Chart>
        <Experiments rows={data.experimentCtr} />
      </section>

      <ModelTable models={data.models} />
    </>
  )
}

function TokenForm({ error, onToken }: { error?: string; onToken: (t: string) => void }) {
  const [value, setValue] = useState('')
  const submit = (e: FormEvent) => {
    e.preventDefault()
    if (value.trim()) onToken(value.trim())
  }
  return (
    <form className="card picker" onSubmit={submit} aria-labelledby="dashboard-signin">
      <h2 id="dashboard-signin">Analyst sign-in</h2>
      <p className="muted small">
        The dashboard needs a token with the <code>analyst</code> (or <code>admin</code>) scope. On the local stack:{' '}
        <code>.venv/bin/python -m stack token --analyst</code>
      </p>
      <label htmlFor="analyst-token">Analyst token</label>
      <input id="analyst-token" type="password" autoComplete="off" value={value} onChange={(e) => setValue(e.target.value)} />
      {error ? (
        <p role="alert" className="error small">
          {error}
        </p>
      ) : null}
      <button type="submit" className="btn btn-primary" disabled={!value.trim()}>
        Open dashboard
      </button>
    </form>
  )
}

export interface DashboardProps {
  client: AnalyticsClient
  intervalMs?: number
}

/** /dashboard: how the recommender performs, from the AnalyticsService only, refreshed live. */
export function Dashboard({ client, intervalMs = REFRESH_MS }: DashboardProps) {
  const [token, setToken] = useState<string | null>(() => storedToken())
  const [refused, setRefused] = useState<string | undefined>()
  const [days, setDays] = useState(7)
  const fetcher = useCallback(
    async (signal: AbortSignal) => {
      try {
        return await client.getDashboard(token ?? '', { days, recentMinutes: 60 }, signal)
      } catch (err) {
        if (err instanceof UnauthorizedError || err instanceof ForbiddenError) {
          storeToken(null)
          setToken(null)
          setRefused(`The token was refused: ${err.message}`)
        }
        throw err
      }
    },
    [client, token, days],
  )
  const poll = usePolling(token ? `${token}:${days}` : null, fetcher, {
    intervalMs,
    fastIntervalMs: intervalMs,
    fastUntil: 0,
  })

  return (
    <div className="app dashboard">
      <header className="app-header">
        <div className="brand">
          <span className="logo" aria-hidden="true">
            ▶
          </span>
          <h1>recsys dashboard</h1>
        </div>
        {token ? (
          <div className="who">
            <label className="small">
              Window{' '}
              <select value={days} onChange={(e) => setDays(Number(e.target.value))}>
                {[1, 7, 14, 30].map((d) => (
                  <option key={d} value={d}>
                    {d === 1 ? 'today' : `${d} days`}
                  </option>
                ))}
              </select>
            </label>
            <button
              type="button"
              className="btn btn-small"
              onClick={() => {
                storeToken(null)
                setToken(null)
                setRefused(undefined)
              }}
            >
              Sign out
            </button>
          </div>
        ) : null}
      </header>
      <main id="main" className="app-main">
        {!token ? (
          <TokenForm
            error={refused}
            onToken={(t) => {
              storeToken(t)
              setRefused(undefined)
              setToken(t)
            }}
          />
        ) : (
          <>
            <p className="muted small" aria-live="polite" data-testid="updated">
              {poll.updatedAt
                ? `Updated ${new Date(poll.updatedAt).toLocaleTimeString()} · refreshes every ${Math.round(intervalMs / 1000)} s`
                : 'Loading…'}
              {poll.error ? <span className="error"> · {poll.error.message}</span> : null}
            </p>
            {poll.data ? <DashboardView data={poll.data} /> : null}
          </>
        )}
      </main>
      <footer className="app-footer muted small">
        <a href="/">Back to the app</a>
      </footer>
    </div>
  )
}
