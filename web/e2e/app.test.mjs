// End-to-end: real headless Chromium against the real stack (Envoy, services, streaming job).
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import {
  API_BASE,
  appSession,
  DESKTOP,
  PHONE,
  WEB_BASE,
  ensureWebServer,
  launchBrowser,
  recordApiRequests,
  requireApi,
  screenshot,
  signIn,
  sleep,
  watchPage,
} from './helpers.mjs'

const GENRE = process.env.E2E_GENRE ?? 'Comedy'
/** How long the speed layer may take to turn ratings into realtime recommendations. */
const REALTIME_TIMEOUT_MS = Number(process.env.E2E_REALTIME_TIMEOUT_MS ?? 60_000)

let server
let chrome

before(async () => {
  await requireApi()
  server = await ensureWebServer()
  chrome = await launchBrowser()
})

after(async () => {
  await chrome?.close()
  await server?.stop()
})

async function newPage(viewport = DESKTOP, url = WEB_BASE) {
  const context = await chrome.browser.newContext({ viewport })
  const page = await context.newPage()
  const log = watchPage(page)
  await page.goto(url)
  return { context, page, log }
}

describe('a new user rates movies of one genre', () => {
  test('realtime-tier recommendations appear without a reload', async () => {
    const { context, page, log } = await newPage()
    const apiRequests = recordApiRequests(page)
    try {
      await page.getByRole('heading', { name: 'Sign in' }).waitFor()
      await screenshot(page, 'desktop-sign-in')
      const userId = await signIn(page, { name: 'e2e realtime' })
      assert.match(userId, /^\d+$/)

      // A brand-new user gets the popular list first.
      const recs = page.locator('section.recs')
      await recs.locator('ol.movie-grid li').first().waitFor()
      const firstTier = await recs.locator('.served-by [data-tier]').getAttribute('data-tier')
      assert.notEqual(firstTier, 'TIER_REALTIME', 'a new user cannot have realtime recommendations yet')
      await screenshot(page, 'desktop-recommendations-initial')

      // Nothing below may reload the page.
      await page.evaluate(() => {
        window.__noReload = true
      })

      // Browse the catalogue by genre and rate several movies 5 stars.
      await page.getByRole('button', { name: 'Browse catalogue' }).click()
      await page.getByLabel('Genre').selectOption(GENRE)
      const cards = page.locator('section.catalogue ul.movie-grid li')
      await page.waitForFunction(
        (genre) => {
          const items = document.querySelectorAll('section.catalogue ul.movie-grid li')
          return items.length > 0 && [...items].every((li) => li.textContent.includes(genre))
        },
        GENRE,
        { timeout: 15_000 },
      )
      await screenshot(page, 'desktop-catalogue')
      const toRate = Math.min(5, await cards.count())
      assert.ok(toRate >= 3, `the catalogue has only ${toRate} ${GENRE} movies`)
      for (let i = 0; i < toRate; i++) {
        await cards.nth(i).locator('h3 button').click()
        const dialog = page.getByRole('dialog')
        await dialog.waitFor()
        // Click the visible star, as a person would (the radio itself is visually hidden, and a
        // forced click at its 1-px box can land on a neighbouring half star).
        await dialog.locator('label.star').filter({ hasText: /^5 stars/ }).click()
        await dialog.getByRole('radio', { name: '5 stars', exact: true }).waitFor({ state: 'attached' })
        assert.ok(await dialog.getByRole('radio', { name: '5 stars', exact: true }).isChecked(), '5 stars not selected')
        await dialog.getByRole('button', { name: 'Rate 5 ★' }).click()
        await dialog.getByText('Rated 5 ★').waitFor({ timeout: 15_000 })
        if (i === 0) {
          await dialog.getByRole('heading', { name: 'Similar movies' }).waitFor()
          await sleep(300)
          await screenshot(page, 'desktop-movie-dialog')
        }
        await page.keyboard.press('Escape')
        await dialog.waitFor({ state: 'detached' })
      }

      // Back to the recommendations: the realtime tier shows up on its own.
      await page.getByRole('button', { name: /^Recommendations/ }).click()
      await recs.locator('ol.movie-grid [data-tier="TIER_REALTIME"]').first().waitFor({ timeout: REALTIME_TIMEOUT_MS })
      assert.equal(await page.evaluate(() => window.__noReload), true, 'the page was reloaded')
      await page.getByTestId('recs-updated').waitFor()
      const note = await page.getByTestId('recs-updated').textContent()
      assert.match(note, /Updated/)
      await sleep(300)
      await screenshot(page, 'desktop-recommendations-realtime')

      // The recommendations lean to the rated genre.
      const genres = await recs.locator('ol.movie-grid li .movie-meta').allTextContents()
      const inGenre = genres.filter((g) => g.includes(GENRE)).length
      assert.ok(inGenre > 0, `no ${GENRE} movie among the realtime recommendations: ${genres.join(' | ')}`)

      // Keyboard: a recommended title opens with Enter, focus moves into the dialog, Escape
      // closes it and gives focus back.
      const firstTitle = recs.locator('ol.movie-grid li h3 button').first()
      await firstTitle.focus()
      await page.keyboard.press('Enter')
      const kbDialog = page.getByRole('dialog')
      await kbDialog.waitFor()
      assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('aria-label')), 'Close')
      await page.keyboard.press('Escape')
      await kbDialog.waitFor({ state: 'detached' })
      assert.equal(await firstTitle.evaluate((el) => el === document.activeElement), true)

      // The same views at phone width.
      await page.setViewportSize(PHONE)
      await sleep(300)
      await screenshot(page, 'phone-recommendations')
      await page.getByRole('button', { name: 'Browse catalogue' }).click()
      await sleep(300)
      await screenshot(page, 'phone-catalogue')
      await cards.first().locator('h3 button').click()
      await page.getByRole('dialog').getByRole('heading', { name: 'Similar movies' }).waitFor()
      await sleep(300)
      await screenshot(page, 'phone-movie-dialog')
      await page.keyboard.press('Escape')

      // Every call carried the token; nothing asked for CreateUser (it needs a service token).
      const requests = await apiRequests()
      const { accessToken } = await appSession(page)
      assert.ok(requests.some((r) => r.method === 'POST' && r.path === '/v1/sessions'), 'no POST /v1/sessions')
      assert.ok(!requests.some((r) => r.method === 'POST' && r.path === '/v1/users'), 'the app called POST /v1/users')
      const after = requests.filter((r) => r.path !== '/v1/sessions')
      assert.ok(after.some((r) => r.path === `/v1/users/${userId}/recommendations`))
      assert.ok(after.some((r) => r.method === 'POST' && r.path === '/v1/events'))
      for (const r of after) assert.equal(r.auth, `Bearer ${accessToken}`, `${r.method} ${r.path} without the token`)
    } catch (err) {
      err.message += `\npage log:\n${log.slice(-20).join('\n')}`
      throw err
    } finally {
      await context.close()
    }
  })
})

