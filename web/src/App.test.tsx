import { act, render, screen, waitFor, within } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { describe, expect, it } from 'vitest'
import { createApi } from './api'
import { App } from './App'
import { json, mockFetch, movie, recs, type Route } from './test/fakeApi'

const profile = { profile: { userId: '7', hasPreferenceVector: false, interactionCount: '0', ratingCount: '0', modelVersion: '', topGenres: [], recentInteractions: [] } }

function baseRoutes(extra: Route[] = []): Route[] {
  return [
    ...extra,
    { match: /^\/v1\/users\/\d+\/profile$/, respond: () => json(profile) },
    { match: /^\/v1\/movies\/\d+\/similar$/, respond: () => json({ movieId: '1', items: [{ movie: movie(9, 'Similar Nine'), score: 0.9 }], modelVersion: 'als-1' }) },
    { match: /^\/v1\/movies$/, respond: () => json({ movies: [movie(1, 'Alpha'), movie(2, 'Beta')], nextPageToken: 'p2' }) },
    { method: 'POST', match: /^\/v1\/events$/, respond: () => json({ eventId: 'e' }) },
  ]
}

function renderApp(routes: Route[], user: string | null = '7') {
  if (user) window.localStorage.setItem('recsys.userId', user)
  const fetch = mockFetch(routes)
  const api = createApi('http://api.test', fetch)
  render(<App api={api} intervalMs={60_000} fastIntervalMs={40} />)
  return fetch
}

function eventBodies(fetch: ReturnType<typeof mockFetch>) {
  return fetch.mock.calls
    .filter(([url, init]) => new URL(url).pathname === '/v1/events' && init?.method === 'POST')
    .map(([, init]) => JSON.parse(init!.body as string))
}

