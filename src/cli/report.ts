/**
 * Human output of `gpusvm simulate`: a progress bar on stderr (only when stderr
 * is a TTY) and the summary table plus one readable line per failure.
 *
 * @since 0.1.0
 */
import type { ScenarioResult } from "../domain/ScenarioResult.ts"

/** Draws (or clears, with `done`) a one-line progress bar on stderr, if it is a terminal. */
export const progress = (done: number, total: number, current: string | undefined): void => {
  if (!process.stderr.isTTY) return
  const width = 24
  const filled = total === 0 ? width : Math.round((done / total) * width)
  const bar = "#".repeat(filled) + "-".repeat(width - filled)
  const line = current === undefined ? "" : `[${bar}] ${done}/${total} ${current}`
  process.stderr.write(`\r\x1b[2K${line}`)
}

const mib = (n: number) => (n === 0 ? "0" : `${(n / (1024 * 1024)).toFixed(n % (1024 * 1024) === 0 ? 0 : 2)}M`)

/** The summary table and failure lines, as text. */
export const summary = (results: ReadonlyArray<ScenarioResult>): string => {
  const header = ["scenario", "ok", "faults", "ranges", "to VRAM", "to RAM", "invalidations", "ms"]
  const rows = results.map((r) => [
    r.scenario,
    r.ok ? "ok" : "FAIL",
    String(r.metrics.faults),
    String(r.metrics.rangesCreated),
    mib(r.metrics.bytesToVram),
    mib(r.metrics.bytesToRam),
    String(Object.values(r.metrics.invalidations).reduce((a, b) => a + b, 0)),
    r.durationMs.toFixed(1)
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)))
  const fmt = (cells: ReadonlyArray<string>) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ")
  const lines = [fmt(header), fmt(widths.map((w) => "-".repeat(w))), ...rows.map(fmt)]
  const failed = results.filter((r) => !r.ok)
  lines.push("", `${results.length - failed.length} passed, ${failed.length} failed`)
  for (const r of failed) {
    for (const f of r.failures) lines.push(`FAIL ${r.scenario} ${f.step}: ${f.detail}`)
    for (const v of r.violations) lines.push(`FAIL ${r.scenario} invariant ${v.invariant}: ${v.detail}`)
  }
  return lines.join("\n")
}