describe('signing in', () => {
  test('a reload keeps the session, a refused token returns to sign-in, sign out forgets it', async () => {
    const { context, page, log } = await newPage()
    try {
      const userId = await signIn(page, { name: 'e2e session' })
      const recs = page.locator('section.recs ol.movie-grid li')
      await recs.first().waitFor()
      const { accessToken } = await appSession(page)
      assert.ok(accessToken, 'no token in sessionStorage')

      // A reload keeps the session (this tab's sessionStorage).
      await page.reload()
      await recs.first().waitFor()
      assert.equal((await page.getByTestId('current-user').textContent()).trim(), userId)

      // A token the gateway refuses is a 401 the browser can read (CORS headers on Envoy's own
      // reply), and the app returns to sign-in saying why.
      const [head, payload, signature] = accessToken.split('.')
      const forged = `${head}.${payload}.${signature.split('').reverse().join('')}`
      const probe = await fetch(`${API_BASE}/v1/users/${userId}/recommendations?limit=1`, {
        headers: { authorization: `Bearer ${forged}`, origin: WEB_BASE },
      })
      await probe.arrayBuffer()
      assert.equal(probe.status, 401, 'the gateway accepted a token with a bad signature')
      assert.ok(
        probe.headers.get('access-control-allow-origin'),
        "the gateway's 401 has no access-control-allow-origin, so the browser sees a CORS failure " +
          'instead of the 401: in envoy/envoy.tmpl.yaml the CORS filter must come before jwt_authn',
      )
      await page.evaluate((token) => {
        const s = JSON.parse(window.sessionStorage.getItem('recsys.session'))
        window.sessionStorage.setItem('recsys.session', JSON.stringify({ ...s, accessToken: token }))
      }, forged)
      await page.reload()
      await page.getByTestId('session-ended').waitFor({ timeout: 15_000 })
      assert.match(await page.getByTestId('session-ended').textContent(), /did not accept your session/)
      assert.equal(await appSession(page), null, 'the refused token was kept')
      await screenshot(page, 'desktop-sign-in-again')

      // Signing in as the same user by id (the user switch goes through sign-in too).
      assert.equal(await signIn(page, { userId }), userId)
      await recs.first().waitFor()

      // Sign out: back to the sign-in form, the token gone, no user-scoped call without one.
      await page.getByRole('button', { name: 'Sign out' }).click()
      await page.getByRole('heading', { name: 'Sign in' }).waitFor()
      assert.equal(await appSession(page), null)
      await page.setViewportSize(PHONE)
      await sleep(200)
      await screenshot(page, 'phone-sign-in')
    } catch (err) {
      err.message += `\npage log:\n${log.slice(-20).join('\n')}`
      throw err
    } finally {
      await context.close()
    }
  })
})

