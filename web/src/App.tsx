import { useCallback, useEffect, useState, useSyncExternalStore } from 'react'
import { api as defaultApi, type ApiClient, type EventType, type Movie } from './api'
import { Catalogue } from './components/Catalogue'
import { MovieDialog } from './components/MovieDialog'
import { ProfileSummary } from './components/ProfileSummary'
import { Recommendations, type RecsUpdate } from './components/Recommendations'
import { SignIn } from './components/SignIn'
import type { EndReason } from './session'

/** How long to poll fast after an action: the speed layer answers within seconds. */
const FAST_POLL_WINDOW_MS = 20_000

type Tab = 'recs' | 'catalogue'

interface Open {
  movie: Movie
  requestId?: string
}

export interface AppProps {
  api?: ApiClient
  intervalMs?: number
  fastIntervalMs?: number
}

/** ?user=ID in the URL: the user id the sign-in form starts with (it does not sign in by itself). */
function urlUser(): string {
  try {
    const fromUrl = new URLSearchParams(window.location.search).get('user')
    return fromUrl && /^\d+$/.test(fromUrl) ? fromUrl : ''
  } catch {
    return ''
  }
}

export function App({ api = defaultApi, intervalMs, fastIntervalMs }: AppProps) {
  // The signed-in user is the one the token acts for; no token, no user (sign-in shows).
  const session = useSyncExternalStore(api.session.subscribe, api.session.get)
  const userId = session?.userId ?? null
  const [ended, setEnded] = useState<EndReason | null>(() => api.session.endedBeforeLoad)
  const [tab, setTab] = useState<Tab>('recs')
  const [open, setOpen] = useState<Open | null>(null)
  const [fastUntil, setFastUntil] = useState(0)
  const [unseenUpdate, setUnseenUpdate] = useState(false)

  // Sign-in, sign-out, an expired token and a 401 from any call all land here.
  useEffect(
    () =>
      api.session.subscribe((s, reason) => {
        setEnded(s ? null : (reason ?? null))
        setOpen(null)
        setTab('recs')
        setUnseenUpdate(false)
        setFastUntil(0)
      }),
    [api],
  )

  useEffect(() => {
    if (tab === 'recs') setUnseenUpdate(false)
  }, [tab])

  const acted = useCallback(() => setFastUntil(Date.now() + FAST_POLL_WINDOW_MS), [])

  const openMovie = useCallback(
    (movie: Movie, requestId?: string) => {
      setOpen({ movie, requestId })
      if (!userId) return
      // Opening a recommended movie is a click on the serve; anything else is a view.
      const type: EventType = requestId ? 'EVENT_TYPE_CLICK' : 'EVENT_TYPE_VIEW'
      api.postEvent({ userId, movieId: movie.movieId, type, requestId }).then(acted, () => {
        // a lost click or view is not worth interrupting the person for
      })
    },
    [api, userId, acted],
  )

  const onUpdate = useCallback(
    (_u: RecsUpdate) => {
      if (tab !== 'recs') setUnseenUpdate(true)
    },
    [tab],
  )

  return (
    <div className="app">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="app-header">
        <div className="brand">
          <span className="logo" aria-hidden="true">
            ▶
          </span>
          <h1>recsys</h1>
        </div>
        {session ? (
          <div className="who">
            <span>
              Signed in as {session.displayName ? <span className="who-name">{session.displayName}</span> : null}{' '}
              user <strong data-testid="current-user">{session.userId}</strong>
            </span>
            <button type="button" className="btn btn-small" onClick={() => api.signOut()}>
              Sign out
            </button>
          </div>
        ) : null}
      </header>

      <main id="main" className="app-main">
        {!userId ? (
          <SignIn api={api} initialUserId={urlUser()} ended={ended} />
        ) : (
          <>
            <ProfileSummary api={api} userId={userId} fastUntil={fastUntil} />
            <nav className="tabs" aria-label="Views">
              <button
                type="button"
                className="tab"
                aria-current={tab === 'recs' ? 'page' : undefined}
                onClick={() => setTab('recs')}
              >
                Recommendations
                {unseenUpdate ? (
                  <span className="tab-dot" aria-label="(updated)">
                    ●
                  </span>
                ) : null}
              </button>
              <button
                type="button"
                className="tab"
                aria-current={tab === 'catalogue' ? 'page' : undefined}
                onClick={() => setTab('catalogue')}
              >
                Browse catalogue
              </button>
            </nav>
            <div hidden={tab !== 'recs'}>
              <Recommendations
                key={userId}
                api={api}
                userId={userId}
                fastUntil={fastUntil}
                intervalMs={intervalMs}
                fastIntervalMs={fastIntervalMs}
                onOpen={(m, rid) => openMovie(m, rid)}
                onUpdate={onUpdate}
              />
            </div>
            <div hidden={tab !== 'catalogue'}>
              <Catalogue api={api} onOpen={(m) => openMovie(m)} />
            </div>
          </>
        )}
      </main>

      {open && userId ? (
        <MovieDialog
          api={api}
          userId={userId}
          movie={open.movie}
          requestId={open.requestId}
          onClose={() => setOpen(null)}
          onOpenMovie={(m) => openMovie(m)}
          onEventPosted={acted}
        />
      ) : null}

      <footer className="app-footer muted small">
        API: <code>{api.baseUrl}</code> · <a href="/dashboard">Dashboard</a>
      </footer>
    </div>
  )
}
