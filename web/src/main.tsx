import { lazy, StrictMode, Suspense } from 'react'
import { createRoot } from 'react-dom/client'
import { App } from './App'
import './styles.css'

// /dashboard is the analytics page; everything else is the app. The dashboard (and its chart
// library) is a chunk of its own, fetched only there.
const DashboardPage = lazy(() => import('./DashboardPage'))
const isDashboard = window.location.pathname.replace(/\/+$/, '') === '/dashboard'

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    {isDashboard ? (
      <Suspense fallback={<p className="muted">Loading the dashboard…</p>}>
        <DashboardPage />
      </Suspense>
    ) : (
      <App />
    )}
  </StrictMode>,
)
