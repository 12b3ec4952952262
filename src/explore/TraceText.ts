/**
 * The text form of an explorer counterexample's per-actor trace: one line per
 * run of consecutive steps of one actor (a preemption starts a new line), with
 * the yield points it passed folded by repetition and the scenario steps it
 * began. Shared by `gpusvm explore`, `npm run mutants` and the test kit's
 * `explore`.
 *
 * @since 0.2.0
 */
import type { Violation } from "./Explore.ts"

/**
 * The trace as text: consecutive steps of one actor folded into one line,
 * preemptions marked, notes (the scenario steps begun) shown.
 *
 * @since 0.2.0
 * @category formatting
 */
export const formatTrace = (v: Violation): Array<string> => {
  const lines: Array<string> = []
  let i = 0
  const t = v.trace
  while (i < t.length) {
    const first = t[i]!
    let j = i + 1
    while (j < t.length && t[j]!.actor === first.actor && !t[j]!.preemption) j++
    const notes = t.slice(i, j).flatMap((s) => s.notes)
    const span = j - i === 1 ? `step ${first.step}` : `steps ${first.step}-${t[j - 1]!.step}`
    const mark = first.preemption ? " (preemption)" : ""
    // the yield points the actor passed, run-length folded (the first is where it was resumed)
    const points: Array<string> = []
    for (let k = i; k < j; k++) {
      const at = t[k]!.at
      const last = points[points.length - 1]
      const m = last === undefined ? null : /^(.*?)(?: ×(\d+))?$/.exec(last)
      if (m !== null && m[1] === at) points[points.length - 1] = `${at} ×${Number(m[2] ?? 1) + 1}`
      else points.push(at)
    }
    const shown = points.length > 10 ? [...points.slice(0, 10), `… ${points.length - 10} more`] : points
    lines.push(`  ${span.padEnd(13)} ${first.actor.padEnd(10)}${mark} at ${shown.join(", ")}`)
    if (notes.length > 0) lines.push(`  ${"".padEnd(13)} ${"".padEnd(10)}   began: ${notes.join("; ")}`)
    i = j
  }
  return lines
}
