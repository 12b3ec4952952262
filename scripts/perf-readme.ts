/**
 * `node scripts/perf-readme.ts`: regenerates the README's `## Performance`
 * section from `bench/results.json` (the last `npm run bench`, one run):
 * every target row of issue #16 (rows whose reference says `target … met` or
 * `not met`) in one table with its value and verdict, then, for each miss, the
 * profile finding kept in `bench/findings.md` (a `### key` heading per
 * finding; each missed row gets the first finding whose `key` its label contains).
 * Everything else in the README is left as it is.
 *
 * Options: `--results PATH` (default `bench/results.json`), `--note TEXT` (a
 * sentence about the run, e.g. that other work was running), `--check` (print
 * the section instead of writing the README).
 */
import { readFileSync, writeFileSync } from "node:fs"
import type { BenchRow } from "../bench/run.ts"

/** A row of `bench/results.json`: a module's row and its group. */
type Row = BenchRow

interface Results {
  readonly date: string
  readonly node: string
  readonly machine: { readonly cpus: number; readonly cpuModel: string; readonly memoryBytes: number }
  readonly durationMs: number
  readonly rows: ReadonlyArray<Row>
}

const root = new URL("../", import.meta.url)
const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name)
  return i >= 0 ? process.argv[i + 1] : undefined
}

const fmt = (n: number): string =>
  Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 10 ? n.toFixed(1) : Math.abs(n) >= 1 ? n.toFixed(2) : n.toPrecision(2)

/** A target row: its label (an indented `  … x` row is named after the row it continues), value and verdict. */
interface Target {
  readonly label: string
  readonly value: string
  readonly target: string
  readonly met: boolean
}

/** The target rows of a run, in bench order. */
export const targets = (rows: ReadonlyArray<Row>): Array<Target> => {
  const out: Array<Target> = []
  let parent = ""
  for (const r of rows) {
    const continued = r.name.startsWith("  …")
    if (!continued) parent = r.name
    const m = /target([^:]*):\s*(met|not met)/.exec(r.reference ?? "")
    if (m === null) continue
    const label = continued ? `${parent} — ${r.name.replace(/^\s*…\s*/, "")}` : r.name
    out.push({ label, value: `${fmt(r.value)} ${r.unit}`, target: m[1]!.trim() || "a bench row", met: m[2] === "met" })
  }
  return out
}

/** `### key` sections of the findings file: key → text. */
export const findings = (text: string): Array<readonly [key: string, text: string]> => {
  const out: Array<readonly [string, string]> = []
  const parts = text.split(/^### /m).slice(1)
  for (const p of parts) {
    const nl = p.indexOf("\n")
    out.push([p.slice(0, nl).trim(), p.slice(nl + 1).trim()])
  }
  return out
}

/** The whole `## Performance` section for a run. */
export const section = (res: Results, findingsText: string, note: string | undefined): string => {
  const ts = targets(res.rows)
  const fs = findings(findingsText)
  const met = ts.filter((t) => t.met).length
  const lines: Array<string> = []
  lines.push("## Performance", "")
  lines.push(
    "`npm run bench` prints every row as a table and writes `bench/results.json` (machine, Node version, every row",
    "with median and min–max); `node scripts/perf-readme.ts` then regenerates this section from that file. Targets",
    "are issue #16's, as ratios within one run (never timing asserts in tests); the fault-path ratios divide by the",
    "plain imperative model of the same path in `bench/plainModel.ts` (`test/bench/plainModel.test.ts` checks it",
    "does the same work).",
    ""
  )
  const mem = (res.machine.memoryBytes / 2 ** 30).toFixed(0)
  lines.push(
    `One run of ${res.date.slice(0, 10)}, Node ${res.node}, ${res.machine.cpus} × ${res.machine.cpuModel}, ${mem} GiB, ${(res.durationMs / 1000).toFixed(0)} s` +
      `${note === undefined ? "." : `: ${note}`} **${met} of ${ts.length} targets met.**`,
    ""
  )
  lines.push("| target row | value | target | |", "|---|---:|---|---|")
  for (const t of ts) lines.push(`| ${t.label} | ${t.value} | ${t.target} | ${t.met ? "met" : "**not met**"} |`)
  lines.push("")
  const misses = ts.filter((t) => !t.met)
  if (misses.length > 0) {
    lines.push("### Why the misses miss (profile findings)", "")
    // each missed row gets the first finding (in file order) whose key its label contains
    const keyOf = (t: Target) => fs.find(([key]) => key !== "profile" && t.label.includes(key))?.[0]
    for (const [key, text] of fs) {
      const rows = misses.filter((t) => keyOf(t) === key)
      if (rows.length > 0) lines.push(`**${key}** (${rows.length} row${rows.length === 1 ? "" : "s"}). ${text}`, "")
    }
    for (const t of misses.filter((t) => keyOf(t) === undefined)) lines.push(`**${t.label}**: no profile finding recorded yet.`, "")
  }
  const general = fs.find(([key]) => key === "profile")
  if (general !== undefined) lines.push("### The profile", "", general[1], "")
  return lines.join("\n")
}

/** Replaces the `## Performance` section (up to the next `## ` heading or the end) of `readme`. */
export const replaceSection = (readme: string, body: string): string => {
  const start = readme.search(/^## Performance\s*$/m)
  if (start < 0) return `${readme.trimEnd()}\n\n${body.trimEnd()}\n`
  const rest = readme.slice(start + 1)
  const next = rest.search(/^## /m)
  const end = next < 0 ? readme.length : start + 1 + next
  return `${readme.slice(0, start)}${body.trimEnd()}\n${next < 0 ? "" : `\n${readme.slice(end)}`}`
}

if (process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].replace(/^.*\/scripts\//, "/scripts/"))) {
  const results = JSON.parse(readFileSync(arg("--results") ?? new URL("bench/results.json", root), "utf8")) as Results
  const findingsText = readFileSync(new URL("bench/findings.md", root), "utf8")
  const body = section(results, findingsText, arg("--note"))
  if (process.argv.includes("--check")) {
    console.log(body)
  } else {
    const readmeUrl = new URL("README.md", root)
    writeFileSync(readmeUrl, replaceSection(readFileSync(readmeUrl, "utf8"), body))
    console.error(`README.md: ## Performance regenerated from ${results.date} (${targets(results.rows).length} target rows)`)
  }
}
