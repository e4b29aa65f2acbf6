// The signed-in session: the access token the gateway issued, and who it acts for.
//
// Where the token lives: sessionStorage, not localStorage. Any script running on this origin can
// read either, so neither protects the token from XSS; the difference is how long and how widely
// a leaked or forgotten bearer token stays usable. sessionStorage belongs to one tab and is gone
// when the tab closes (it is not kept in the browser profile for days, nor shared with every other
// tab), while a reload keeps it, so the app survives a refresh without signing in again. Signing
// in is one click on the development issuer, so a new tab asking for it costs little.

import type { CreateSessionResponseJson } from './gen/recsys/v1/session_service_pb'

/** An access token and who it acts for: CreateSessionResponse's JSON (userId an int64 string,
 * expiresAt RFC 3339 and absent when the issuer did not say), plus the name the person typed. */
export type Session = Required<Pick<CreateSessionResponseJson, 'accessToken' | 'tokenType' | 'userId'>> &
  Pick<CreateSessionResponseJson, 'expiresAt'> & {
    /** The display name given when this session created its user (client-side only). */
    displayName?: string
  }

/** Why the session ended: signed out on purpose, the token expired, or the API refused it (401). */
export type EndReason = 'signed-out' | 'expired' | 'rejected'

type Listener = (session: Session | null, reason?: EndReason) => void

export const SESSION_KEY = 'recsys.session'

function browserSessionStorage(): Storage | null {
  try {
    return typeof window !== 'undefined' ? window.sessionStorage : null
  } catch {
    return null // storage disabled: the session lasts for this page only
  }
}

function parse(text: string | null): Session | null {
  if (!text) return null
  try {
    const s = JSON.parse(text) as Partial<Session>
    if (typeof s.accessToken !== 'string' || !s.accessToken || typeof s.userId !== 'string' || !s.userId) return null
    return {
      accessToken: s.accessToken,
      tokenType: typeof s.tokenType === 'string' && s.tokenType ? s.tokenType : 'Bearer',
      userId: s.userId,
      expiresAt: typeof s.expiresAt === 'string' ? s.expiresAt : undefined,
      displayName: typeof s.displayName === 'string' ? s.displayName : undefined,
    }
  } catch {
    return null
  }
}

/** True when the session's expiresAt has passed (a session without one never expires here). */
export function isExpired(session: Session, now: number = Date.now()): boolean {
  if (!session.expiresAt) return false
  const at = Date.parse(session.expiresAt)
  return !Number.isNaN(at) && at <= now
}

/**
 * Holds the current session in memory and in storage (sessionStorage by default; null keeps it
 * in memory only), and tells subscribers when it changes. get() returns the same object until
 * the session changes, so React can read it with useSyncExternalStore.
 */
export class SessionStore {
  private current: Session | null
  private readonly listeners = new Set<Listener>()
  /** 'expired' when the stored session had expired by the time this page loaded. */
  readonly endedBeforeLoad: EndReason | null

  constructor(
    private readonly storage: Storage | null = browserSessionStorage(),
    private readonly key: string = SESSION_KEY,
  ) {
    let stored: Session | null = null
    try {
      stored = parse(storage?.getItem(key) ?? null)
    } catch {
      stored = null
    }
    this.current = stored && !isExpired(stored) ? stored : null
    this.endedBeforeLoad = stored && !this.current ? 'expired' : null
    if (this.endedBeforeLoad) this.write(null)
  }

  get = (): Session | null => this.current

  /** The token to send, or null; an expired one ends the session (reason 'expired'). */
  token(): string | null {
    const s = this.current
    if (!s) return null
    if (isExpired(s)) {
      this.clear('expired')
      return null
    }
    return s.accessToken
  }

  set(session: Session): void {
    this.current = session
    this.write(session)
    this.emit(session)
  }

  /**
   * Ends the session. With `ifToken`, only while the session still holds that token (null: no
   * session at all), so a late 401 to a request sent before a new sign-in leaves the new one be.
   */
  clear(reason: EndReason = 'signed-out', ifToken?: string | null): void {
    if (!this.current) return
    if (ifToken !== undefined && this.current.accessToken !== ifToken) return
    this.current = null
    this.write(null)
    this.emit(null, reason)
  }

  subscribe = (listener: Listener): (() => void) => {
    this.listeners.add(listener)
    return () => {
      this.listeners.delete(listener)
    }
  }

  private emit(session: Session | null, reason?: EndReason): void {
    for (const l of Array.from(this.listeners)) l(session, reason)
  }

  private write(session: Session | null): void {
    try {
      if (session) this.storage?.setItem(this.key, JSON.stringify(session))
      else this.storage?.removeItem(this.key)
    } catch {
      // storage full or disabled: the session still lasts for this page
    }
  }
}
