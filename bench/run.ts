/**
 * `npm run bench`: runs every benchmark module, prints one table per module and
 * writes `bench/results.json` (machine info, Node version, every row).
 *
 * Each module runs in a fresh Node process of its own (`--only <group index>`,
 * rows back as JSON on stdout): a module that grows a large heap (the core's
 * 10^6 live ranges) must not slow the modules after it through GC and cache
 * state, and a crash in one module loses only its rows.
 *
 * Timing thresholds never go into the test suite; this is where performance is
 * measured.
 */
import { spawn } from "node:child_process"
import { writeFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import os from "node:os"
import type { Row } from "./stats.ts"

/** One row of the results: a module's row and the group (module) it belongs to. */
export interface BenchRow extends Row {
  readonly group: string
}

type Module = { readonly group: string; readonly run: () => Promise<ReadonlyArray<BenchRow>> }

const modules: Array<Module> = [
  {
    group: "interval tree",
    run: async () => {
      const { benchIntervalTree } = await import("./intervalTree.ts")
      const rows = await benchIntervalTree()
      const out: Array<BenchRow> = rows.map((r) => ({
        group: "interval tree",
        name: `${r.name} n=${r.n}`,
        value: r.nsPerOp,
        unit: "ns/op",
        min: r.min,
        max: r.max
      }))
      for (const pattern of ["random", "local"]) {
        const of = (n: number) => rows.find((r) => r.n === n && r.name.includes(pattern))?.nsPerOp
        const a = of(1_000)
        const b = of(1_000_000)
        if (a !== undefined && b !== undefined) {
          out.push({ group: "interval tree", name: `first() ${pattern}: ratio 10^6/10^3`, value: b / a, unit: "x", reference: "O(log n): ~2x" })
        }
      }
      return out
    }
  }
]

const more: Array<readonly [group: string, path: string, fn: string]> = [
  ["simulated machine", "./simulated.ts", "benchSimulated"],
  ["gpusvm core", "./core.ts", "benchCore"],
  ["driver (fault path, invalidation, concurrency, Effect overhead)", "./driver.ts", "benchDriver"],
  ["migration", "./migration.ts", "benchMigration"],
  ["memory (peak RSS, child process)", "./rss.ts", "benchRss"],
  ["native machine", "./native.ts", "benchNative"],
  ["explorer", "./explore.ts", "benchExplore"],
  ["command line", "./cli.ts", "benchCli"]
]
for (const [group, path, fn] of more) {
  modules.push({
    group,
    run: async () => {
      let mod: Record<string, () => Promise<ReadonlyArray<Omit<BenchRow, "group">>>>
      try {
        mod = (await import(path)) as typeof mod
      } catch (error) {
        if ((error as { code?: string }).code === "ERR_MODULE_NOT_FOUND") {
          return [{ group, name: `skipped: ${path} is not present`, value: 0, unit: "" }]
        }
        throw error
      }
      const rows = await mod[fn]!()
      return rows.map((r) => ({ group, ...r }))
    }
  })
}

const fmt = (n: number | undefined) =>
  n === undefined ? "" : Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 1 ? n.toFixed(2) : n.toPrecision(3)

/** Runs module `i` in a child Node process (same flags) and returns its rows. */
const runIsolated = (i: number): Promise<ReadonlyArray<BenchRow>> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), "--only", String(i)], {
      stdio: ["ignore", "pipe", "inherit"]
    })
    let out = ""
    child.stdout.setEncoding("utf8")
    child.stdout.on("data", (d: string) => void (out += d))
    child.on("error", reject)
    child.on("close", (code, signal) => {
      if (code !== 0) return reject(new Error(`exited with ${signal ?? `code ${code}`}`))
      try {
        resolve(JSON.parse(out) as ReadonlyArray<BenchRow>)
      } catch (error) {
        reject(new Error(`unreadable rows: ${error instanceof Error ? error.message : String(error)}`))
      }
    })
  })

const main = async () => {
  const started = Date.now()
  const all: Array<BenchRow> = []
  for (const [i, m] of modules.entries()) {
    process.stderr.write(`bench: ${m.group} …\n`)
    let rows: ReadonlyArray<BenchRow>
    try {
      rows = await runIsolated(i)
    } catch (error) {
      process.stderr.write(`bench: ${m.group} failed: ${error instanceof Error ? error.message : String(error)}\n`)
      process.exitCode = 1
      continue
    }
    all.push(...rows)
    console.log(`\n## ${m.group}\n`)
    console.log("| row | value | unit | min–max | reference |")
    console.log("|---|---:|---|---|---|")
    for (const r of rows) {
      const range = r.min === undefined ? "" : `${fmt(r.min)}–${fmt(r.max)}`
      console.log(`| ${r.name} | ${fmt(r.value)} | ${r.unit} | ${range} | ${r.reference ?? ""} |`)
    }
  }
  const results = {
    date: new Date().toISOString(),
    node: process.version,
    machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? "unknown", memoryBytes: os.totalmem(), platform: os.platform() },
    durationMs: Date.now() - started,
    rows: all
  }
  writeFileSync(new URL("./results.json", import.meta.url), JSON.stringify(results, null, 2) + "\n")
  process.stderr.write(`bench: ${all.length} rows in ${((Date.now() - started) / 1000).toFixed(1)} s → bench/results.json\n`)
}

/** `--only i`: run module `i` here and print its rows as JSON (the child side of `runIsolated`). */
const only = process.argv.indexOf("--only")
if (only >= 0) {
  const m = modules[Number(process.argv[only + 1])]
  if (m === undefined) throw new Error(`bench: no module ${process.argv[only + 1]}`)
  // module output other than the rows goes to stderr, so stdout carries the JSON alone
  const log = console.log
  console.log = (...args: Array<unknown>) => console.error(...args)
  const rows = await m.run()
  log(JSON.stringify(rows))
} else {
  await main()
}
