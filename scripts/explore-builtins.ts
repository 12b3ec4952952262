/**
 * `npm run explore:builtins`: every built-in explorer config (`scenarios/explore-*.json`)
 * explored at preemption bound 2 (or `--preemptions K`), one after the other, with
 * `--workers N` (default 1) and a 60 s limit each (`--time S`); prints a markdown
 * table (the README's counts come from here). Exit 1 if any config reports a
 * violation or is not complete within its limit.
 */
import { spawnSync } from "node:child_process"
import { readdirSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..")
const args = process.argv.slice(2)
const flag = (name: string, dflt: string) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1]! : dflt)
const k = flag("preemptions", "2")
const workers = flag("workers", "1")
const time = flag("time", "60")
const names = readdirSync(join(ROOT, "scenarios")).filter((f) => f.startsWith("explore-") && f.endsWith(".json")).map((f) => f.slice(0, -5)).sort()

console.log(`| config | K | workers | schedules | pruned | complete | terminal states | longest run | s | schedules/s | violation |`)
console.log(`|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---|`)
let bad = 0
for (const name of names) {
  const r = spawnSync(process.execPath, [join(ROOT, "src/cli/main.ts"), "explore", name, "--preemptions", k, "--workers", workers, "--time", time, "--json"], {
    cwd: ROOT,
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024
  })
  try {
    const j = JSON.parse(r.stdout) as {
      schedules: number; pruned: number; complete: boolean; terminalStates: number; longestRun: number; timeMs: number; schedulesPerSecond: number
      violation?: { kind: string; detail: string }
    }
    if (!j.complete || j.violation !== undefined) bad++
    console.log(`| ${name} | ${k} | ${workers} | ${j.schedules} | ${j.pruned} | ${j.complete} | ${j.terminalStates} | ${j.longestRun} | ${(j.timeMs / 1000).toFixed(1)} | ${j.schedulesPerSecond} | ${j.violation === undefined ? "none" : `${j.violation.kind}: ${j.violation.detail.slice(0, 80)}`} |`)
  } catch {
    bad++
    console.log(`| ${name} | ${k} | ${workers} | - | - | - | - | - | - | - | exit ${r.status}: ${(r.stderr || r.stdout).trim().split("\n")[0]} |`)
  }
}
process.exitCode = bad === 0 ? 0 : 1
