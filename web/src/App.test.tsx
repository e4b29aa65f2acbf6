import { act, render, screen, waitFor, within } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { describe, expect, it } from 'vitest'
import { createApi } from './api'
import { App } from './App'
import { SESSION_KEY, SessionStore } from './session'
import { json, mockFetch, movie, recs, sessionAnswer, type Route } from './test/fakeApi'

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

/** The app with a fetch mock, signed in as `user` (null: signed out); the token in sessionStorage. */
function renderApp(routes: Route[], user: string | null = '7') {
  const session = new SessionStore(window.sessionStorage)
  if (user) session.set({ accessToken: `tok-${user}`, tokenType: 'Bearer', userId: user, expiresAt: '2999-01-01T00:00:00Z' })
  const fetch = mockFetch(routes)
  const api = createApi('http://api.test', fetch, { session })
  render(<App api={api} intervalMs={60_000} fastIntervalMs={40} />)
  return fetch
}

/** [path, Authorization header] of every call, in order. */
function calls(fetch: ReturnType<typeof mockFetch>) {
  return fetch.mock.calls.map(([u, init]) => [
    `${init?.method ?? 'GET'} ${new URL(u).pathname}`,
    (init?.headers as Record<string, string>)?.Authorization,
  ])
}

function eventBodies(fetch: ReturnType<typeof mockFetch>) {
  return fetch.mock.calls
    .filter(([url, init]) => new URL(url).pathname === '/v1/events' && init?.method === 'POST')
    .map(([, init]) => JSON.parse(init!.body as string))
}

