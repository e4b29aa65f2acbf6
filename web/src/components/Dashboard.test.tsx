import { render, screen, waitFor, within } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { beforeAll, describe, expect, it } from 'vitest'
import { ANALYST_TOKEN_KEY, createAnalyticsClient } from '../analytics'
import type { GetDashboardResponseJson } from '../gen/recsys/v1/analytics_service_pb'
import { json, mockFetch } from '../test/fakeApi'
import { Dashboard } from './Dashboard'

// recharts' ResponsiveContainer measures its box; jsdom has no layout, so give it one.
beforeAll(() => {
  globalThis.ResizeObserver ??= class {
    observe() {}
    unobserve() {}
    disconnect() {}
  } as unknown as typeof ResizeObserver
})

const answer: GetDashboardResponseJson = {
  generatedAt: '2026-11-26T20:00:00Z',
  days: 7,
  recentMinutes: 60,
  ctrDaily: [
    { day: '2026-11-25T00:00:00Z', tier: 'popular', serves: '10', impressions: '100', clicks: '5', ctr: 0.05, serveCtr: 0.3 },
    { day: '2026-11-26T00:00:00Z', tier: 'cache', serves: '10', impressions: '100', clicks: '15', ctr: 0.15 },
  ],
  ctrByPosition: [{ tier: 'popular', position: 1, impressions: '10', clicks: '2', ctr: 0.2 }],
  coverageDaily: [{ day: '2026-11-26T00:00:00Z', moviesServed: '30', coverage: 0.3 }],
  coverage: { moviesServed: '40', catalogue: '100', coverage: 0.4 },
  tierMix: [{ tier: 'cache', serves: '10', share: 0.5 }, { tier: 'popular', serves: '10', share: 0.5 }],
  serveLatency: [{ tier: 'all', serves: '20', p50Ms: 1.5, p99Ms: 9 }, { tier: 'cache', serves: '10', p50Ms: 1, p99Ms: 2 }],
  models: [{ version: 'als-2', status: 'live', ndcgAt10: 0.31, popularityNdcgAt10: 0.2 }, { version: 'als-1', status: 'retired' }],
  freshness: { events: '12', p50Seconds: 2.5, p95Seconds: 6 },
  ingest: { events: '36', eventsPerSecond: 0.01, perMinute: [{ minute: '2026-11-26T19:59:00Z', events: '36' }] },
  experimentCtr: [
    { experiment: 'exp-1', variant: 'candidate', users: '20', serves: '20', impressions: '200', clicks: '30', ctr: 0.15, ctrLow: 0.107, ctrHigh: 0.207 },
    { experiment: 'exp-1', variant: 'control', users: '20', serves: '20', impressions: '200', clicks: '20', ctr: 0.1, ctrLow: 0.066, ctrHigh: 0.149 },
  ],
}

function renderDashboard(status = 200) {
  const fetch = mockFetch([
    { match: /^\/v1\/analytics\/dashboard$/, respond: () => (status === 200 ? json(answer) : json({ code: 7, message: 'this method needs the analyst or the admin scope' }, status)) },
  ])
  render(<Dashboard client={createAnalyticsClient('http://api.test', fetch)} intervalMs={60_000} />)
  return fetch
}

describe('the dashboard', () => {
  it('asks for an analyst token, then shows the figures the AnalyticsService answers', async () => {
    const fetch = renderDashboard()
    expect(fetch).not.toHaveBeenCalled()
    await userEvent.type(screen.getByLabelText('Analyst token'), 'tok-analyst')
    await userEvent.click(screen.getByRole('button', { name: 'Open dashboard' }))
    // CTR over the window: (5 + 15) / 200 served items.
    expect(await screen.findByTestId('stat-ctr')).toHaveTextContent('10.00%')
    expect(screen.getByTestId('stat-ctr')).toHaveTextContent('20 clicks / 200 served items')
    expect(screen.getByTestId('stat-coverage')).toHaveTextContent('40.0%')
    expect(screen.getByTestId('stat-freshness')).toHaveTextContent('2.5 s')
    expect(screen.getByTestId('stat-freshness')).toHaveTextContent('p95 6.0 s over 12 events')
    expect(screen.getByTestId('stat-ingest')).toHaveTextContent('36 events in 60 min')
    expect(screen.getByTestId('stat-serves')).toHaveTextContent('p99 9.0 ms')
    expect(screen.getByTestId('chart-ctr-daily')).toHaveAttribute('data-points', '2')
    expect(screen.getByTestId('chart-latency')).toHaveAttribute('data-points', '1') // "all" is a headline
    expect(screen.getByTestId('chart-models')).toHaveAttribute('data-points', '1') // only als-2 has NDCG
    const live = within(screen.getByTestId('models')).getByText('als-2').closest('tr')!
    expect(live).toHaveAttribute('data-status', 'live')
    expect(live).toHaveTextContent('0.310')
    expect(screen.getByTestId('chart-experiments')).toHaveAttribute('data-points', '2')
    const candidate = within(screen.getByTestId('experiment-table')).getByText('candidate').closest('tr')!
    expect(candidate).toHaveTextContent('30 / 200')
    expect(candidate).toHaveTextContent('15.00%')
    expect(candidate).toHaveTextContent('10.70% – 20.70%')
    const [url, init] = fetch.mock.calls[0]
    expect(new URL(url).search).toBe('?days=7&recentMinutes=60')
    expect((init?.headers as Record<string, string>).Authorization).toBe('Bearer tok-analyst')
    expect(window.sessionStorage.getItem(ANALYST_TOKEN_KEY)).toBe('tok-analyst')
  })

  it('drops a refused token and says why', async () => {
    window.sessionStorage.setItem(ANALYST_TOKEN_KEY, 'tok-user')
    renderDashboard(403)
    expect(await screen.findByRole('alert')).toHaveTextContent('needs the analyst or the admin scope')
    expect(screen.getByLabelText('Analyst token')).toBeInTheDocument()
    await waitFor(() => expect(window.sessionStorage.getItem(ANALYST_TOKEN_KEY)).toBeNull())
  })
})
