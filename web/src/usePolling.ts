import { useCallback, useEffect, useRef, useState } from 'react'
import { RateLimitedError, UnavailableError } from './api'

export interface PollState<T> {
  data?: T
  error?: Error
  loading: boolean
  /** When the next automatic retry after an error happens (ms epoch), if one is scheduled. */
  retryAt?: number
  /** When data was last received (ms epoch). */
  updatedAt?: number
}

export interface PollOptions {
  /** Steady interval between polls. */
  intervalMs: number
  /** Interval while fastUntil is in the future (after a user action). */
  fastIntervalMs: number
  /** Poll fast until this time (ms epoch). Changing it triggers a poll soon. */
  fastUntil: number
}

const MAX_BACKOFF_MS = 30_000

/** Backoff after an error; null means do not retry automatically (e.g. 400, 404). */
export function retryDelayMs(err: unknown, failures: number): number | null {
  if (err instanceof RateLimitedError) {
    if (err.retryAfterSeconds !== null) return Math.max(1000, err.retryAfterSeconds * 1000)
    return Math.min(2000 * 2 ** (failures - 1), MAX_BACKOFF_MS)
  }
  if (err instanceof UnavailableError) return Math.min(2000 * 2 ** (failures - 1), MAX_BACKOFF_MS)
  return null
}

/**
 * Fetches `fetcher` for `key` now and then again on a timer, faster for a while after a user
 * action, backing off on 429/503. A new key starts over; a null key does nothing.
 */
export function usePolling<T>(
  key: string | null,
  fetcher: (signal: AbortSignal) => Promise<T>,
  opts: PollOptions,
): PollState<T> & { refresh: () => void } {
  const [state, setState] = useState<PollState<T>>({ loading: key !== null })
  const fetcherRef = useRef(fetcher)
  fetcherRef.current = fetcher
  const optsRef = useRef(opts)
  optsRef.current = opts
  const scheduleRef = useRef<(delay: number) => void>(() => {})
  const [generation, setGeneration] = useState(0)

  useEffect(() => {
    if (key === null) {
      setState({ loading: false })
      return
    }
    let cancelled = false
    let timer: ReturnType<typeof setTimeout> | undefined
    let controller: AbortController | undefined
    let failures = 0
    let inFlight = false
    let state0Loaded = false

    const nextInterval = () => {
      const o = optsRef.current
      return Date.now() < o.fastUntil ? o.fastIntervalMs : o.intervalMs
    }
    const schedule = (delay: number) => {
      if (cancelled) return
      if (timer !== undefined) clearTimeout(timer)
      timer = setTimeout(run, delay)
    }
    // A hidden tab does not poll; it catches up as soon as it is visible again.
    let pausedWhileHidden = false
    const isHidden = () => typeof document !== 'undefined' && document.visibilityState === 'hidden'
    const onVisibility = () => {
      if (!isHidden() && pausedWhileHidden) {
        pausedWhileHidden = false
        schedule(0)
      }
    }
    document.addEventListener('visibilitychange', onVisibility)

    const run = async () => {
      timer = undefined
      if (inFlight) return
      if (isHidden() && state0Loaded) {
        pausedWhileHidden = true
        return
      }
      inFlight = true
      controller = new AbortController()
      try {
        const data = await fetcherRef.current(controller.signal)
        if (cancelled) return
        failures = 0
        state0Loaded = true
        setState({ data, loading: false, updatedAt: Date.now() })
        if (timer === undefined) schedule(nextInterval())
      } catch (err) {
        if (cancelled || (err as Error)?.name === 'AbortError') return
        failures += 1
        const delay = retryDelayMs(err, failures)
        setState((s) => ({
          data: s.data,
          updatedAt: s.updatedAt,
          error: err as Error,
          loading: false,
          retryAt: delay === null ? undefined : Date.now() + delay,
        }))
        if (delay !== null && timer === undefined) schedule(delay)
      } finally {
        inFlight = false
      }
    }
    scheduleRef.current = schedule
    setState({ loading: true })
    run()
    return () => {
      cancelled = true
      document.removeEventListener('visibilitychange', onVisibility)
      if (timer !== undefined) clearTimeout(timer)
      controller?.abort()
      scheduleRef.current = () => {}
    }
  }, [key, generation])

  // A user action: poll again soon, then keep polling fast until fastUntil.
  const fastUntil = opts.fastUntil
  const first = useRef(true)
  useEffect(() => {
    if (first.current) {
      first.current = false
      return
    }
    if (fastUntil > Date.now()) scheduleRef.current(optsRef.current.fastIntervalMs)
  }, [fastUntil])

  const refresh = useCallback(() => setGeneration((g) => g + 1), [])
  return { ...state, refresh }
}

/** Seconds left until `at` (ms epoch), ticking every second; null when at is undefined. */
export function useCountdown(at: number | undefined): number | null {
  const [now, setNow] = useState(() => Date.now())
  useEffect(() => {
    if (at === undefined) return
    setNow(Date.now())
    const id = setInterval(() => setNow(Date.now()), 1000)
    return () => clearInterval(id)
  }, [at])
  if (at === undefined) return null
  return Math.max(0, Math.ceil((at - now) / 1000))
}
