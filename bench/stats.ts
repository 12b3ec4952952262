/**
 * What every benchmark module shares: the row shape of `bench/results.json`
 * and the statistics of repeated samples (median, quantiles, min–max).
 */

/** One result row: a named measurement with its unit and, where measured, min–max and a same-run reference. */
export interface Row {
  readonly name: string
  readonly value: number
  readonly unit: string
  readonly min?: number
  readonly max?: number
  readonly reference?: string
}

/** The `q` quantile (0–1) of samples (nearest rank). */
export const quantile = (xs: ReadonlyArray<number>, q: number): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0
}

/** Median of samples. */
export const median = (xs: ReadonlyArray<number>): number => quantile(xs, 0.5)

/** A row from samples: median, min, max. */
export const row = (name: string, samples: ReadonlyArray<number>, unit: string, reference?: string): Row => ({
  name,
  value: median(samples),
  unit,
  min: Math.min(...samples),
  max: Math.max(...samples),
  ...(reference === undefined ? {} : { reference })
})
