import { TIER_DESCRIPTIONS, TIER_LABELS, type Tier } from '../api'

export function TierBadge({ tier, prefix }: { tier: Tier; prefix?: string }) {
  const cls = tier.replace('TIER_', '').toLowerCase()
  return (
    <span className={`tier tier-${cls}`} data-tier={tier} title={TIER_DESCRIPTIONS[tier]}>
      {prefix ? <span className="visually-hidden">{prefix} </span> : null}
      {TIER_LABELS[tier]}
    </span>
  )
}
