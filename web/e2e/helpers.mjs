// Shared plumbing of the end-to-end tests: the real stack (Envoy on API_BASE), the web app on
// WEB_BASE (started here with Vite when nothing answers there), and Debian's Chromium.
import { spawn } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'

const here = dirname(fileURLToPath(import.meta.url))
export const WEB_DIR = join(here, '..')
export const SCREENSHOTS = process.env.SCREENSHOT_DIR ?? join(here, 'screenshots')
export const API_BASE = (process.env.VITE_API_BASE ?? process.env.API_BASE ?? 'http://localhost:8080').replace(/\/$/, '')
export const WEB_PORT = Number(process.env.WEB_PORT ?? 3000)
// The gateway's CORS policy allows http://localhost:3000, so the app must be served there.
export const WEB_BASE = (process.env.WEB_BASE ?? `http://localhost:${WEB_PORT}`).replace(/\/$/, '')
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

export const DESKTOP = { width: 1280, height: 900 }
export const PHONE = { width: 375, height: 812 }

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

async function reachable(url) {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) })
    return res.status < 500
  } catch {
    return false
  }
}

/** The real API must be up: the tests fail (never skip) without it. */
export async function requireApi() {
  let res
  try {
    res = await fetch(`${API_BASE}/v1/movies?pageSize=1`, { signal: AbortSignal.timeout(5000) })
  } catch (err) {
    throw new Error(`the API is not reachable at ${API_BASE} (start the stack: .venv/bin/python -m stack up): ${err}`)
  }
  if (!res.ok) throw new Error(`the API at ${API_BASE} answered ${res.status} to GET /v1/movies`)
  // The tests sign in through the app, which asks the development token issuer.
  const session = await fetch(`${API_BASE}/v1/sessions`, { method: 'POST', body: JSON.stringify({ userId: '1' }) })
  if (!session.ok)
    throw new Error(
      `POST /v1/sessions answered ${session.status}: ${await session.text()} (the e2e tests sign in ` +
        'through the development token issuer: AUTH_DEV_ISSUER=true, as the local stack has it)',
    )
  await session.arrayBuffer()
}

/** Uses the web app already served on WEB_BASE, or starts Vite's dev server there. */
export async function ensureWebServer() {
  if (await reachable(WEB_BASE)) return { stop: async () => {} }
  const child = spawn(process.execPath, [join(WEB_DIR, 'node_modules/vite/bin/vite.js'), '--port', String(WEB_PORT), '--strictPort'], {
    cwd: WEB_DIR,
    env: { ...process.env, VITE_API_BASE: API_BASE },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout.on('data', (d) => (output += d))
  child.stderr.on('data', (d) => (output += d))
  const deadline = Date.now() + 30_000
  while (!(await reachable(WEB_BASE))) {
    if (child.exitCode !== null) throw new Error(`vite exited (${child.exitCode}):\n${output}`)
    if (Date.now() > deadline) {
      child.kill('SIGTERM')
      throw new Error(`vite did not serve ${WEB_BASE} within 30 s:\n${output}`)
    }
    await sleep(250)
  }
  return {
    stop: async () => {
      if (child.exitCode !== null) return
      child.kill('SIGTERM')
      await new Promise((r) => child.once('exit', r))
    },
  }
}

export async function launchBrowser() {
  // Playwright gives every launch a fresh temporary profile (its own --user-data-dir).
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  })
  return {
    browser,
    close: async () => {
      await browser.close()
    },
  }
}

export async function screenshot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true })
  const path = join(SCREENSHOTS, `${name}.png`)
  await page.screenshot({ path, fullPage: false })
  return path
}

/** Collects console errors and failed API requests, for messages when a test fails. */
export function watchPage(page) {
  const log = []
  page.on('console', (m) => m.type() === 'error' && log.push(`console: ${m.text()}`))
  page.on('pageerror', (e) => log.push(`pageerror: ${e.message}`))
  page.on('response', (r) => r.status() >= 400 && log.push(`${r.status()} ${r.request().method()} ${r.url()}`))
  return log
}

/** The user id and access token the app keeps (this tab's sessionStorage), or null. */
export async function appSession(page) {
  return page.evaluate(() => JSON.parse(window.sessionStorage.getItem('recsys.session') ?? 'null'))
}

/**
 * Signs in through the app's sign-in form: as a new user named `who.name`, or as the existing
 * user `who.userId`. Retried a few times while a service restarts (the stack is shared: the form
 * then shows an error). Returns the signed-in user id, as the header shows it.
 */
export async function signIn(page, who) {
  const form = page.getByRole('heading', { name: 'Sign in' })
  await form.waitFor()
  const current = page.getByTestId('current-user')
  const alert = page.locator('section.picker [role="alert"]')
  let last = ''
  for (let attempt = 1; attempt <= 10; attempt++) {
    if (who.userId !== undefined) {
      await page.getByLabel('User id').fill(String(who.userId))
      await page.getByRole('button', { name: 'Sign in', exact: true }).click()
    } else {
      await page.getByLabel('Your name, for a new user').fill(who.name ?? 'e2e')
      await page.getByRole('button', { name: 'Create user and sign in' }).click()
    }
    await current.or(alert).first().waitFor({ timeout: 15_000 })
    if (await current.isVisible()) return (await current.textContent()).trim()
    last = (await alert.textContent()) ?? ''
    await sleep(1000)
  }
  throw new Error(`sign-in failed 10 times; last error shown: ${last}`)
}

/** Every API request the page makes (method, URL, Authorization header), for assertions. */
export function recordApiRequests(page) {
  const seen = []
  page.on('request', (r) => {
    if (!r.url().startsWith(API_BASE) || r.method() === 'OPTIONS') return
    seen.push(r.headerValue('authorization').then((auth) => ({ method: r.method(), path: new URL(r.url()).pathname, auth })))
  })
  return () => Promise.all(seen)
}