describe('error states', () => {
  test('the real gateway rate limit (429) renders "Too many requests" and recovers', async () => {
    // The gateway keeps one token bucket per signed-in user (the token's subject): a new user's
    // bucket, drained by a burst from here with the same token, limits that user's page only.
    const { context, page, log } = await newPage()
    let userId
    let token
    try {
      userId = await signIn(page, { name: 'e2e 429' })
      await page.locator('section.recs ol.movie-grid li').first().waitFor()
      token = (await appSession(page)).accessToken
    } catch (err) {
      await context.close()
      err.message += `\npage log:\n${log.slice(-20).join('\n')}`
      throw err
    }
    const auth = { authorization: `Bearer ${token}` }

    let hammering = true
    let limited = 0
    const hammer = async () => {
      while (hammering) {
        // An unmapped API path is answered by Envoy itself (a small JSON 404, no service): the
        // cheapest way to keep the bucket empty.
        const res = await fetch(`${API_BASE}/v1/-`, { headers: auth }).catch(() => null)
        if (res?.status === 429) limited++
        await res?.arrayBuffer().catch(() => {})
      }
    }
    const workers = Array.from({ length: 32 }, hammer)
    // Every way out of this test stops the hammer: a failed assertion that left it running kept
    // node (and 32 fetch loops) busy until the runner's own timeout.
    try {
      const deadline = Date.now() + 10_000
      while (limited === 0 && Date.now() < deadline) await sleep(50)
      assert.ok(limited > 0, `the gateway never answered 429 to user ${userId}`)

      // A browser can only read a 429 that carries CORS headers; say so plainly when it does not.
      let probe
      for (let i = 0; i < 50 && probe?.status !== 429; i++) {
        // A routed API call (the direct responses have no CORS policy).
        probe = await fetch(`${API_BASE}/v1/users/${userId}/recommendations?limit=1`, { headers: { ...auth, origin: WEB_BASE } })
        await probe.arrayBuffer()
      }
      if (probe?.status === 429 && !probe.headers.get('access-control-allow-origin')) {
        assert.fail(
          `the gateway's 429 has no access-control-allow-origin for ${WEB_BASE}, so the browser sees a ` +
            'CORS failure instead of the rate limit: in envoy/envoy.tmpl.yaml the CORS filter must ' +
            'come before local_ratelimit, so that the local reply passes through it',
        )
      }

      try {
        // The bucket refills 100 tokens at once every second, so a request that lands right after
        // a refill gets through. The page then polls every 15.0 s, at the same phase of the
        // refill timer, so its next polls may get through too (seen in CI: three in a row).
        // A reload (the session survives it) sends a fresh request at another phase.
        const alert = page.locator('section.recs [role="alert"]')
        await page.reload()
        for (let attempt = 1; ; attempt++) {
          try {
            await alert.waitFor({ timeout: 8_000 })
            break
          } catch (err) {
            if (attempt >= 5) throw err
            log.push(`no rate-limited state after ${attempt * 8} s: reloading`)
            await page.reload()
          }
        }
        assert.equal(await alert.getAttribute('data-error-kind'), 'rate-limited', await alert.textContent())
        assert.match(await alert.textContent(), /Too many requests, retrying in \d+ s/)
        await screenshot(page, 'desktop-error-rate-limited')
        await page.setViewportSize(PHONE)
        await sleep(200)
        await screenshot(page, 'phone-error-rate-limited')

        // The burst ends: the retry gets through and the list appears without a reload.
        hammering = false
        await Promise.all(workers)
        await alert.waitFor({ state: 'detached', timeout: 45_000 })
        await page.locator('section.recs ol.movie-grid li').first().waitFor()
      } catch (err) {
        err.message += `\npage log:\n${log.slice(-20).join('\n')}`
        throw err
      }
    } finally {
      hammering = false
      await Promise.all(workers)
      await context.close()
    }
  })

  test('a 429 with Retry-After (intercepted) shows the countdown; a 503 shows unavailable', async () => {
    const context = await chrome.browser.newContext({ viewport: DESKTOP })
    const page = await context.newPage()
    let mode = '429'
    await page.route('**/v1/users/*/recommendations*', (route) =>
      mode === '429'
        ? route.fulfill({
            status: 429,
            headers: {
              'access-control-allow-origin': WEB_BASE,
              'access-control-expose-headers': 'retry-after, x-local-rate-limit',
              'retry-after': '30',
              'x-local-rate-limit': 'true',
            },
            body: 'local_rate_limited',
          })
        : mode === '503'
          ? route.fulfill({
              status: 503,
              headers: { 'access-control-allow-origin': WEB_BASE, 'content-type': 'application/json' },
              body: JSON.stringify({ code: 14, message: 'no healthy upstream' }),
            })
          : route.continue(),
    )
    try {
      await page.goto(WEB_BASE)
      await signIn(page, { name: 'e2e errors' })
      const alert = page.locator('section.recs [role="alert"]')
      await alert.waitFor()
      assert.match(await alert.textContent(), /Too many requests, retrying in (30|29|28) s/)

      mode = '503'
      await page.reload()
      await alert.waitFor()
      assert.equal(await alert.getAttribute('data-error-kind'), 'unavailable')
      assert.match(await alert.textContent(), /unavailable right now/)
      await screenshot(page, 'desktop-error-unavailable')

      mode = 'pass'
      await page.locator('section.recs ol.movie-grid li').first().waitFor({ timeout: 20_000 })
    } finally {
      await context.close()
    }
  })
})
