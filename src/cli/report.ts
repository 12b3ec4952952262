/**
 * Human output of `gpusvm simulate`: a progress bar on stderr (only when stderr
 * is a TTY) and the summary table (amounts in human binary units) plus one
 * readable line per failure, naming the scenario and its file.
 *
 * @since 0.1.0
 */
import type { ScenarioResult } from "../domain/ScenarioResult.ts"

/**
 * Draws (or clears, with `done`) a one-line progress bar on stderr, if it is a terminal.
 *
 * @category cli
 */
export const progress = (done: number, total: number, current: string | undefined): void => {
  if (!process.stderr.isTTY) return
  const width = 24
  const filled = total === 0 ? width : Math.round((done / total) * width)
  const bar = "#".repeat(filled) + "-".repeat(width - filled)
  const line = current === undefined ? "" : `[${bar}] ${done}/${total} ${current}`
  process.stderr.write(`\r\x1b[2K${line}`)
}

/**
 * A byte count in human binary units: `0`, `512` (bytes), `64K`, `2M`,
 * `1.5G`, `3T` — at most one decimal, in the largest unit the amount reaches
 * (never `0.06M` for 64 KiB, nor `0.00M` for a few bytes).
 *
 * @category cli
 */
export const humanBytes = (n: number): string => {
  if (n === 0) return "0"
  const units = [["T", 2 ** 40], ["G", 2 ** 30], ["M", 2 ** 20], ["K", 2 ** 10]] as const
  for (const [unit, size] of units) {
    if (n >= size) {
      const v = n / size
      const shown = Number.isInteger(v) ? String(v) : v.toFixed(1).replace(/\.0$/, "")
      return `${shown}${unit}`
    }
  }
  return `${n}`
}

/**
 * Where a result's scenario came from (its file), by position in `results`.
 *
 * @category models
 */
export type Sources = ReadonlyArray<string | undefined>

/**
 * The summary table and failure lines, as text. `sources[i]` is the file of
 * `results[i]`: every `FAIL` line names the scenario and its file. A skipped
 * scenario (`skipped`) shows `skip` and its reason, and is not a failure.
 *
 * @category cli
 */
export const summary = (results: ReadonlyArray<ScenarioResult>, sources: Sources = []): string => {
  const header = ["scenario", "ok", "faults", "ranges", "to VRAM", "to RAM", "invalidations", "ms"]
  const rows = results.map((r) => [
    r.scenario,
    r.skipped !== undefined ? "skip" : r.ok ? "ok" : "FAIL",
    String(r.metrics.faults),
    String(r.metrics.rangesCreated),
    humanBytes(r.metrics.bytesToVram),
    humanBytes(r.metrics.bytesToRam),
    String(Object.values(r.metrics.invalidations).reduce((a, b) => a + b, 0)),
    r.durationMs.toFixed(1)
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)))
  const fmt = (cells: ReadonlyArray<string>) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ")
  const lines = [fmt(header), fmt(widths.map((w) => "-".repeat(w))), ...rows.map(fmt)]
  const failed = results.filter((r) => !r.ok)
  const skipped = results.filter((r) => r.skipped !== undefined)
  const passed = results.length - failed.length - skipped.length
  lines.push("", `${passed} passed, ${failed.length} failed${skipped.length > 0 ? `, ${skipped.length} skipped` : ""}`)
  results.forEach((r, i) => {
    // the file last, so `FAIL <scenario> <step>:` stays the line's stable prefix
    const from = sources[i] === undefined ? "" : ` (in ${sources[i]})`
    if (r.skipped !== undefined) lines.push(`SKIP ${r.scenario}: ${r.skipped}${from}`)
    if (r.ok) return
    for (const f of r.failures) lines.push(`FAIL ${r.scenario} ${f.step}: ${f.detail}${from}`)
    for (const v of r.violations) lines.push(`FAIL ${r.scenario} invariant ${v.invariant}: ${v.detail}${from}`)
  })
  return lines.join("\n")
}
