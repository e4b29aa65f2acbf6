// End-to-end: the /dashboard page in real headless Chromium, reading the real AnalyticsService
// through Envoy. The test makes its own traffic first (a serve and a click on a served movie,
// through the gateway as a client would), so every chart has real data; then it clicks again and
// waits for the open page to show the new click without a reload.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { API_BASE, DESKTOP, PHONE, WEB_BASE, ensureWebServer, launchBrowser, requireApi, screenshot, sleep, watchPage } from './helpers.mjs'

// An analyst token (tests/integration/test_web.py mints it with the stack's development issuer).
const ANALYST_TOKEN = process.env.E2E_ANALYST_TOKEN ?? ''
// What recharts draws for data: a line (a dot when it has one point) or a bar.
const DRAWN = '.recharts-line-curve, .recharts-line-dot, .recharts-bar-rectangle'
const CHARTS = ['ctr-daily', 'ctr-position', 'tier-mix', 'latency', 'coverage', 'ingest', 'models']
/** The speed layer writes feedback within a trigger or two; the page polls every 10 s. */
const LIVE_TIMEOUT_MS = Number(process.env.E2E_REALTIME_TIMEOUT_MS ?? 60_000)

let server
let chrome

before(async () => {
  assert.ok(ANALYST_TOKEN, 'E2E_ANALYST_TOKEN is not set (run through tests/integration/test_web.py)')
  await requireApi()
  server = await ensureWebServer()
  chrome = await launchBrowser()
})

after(async () => {
  await chrome?.close()
  await server?.stop()
})

async function call(method, path, token, body) {
  const res = await fetch(`${API_BASE}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await res.text()
  assert.ok(res.ok, `${method} ${path}: ${res.status} ${text}`)
  return text ? JSON.parse(text) : {}
}

/** A new user, one serve, and a click on its first movie: real rows for every figure. */
async function serveAndClick(user) {
  const recs = await call('GET', `/v1/users/${user.userId}/recommendations?limit=10`, user.accessToken)
  assert.ok(recs.items?.length, 'no recommendations served')
  await call('POST', '/v1/events', user.accessToken, {
    userId: user.userId,
    movieId: recs.items[0].movie.movieId,
    type: 'EVENT_TYPE_CLICK',
    requestId: recs.requestId,
  })
}

const clicksShown = async (page) => Number((await page.getByTestId('stat-ctr').textContent()).match(/(\d+) clicks/)[1])

describe('the analytics dashboard', () => {
  test('renders its charts with real data, refreshes live, and fits desktop and phone widths', async () => {
    const user = await call('POST', '/v1/sessions', null, { displayName: 'e2e dashboard' })
    await serveAndClick(user)

    const context = await chrome.browser.newContext({ viewport: DESKTOP })
    const page = await context.newPage()
    const log = watchPage(page)
    try {
      await page.goto(`${WEB_BASE}/dashboard`)
      await page.getByLabel('Analyst token').fill(ANALYST_TOKEN)
      await page.getByRole('button', { name: 'Open dashboard' }).click()

      // Every chart has points and recharts drew them (lines or bars as SVG).
      for (const id of CHARTS) {
        const chart = page.getByTestId(`chart-${id}`)
        await chart.waitFor({ timeout: 20_000 })
        const points = Number(await chart.getAttribute('data-points'))
        assert.ok(points > 0, `chart ${id} has no data: ${log.join('\n')}`)
        // attached, not visible: a line at 0 % (no clicks at that position) has an empty box
        await chart.locator(DRAWN).first().waitFor({ state: 'attached', timeout: 10_000 })
        await chart.locator('svg.recharts-surface').first().waitFor()
      }
      assert.match(await page.getByTestId('stat-ctr').textContent(), /\d+ clicks \/ \d+ served items/)
      await page.getByTestId('models').locator('tr[data-status="live"]').waitFor()
      await screenshot(page, 'desktop-dashboard')

      // A new click on a served movie appears without a reload.
      const before = await clicksShown(page)
      assert.ok(before >= 1, 'the click posted before opening the page is not counted')
      await serveAndClick(user)
      const deadline = Date.now() + LIVE_TIMEOUT_MS
      while ((await clicksShown(page)) <= before) {
        assert.ok(Date.now() < deadline, `the dashboard still shows ${before} clicks after ${LIVE_TIMEOUT_MS} ms`)
        await sleep(500)
      }

      // Phone width: one column, nothing wider than the screen.
      await page.setViewportSize(PHONE)
      await page.getByTestId('chart-ctr-daily').locator(DRAWN).first().waitFor({ state: 'attached' })
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
      assert.ok(overflow <= 0, `the page is ${overflow}px wider than a phone`)
      const box = await page.getByTestId('chart-ctr-daily').boundingBox()
      assert.ok(box.width <= PHONE.width && box.width > PHONE.width * 0.8, `chart width ${box.width} at phone width`)
      await screenshot(page, 'phone-dashboard')
    } finally {
      await context.close()
    }
  })

  test('a user token is refused and the form says so', async () => {
    const user = await call('POST', '/v1/sessions', null, { displayName: 'e2e not an analyst' })
    const context = await chrome.browser.newContext({ viewport: PHONE })
    const page = await context.newPage()
    try {
      await page.goto(`${WEB_BASE}/dashboard`)
      await page.getByLabel('Analyst token').fill(user.accessToken)
      await page.getByRole('button', { name: 'Open dashboard' }).click()
      const alert = page.getByRole('alert')
      await alert.waitFor({ timeout: 15_000 })
      assert.match(await alert.textContent(), /analyst/)
    } finally {
      await context.close()
    }
  })
})
