// The /dashboard page, loaded on its own (main.tsx): the chart library stays out of the app's bundle.
import { createAnalyticsClient } from './analytics'
import { envBase } from './api'
import { Dashboard } from './components/Dashboard'

const client = createAnalyticsClient(envBase())

export default function DashboardPage() {
  return <Dashboard client={client} />
}
