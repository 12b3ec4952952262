/**
 * The `gpusvm` command's wall time: `gpusvm simulate` over every built-in
 * scenario, spawned as a user runs it from source (Node 22 strips the
 * types). The timing moved here from test/cli/cli.test.ts: timing thresholds
 * belong in `npm run bench`, never in tests (the earlier "under 10 s" assert
 * failed under load).
 *
 * Run directly: `node bench/cli.ts`.
 */
import { spawnSync } from "node:child_process"
import { readdirSync } from "node:fs"
import { fileURLToPath, pathToFileURL } from "node:url"
import { type Row, row } from "./stats.ts"

const ROOT = fileURLToPath(new URL("..", import.meta.url))

/** `gpusvm simulate` (every built-in), 3 runs: seconds of wall time. */
export async function benchCli(): Promise<ReadonlyArray<Row>> {
  const builtins = readdirSync(new URL("../scenarios", import.meta.url)).filter((f) => f.endsWith(".json")).length
  const samples: Array<number> = []
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now()
    const r = spawnSync(process.execPath, ["src/cli/main.ts", "simulate"], { cwd: ROOT, encoding: "utf8", timeout: 300_000 })
    if (r.status !== 0) throw new Error(`gpusvm simulate exited ${r.status}: ${r.stderr.slice(0, 400)}`)
    samples.push((performance.now() - t0) / 1000)
  }
  return [
    row(`gpusvm simulate, every built-in (${builtins} scenarios, spawned)`, samples, "s", "was a 10 s assert in test/cli/cli.test.ts"),
    ...benchIgt()
  ]
}

/**
 * `gpusvm igt report` over every IGT subtest (`igt:*`, issue #17 part 5: the
 * target is under 5 minutes on the 2-core machine), spawned once with the
 * default `--workers` (one worker thread per core): seconds of wall time. `GPUSVM_BENCH_IGT=0` leaves the row out (it is the longest row).
 */
export function benchIgt(): ReadonlyArray<Row> {
  if (process.env["GPUSVM_BENCH_IGT"] === "0") return []
  const t0 = performance.now()
  const r = spawnSync(process.execPath, ["src/cli/main.ts", "igt", "report", "--json"], { cwd: ROOT, encoding: "utf8", timeout: 3_600_000, maxBuffer: 64 * 2 ** 20 })
  if (r.status !== 0) throw new Error(`gpusvm igt report exited ${r.status}: ${r.stderr.slice(0, 400)}`)
  const totals = JSON.parse(r.stdout.trim().split("\n").at(-1) ?? "{}") as { passed?: number; total?: number; workers?: number }
  const workers = totals.workers === undefined ? "?" : `${totals.workers} worker thread${totals.workers === 1 ? "" : "s"}`
  const s = (performance.now() - t0) / 1000
  return [row(`gpusvm igt report, igt:* (${totals.passed ?? "?"} of ${totals.total ?? "?"} pass, ${workers} (one per core), spawned once)`, [s], "s", `target < 300 s (#17 part 5): ${s < 300 ? "met" : "not met"}`)]
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  for (const r of await benchCli()) console.log(`${r.name}: ${r.value.toFixed(2)} ${r.unit}`)
}