describe('App', () => {
  it('shows the user picker and starts as a new user', async () => {
    const fetch = renderApp(
      baseRoutes([
        { method: 'POST', match: /^\/v1\/users$/, respond: () => json({ userId: '10000001' }) },
        { match: /^\/v1\/users\/10000001\/recommendations$/, respond: () => json(recs('TIER_POPULAR', [1, 2])) },
      ]),
      null,
    )
    await userEvent.click(screen.getByRole('button', { name: 'Start as a new user' }))
    expect(await screen.findByTestId('current-user')).toHaveTextContent('10000001')
    expect(await screen.findByRole('button', { name: 'Movie 1' })).toBeInTheDocument()
    expect(fetch.mock.calls.some(([u, i]) => u.endsWith('/v1/users') && i?.method === 'POST')).toBe(true)
    expect(window.localStorage.getItem('recsys.userId')).toBe('10000001')
  })

  it('validates a typed user id', async () => {
    renderApp(baseRoutes(), null)
    await userEvent.type(screen.getByLabelText('User id'), 'abc{Enter}')
    expect(screen.getByText('A user id is a positive whole number.')).toBeInTheDocument()
    expect(screen.getByLabelText('User id')).toHaveAttribute('aria-invalid', 'true')
  })

  it('renders recommendations with the tier of each and the reason', async () => {
    renderApp(baseRoutes([{ match: /recommendations$/, respond: () => json(recs('TIER_REALTIME', [1, 2, 3])) }]))
    const items = await screen.findAllByRole('listitem')
    expect(items).toHaveLength(3)
    expect(within(items[0]).getByText('Realtime')).toHaveAttribute('data-tier', 'TIER_REALTIME')
    expect(within(items[0]).getByText('Because you liked comedies')).toBeInTheDocument()
    const servedBy = screen.getByText(/Served by/)
    expect(within(servedBy).getByText('Realtime')).toBeInTheDocument()
    expect(screen.getByText(/model als-1/)).toBeInTheDocument()
  })

  it('shows an empty state', async () => {
    renderApp(baseRoutes([{ match: /recommendations$/, respond: () => json({ userId: '7', items: [], tier: 'TIER_POPULAR', modelVersion: '', requestId: 'r' }) }]))
    expect(await screen.findByText(/No recommendations yet/)).toBeInTheDocument()
  })

  it('shows a rate-limited state with a countdown, then recovers', async () => {
    let calls = 0
    renderApp(
      baseRoutes([
        {
          match: /recommendations$/,
          respond: () => (++calls === 1 ? new Response('local_rate_limited', { status: 429, headers: { 'retry-after': '1' } }) : json(recs('TIER_POPULAR', [4]))),
        },
      ]),
    )
    const alert = await screen.findByRole('alert')
    expect(alert).toHaveTextContent(/Too many requests, retrying in 1 s/)
    expect(alert).toHaveAttribute('data-error-kind', 'rate-limited')
    expect(await screen.findByRole('button', { name: 'Movie 4' }, { timeout: 3000 })).toBeInTheDocument()
    expect(screen.queryByRole('alert')).not.toBeInTheDocument()
  })

  it('shows an unavailable state on 503', async () => {
    renderApp(baseRoutes([{ match: /recommendations$/, respond: () => json({ code: 14, message: 'upstream connect error' }, 503) }]))
    const alert = await screen.findByRole('alert')
    expect(alert).toHaveAttribute('data-error-kind', 'unavailable')
    expect(alert).toHaveTextContent('The service is unavailable right now.')
    expect(alert).toHaveTextContent(/retrying in \d+ s/)
  })

  it('shows the server message of a generic error and retries on demand', async () => {
    let calls = 0
    renderApp(
      baseRoutes([
        {
          match: /recommendations$/,
          respond: () => (++calls === 1 ? json({ code: 3, message: 'user_id: must be positive' }, 400) : json(recs('TIER_POPULAR', [5]))),
        },
      ]),
    )
    const alert = await screen.findByRole('alert')
    expect(alert).toHaveTextContent('user_id: must be positive')
    await userEvent.click(within(alert).getByRole('button', { name: 'Try again' }))
    expect(await screen.findByRole('button', { name: 'Movie 5' })).toBeInTheDocument()
  })

  it('posts click and rate events with the requestId and shows the update without reload', async () => {
    let rated = false
    let streamed = false
    const fetch = renderApp(
      baseRoutes([
        { match: /recommendations$/, respond: () => json(rated && streamed ? recs('TIER_REALTIME', [7, 8], 'req-2') : recs('TIER_POPULAR', [1, 2], 'req-1')) },
        {
          method: 'POST',
          match: /^\/v1\/events$/,
          respond: (_u, init) => {
            if (JSON.parse(init!.body as string).type === 'EVENT_TYPE_RATE') rated = true
            return json({ eventId: 'e' })
          },
        },
      ]),
    )
    await userEvent.click(await screen.findByRole('button', { name: 'Movie 1' }))
    const dialog = await screen.findByRole('dialog', { name: 'Movie 1' })
    expect(within(dialog).getByText('From your recommendations')).toBeInTheDocument()
    await waitFor(() => expect(eventBodies(fetch)).toHaveLength(1))
    expect(eventBodies(fetch)[0]).toEqual({ userId: '7', movieId: '1', type: 'EVENT_TYPE_CLICK', requestId: 'req-1' })

    await userEvent.click(within(dialog).getByRole('radio', { name: '4.5 stars' }))
    await userEvent.click(within(dialog).getByRole('button', { name: 'Rate 4.5 ★' }))
    expect(await within(dialog).findByText(/Rated 4.5 ★/)).toBeInTheDocument()
    expect(eventBodies(fetch)[1]).toEqual({ userId: '7', movieId: '1', type: 'EVENT_TYPE_RATE', rating: 4.5, requestId: 'req-1' })

    await userEvent.click(within(dialog).getByRole('button', { name: 'Like' }))
    await waitFor(() => expect(eventBodies(fetch)).toHaveLength(3))
    expect(eventBodies(fetch)[2]).toMatchObject({ type: 'EVENT_TYPE_LIKE', requestId: 'req-1' })

    await userEvent.keyboard('{Escape}')
    expect(screen.queryByRole('dialog')).not.toBeInTheDocument()
    // Focus returns to the button that opened the dialog.
    expect(screen.getByRole('button', { name: 'Movie 1' })).toHaveFocus()

    // The streaming job updates the profile; the fast poll picks up the new list on its own.
    streamed = true
    expect(await screen.findByRole('button', { name: 'Movie 7' }, { timeout: 3000 })).toBeInTheDocument()
    const updated = await screen.findByTestId('recs-updated')
    expect(updated).toHaveTextContent(/Updated/)
    expect(updated).toHaveTextContent('Popular → Realtime')
    expect(document.querySelector('.movie-grid')).toHaveAttribute('data-request-id', 'req-2')
  })

  it('posts a view without requestId for catalogue movies and shows a 400 message on a bad event', async () => {
    const fetch = renderApp(
      baseRoutes([
        { match: /recommendations$/, respond: () => json(recs('TIER_POPULAR', [1])) },
        {
          method: 'POST',
          match: /^\/v1\/events$/,
          respond: (_u, init) =>
            JSON.parse(init!.body as string).type === 'EVENT_TYPE_WATCH'
              ? json({ code: 3, message: 'movie_id: unknown movie' }, 400)
              : json({ eventId: 'e' }),
        },
      ]),
    )
    await userEvent.click(screen.getByRole('button', { name: 'Browse catalogue' }))
    await userEvent.click(await screen.findByRole('button', { name: 'Beta' }))
    const dialog = await screen.findByRole('dialog', { name: 'Beta' })
    await waitFor(() => expect(eventBodies(fetch)).toHaveLength(1))
    expect(eventBodies(fetch)[0]).toEqual({ userId: '7', movieId: '2', type: 'EVENT_TYPE_VIEW' })
    await userEvent.click(within(dialog).getByRole('button', { name: 'Watch' }))
    expect(await within(dialog).findByRole('alert')).toHaveTextContent('movie_id: unknown movie')
    // Similar movies open in the same dialog.
    await userEvent.click(await within(dialog).findByRole('button', { name: 'Similar Nine' }))
    expect(await screen.findByRole('dialog', { name: 'Similar Nine' })).toBeInTheDocument()
  })

  it('searches the catalogue and pages with the next token', async () => {
    const fetch = renderApp(baseRoutes([{ match: /recommendations$/, respond: () => json(recs('TIER_POPULAR', [1])) }]))
    await userEvent.click(screen.getByRole('button', { name: 'Browse catalogue' }))
    await screen.findByRole('button', { name: 'Alpha' })
    await userEvent.type(screen.getByLabelText('Search titles'), 'star')
    await userEvent.selectOptions(screen.getByLabelText('Genre'), 'Sci-Fi')
    await userEvent.click(screen.getByRole('button', { name: 'Search' }))
    await userEvent.click(await screen.findByRole('button', { name: 'Next →' }))
    await waitFor(() => expect(screen.getByText('Page 2')).toBeInTheDocument())
    const urls = fetch.mock.calls.map(([u]) => new URL(u)).filter((u) => u.pathname === '/v1/movies')
    const last = urls[urls.length - 1]
    expect(last.searchParams.get('query')).toBe('star')
    expect(last.searchParams.get('genre')).toBe('Sci-Fi')
    expect(last.searchParams.get('pageToken')).toBe('p2')
    await userEvent.click(screen.getByRole('button', { name: '← Previous' }))
    await waitFor(() => expect(screen.getByText('Page 1')).toBeInTheDocument())
  })

  it('keeps focus inside the dialog with Tab', async () => {
    renderApp(baseRoutes([{ match: /recommendations$/, respond: () => json(recs('TIER_BATCH', [1])) }]))
    await userEvent.click(await screen.findByRole('button', { name: 'Movie 1' }))
    const dialog = await screen.findByRole('dialog')
    await within(dialog).findByRole('button', { name: 'Similar Nine' })
    expect(within(dialog).getByRole('button', { name: 'Close' })).toHaveFocus()
    await userEvent.tab({ shift: true })
    expect(within(dialog).getByRole('button', { name: 'Similar Nine' })).toHaveFocus()
    await userEvent.tab()
    expect(within(dialog).getByRole('button', { name: 'Close' })).toHaveFocus()
    await act(async () => {
      await userEvent.click(within(dialog).getByRole('button', { name: 'Close' }))
    })
    expect(screen.queryByRole('dialog')).not.toBeInTheDocument()
  })

  it('closes the dialog with Escape even when focus left it', async () => {
    renderApp(baseRoutes([{ match: /recommendations$/, respond: () => json(recs('TIER_CACHE', [1])) }]))
    await userEvent.click(await screen.findByRole('button', { name: 'Movie 1' }))
    await screen.findByRole('dialog')
    ;(document.activeElement as HTMLElement).blur()
    expect(document.body).toHaveFocus()
    await userEvent.keyboard('{Escape}')
    expect(screen.queryByRole('dialog')).not.toBeInTheDocument()
  })

  it('says which tier computed a list served from the cache', async () => {
    let calls = 0
    renderApp(baseRoutes([{ match: /recommendations$/, respond: () => json(++calls === 1 ? recs('TIER_REALTIME', [1, 2]) : recs('TIER_CACHE', [1, 2], 'req-2')) }]))
    await screen.findByRole('button', { name: 'Movie 1' })
    // An action makes the list poll fast; the next answer comes from the cache.
    await userEvent.click(screen.getByRole('button', { name: 'Movie 1' }))
    await userEvent.keyboard('{Escape}')
    expect(await screen.findByText('(a cached Realtime list)', {}, { timeout: 3000 })).toBeInTheDocument()
    expect(screen.queryByTestId('recs-updated')).not.toBeInTheDocument()
  })
})