describe('App', () => {
  it('shows sign-in and creates a new user through POST /v1/sessions, then sends its token', async () => {
    const fetch = renderApp(
      baseRoutes([
        { method: 'POST', match: /^\/v1\/sessions$/, respond: () => json(sessionAnswer('10000001', 'tok-new')) },
        { match: /^\/v1\/users\/10000001\/recommendations$/, respond: () => json(recs('TIER_POPULAR', [1, 2])) },
      ]),
      null,
    )
    expect(screen.getByRole('heading', { name: 'Sign in' })).toBeInTheDocument()
    await userEvent.type(screen.getByLabelText('Your name, for a new user'), 'Ada')
    await userEvent.click(screen.getByRole('button', { name: 'Create user and sign in' }))
    expect(await screen.findByTestId('current-user')).toHaveTextContent('10000001')
    expect(screen.getByText('Ada')).toBeInTheDocument()
    expect(await screen.findByRole('button', { name: 'Movie 1' })).toBeInTheDocument()

    const sessionCall = fetch.mock.calls.find(([u]) => u.endsWith('/v1/sessions'))!
    expect(JSON.parse(sessionCall[1]!.body as string)).toEqual({ displayName: 'Ada' })
    // CreateUser (POST /v1/users) needs a service token now: the app never calls it.
    expect(calls(fetch).some(([c]) => c === 'POST /v1/users')).toBe(false)
    // Every call after signing in carries the token.
    const after = calls(fetch).filter(([c]) => c !== 'POST /v1/sessions')
    expect(after.length).toBeGreaterThan(0)
    for (const [c, auth] of after) expect([c, auth]).toEqual([c, 'Bearer tok-new'])
    expect(JSON.parse(window.sessionStorage.getItem(SESSION_KEY)!)).toMatchObject({ accessToken: 'tok-new', userId: '10000001' })
  })

  it('signs in as an existing user by id', async () => {
    const fetch = renderApp(
      baseRoutes([
        { method: 'POST', match: /^\/v1\/sessions$/, respond: () => json(sessionAnswer('42')) },
        { match: /^\/v1\/users\/42\/recommendations$/, respond: () => json(recs('TIER_BATCH', [3])) },
      ]),
      null,
    )
    await userEvent.type(screen.getByLabelText('User id'), '42')
    await userEvent.click(screen.getByRole('button', { name: 'Sign in' }))
    expect(await screen.findByTestId('current-user')).toHaveTextContent('42')
    expect(await screen.findByRole('button', { name: 'Movie 3' })).toBeInTheDocument()
    expect(JSON.parse(fetch.mock.calls[0][1]!.body as string)).toEqual({ userId: '42' })
    expect(calls(fetch)).toContainEqual(['GET /v1/users/42/recommendations', 'Bearer tok-42'])
  })

  it('fills in the user id from ?user= without signing in by itself', async () => {
    window.history.replaceState(null, '', '/?user=31')
    try {
      const fetch = renderApp(baseRoutes(), null)
      expect(screen.getByLabelText('User id')).toHaveValue('31')
      expect(fetch).not.toHaveBeenCalled()
    } finally {
      window.history.replaceState(null, '', '/')
    }
  })

  it('validates a typed user id and a new user name', async () => {
    const fetch = renderApp(baseRoutes(), null)
    await userEvent.type(screen.getByLabelText('User id'), 'abc{Enter}')
    expect(screen.getByText('A user id is a positive whole number.')).toBeInTheDocument()
    expect(screen.getByLabelText('User id')).toHaveAttribute('aria-invalid', 'true')
    await userEvent.click(screen.getByRole('button', { name: 'Create user and sign in' }))
    expect(screen.getByText(/Give the new user a name/)).toBeInTheDocument()
    expect(fetch).not.toHaveBeenCalled()
  })

  it('says so when this deployment cannot sign in (501)', async () => {
    renderApp(
      baseRoutes([{ method: 'POST', match: /^\/v1\/sessions$/, respond: () => json({ code: 12, message: 'Method not implemented!' }, 501) }]),
      null,
    )
    await userEvent.type(screen.getByLabelText('User id'), '42{Enter}')
    expect(await screen.findByRole('alert')).toHaveTextContent(/no development token issuer/)
    expect(screen.queryByTestId('current-user')).not.toBeInTheDocument()
  })

  it('a 401 drops the token and returns to sign-in, saying why', async () => {
    renderApp(baseRoutes([{ match: /recommendations$/, respond: () => json({ code: 16, message: 'Jwt is expired' }, 401) }]))
    expect(await screen.findByRole('heading', { name: 'Sign in' })).toBeInTheDocument()
    expect(screen.getByTestId('session-ended')).toHaveTextContent(/did not accept your session/)
    expect(screen.getByRole('heading', { name: 'Sign in' })).toHaveFocus()
    expect(screen.queryByTestId('current-user')).not.toBeInTheDocument()
    expect(window.sessionStorage.getItem(SESSION_KEY)).toBeNull()
  })

  it('says the session expired when the stored token expired while the tab was away', async () => {
    window.sessionStorage.setItem(
      SESSION_KEY,
      JSON.stringify({ accessToken: 'tok-7', tokenType: 'Bearer', userId: '7', expiresAt: '2000-01-01T00:00:00Z' }),
    )
    const fetch = renderApp(baseRoutes(), null)
    expect(screen.getByRole('heading', { name: 'Sign in' })).toBeInTheDocument()
    expect(screen.getByTestId('session-ended')).toHaveTextContent('Your session expired.')
    expect(fetch).not.toHaveBeenCalled()
  })

  it('signs out, and switching user goes through sign-in', async () => {
    const fetch = renderApp(
      baseRoutes([
        { match: /recommendations$/, respond: (u) => json(recs('TIER_POPULAR', u.pathname.includes('/8/') ? [8] : [7])) },
        { method: 'POST', match: /^\/v1\/sessions$/, respond: () => json(sessionAnswer('8')) },
      ]),
    )
    expect(await screen.findByRole('button', { name: 'Movie 7' })).toBeInTheDocument()
    await userEvent.click(screen.getByRole('button', { name: 'Sign out' }))
    expect(screen.getByRole('heading', { name: 'Sign in' })).toBeInTheDocument()
    expect(screen.getByTestId('session-ended')).toHaveTextContent('You signed out.')
    expect(window.sessionStorage.getItem(SESSION_KEY)).toBeNull()

    await userEvent.type(screen.getByLabelText('User id'), '8{Enter}')
    expect(await screen.findByRole('button', { name: 'Movie 8' })).toBeInTheDocument()
    expect(screen.getByTestId('current-user')).toHaveTextContent('8')
    expect(calls(fetch)).toContainEqual(['GET /v1/users/8/recommendations', 'Bearer tok-8'])
    expect(calls(fetch).filter(([c]) => c === 'GET /v1/users/8/recommendations').every(([, a]) => a === 'Bearer tok-8')).toBe(true)
  })

  it('shows a 403 on an event as not allowed, and stays signed in', async () => {
    renderApp(
      baseRoutes([
        { match: /recommendations$/, respond: () => json(recs('TIER_POPULAR', [1])) },
        { method: 'POST', match: /^\/v1\/events$/, respond: () => json({ code: 7, message: 'the token may not act for user 7' }, 403) },
      ]),
    )
    await userEvent.click(await screen.findByRole('button', { name: 'Movie 1' }))
    const dialog = await screen.findByRole('dialog')
    await userEvent.click(within(dialog).getByRole('button', { name: 'Like' }))
    const alert = await within(dialog).findByRole('alert')
    expect(alert).toHaveAttribute('data-error-kind', 'forbidden')
    expect(alert).toHaveTextContent('the token may not act for user 7')
    expect(screen.getByTestId('current-user')).toHaveTextContent('7')
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
