import { useState } from 'react'

export const RATING_VALUES = [0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5]

interface Props {
  value: number | null
  onChange: (v: number) => void
  name?: string
}

/** Half-star rating as a radio group: arrow keys move, each half star is a labelled radio. */
export function StarRating({ value, onChange, name = 'rating' }: Props) {
  const [hover, setHover] = useState<number | null>(null)
  const shown = hover ?? value ?? 0
  return (
    <div className="stars" onMouseLeave={() => setHover(null)}>
      {RATING_VALUES.map((v) => {
        const id = `${name}-${v}`
        const half = v % 1 !== 0 ? 'left' : 'right'
        return (
          <span key={v} className="star-slot">
            <input
              type="radio"
              id={id}
              name={name}
              value={v}
              checked={value === v}
              onChange={() => onChange(v)}
              className="visually-hidden star-input"
            />
            <label
              htmlFor={id}
              className={`star star-${half} ${v <= shown ? 'star-on' : ''}`}
              onMouseEnter={() => setHover(v)}
            >
              <span className="visually-hidden">
                {v} {v === 1 ? 'star' : 'stars'}
              </span>
              <span aria-hidden="true" className="star-glyph">
                ★
              </span>
            </label>
          </span>
        )
      })}
    </div>
  )
}
