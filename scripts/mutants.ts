/**
 * `npm run mutants`: the explorer's self-check (issue #12). Each mutant is a
 * deliberate bug in the driver, the GPU SVM core or the machine, applied to a
 * scratch copy of the repository; `gpusvm explore` then runs on one of the
 * built-in explorer configs and must report a violation within 60 s. The
 * table says, per mutant, whether it was found, after how many schedules and
 * seconds, and the shrunk counterexample's size. Exit 1 if any mutant
 * survives (or its mutation site is gone from the source: mutants are exact
 * text replacements and must keep up with the code).
 *
 * `npm run mutants -- --only NAME[,NAME…]` runs some; `--trace NAME` also prints that
 * mutant's minimal trace (the README's counterexample comes from here); `--sites` only checks that
 * every mutation site is still in the code, once.
 *
 * Not part of `npm test` (about a minute per mutant at worst).
 */
import { spawnSync } from "node:child_process"
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { formatTrace } from "../src/explore/TraceText.ts"
import type { Violation } from "../src/explore/Explore.ts"

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..")

interface Mutant {
  readonly name: string
  readonly bug: string
  readonly file: string
  readonly find: string
  readonly replace: string
  readonly config: string
}

/** The deliberate bugs. `find` must occur exactly once in `file`. */
export const MUTANTS: ReadonlyArray<Mutant> = [
  {
    name: "get-pages-ignores-seq",
    bug: "get_pages commits its DMA mapping without mmu_interval_read_retry (a moved sequence is ignored)",
    file: "src/services/gpusvm/Pages.ts",
    find: `  if (yield* core.mmu.readRetry(job.handle, job.seq)) return "retry" as MapOutcome`,
    replace: `  if (false as boolean) return "retry" as MapOutcome`,
    config: "explore-fault-vs-dontneed"
  },
  {
    name: "get-pages-ignores-unmapped",
    bug: "get_pages maps a range the notifier already flagged unmapped (and a moved sequence)",
    file: "src/services/gpusvm/Pages.ts",
    find: `  if (cur.flags.unmapped) return yield* new BadAddress({ reason: "range is unmapped", addr: cur.start })
  if (yield* core.mmu.readRetry(job.handle, job.seq)) return "retry" as MapOutcome`,
    replace: ``,
    config: "explore-fault-vs-munmap"
  },
  {
    name: "invalidate-keeps-dma",
    bug: "the invalidation callback zaps GPU PTEs but does not unmap the ranges' DMA pages",
    file: "src/programs/Invalidation.ts",
    find: `        yield* svm.rangeUnmapPages(range, { inNotifier: true })\n`,
    replace: ``,
    config: "explore-fault-vs-dontneed"
  },
  {
    name: "invalidate-keeps-ptes",
    bug: "the invalidation callback unmaps DMA pages but never zaps the GPU page table",
    file: "src/programs/Invalidation.ts",
    find: `  if (!any) return\n`,
    replace: `  if (!any || (true as boolean)) return\n`,
    config: "explore-fault-vs-dontneed"
  },
  {
    name: "invalidate-zaps-event-window",
    bug: "the invalidation callback zaps only the event's window while unmapping the DMA pages of whole ranges",
    file: "src/programs/Invalidation.ts",
    find: `    zapStart = Math.min(zapStart, r.start)\n    zapEnd = Math.max(zapEnd, r.end)\n`,
    replace: ``,
    config: "explore-fault-vs-munmap"
  },
  {
    name: "skip-every-own-migrate",
    bug: "the invalidation callback skips every MIGRATE event carrying the driver's owner (also migrate_to_ram and eviction)",
    file: "src/programs/Invalidation.ts",
    find: `  st.ownMigrations.some((m) => m.start <= r.start && r.end <= m.end)`,
    replace: `  true`,
    config: "explore-fault-vs-cpu-touch-devmem"
  },
  {
    name: "read-begin-ignores-inflight",
    bug: "mmu_interval_read_begin does not wait for an invalidation in flight (returns the old sequence at once)",
    file: "src/layers/common/IntervalNotifiers.ts",
    find: "const readBegin = Effect.suspend(() => (invalidating.value > 0 ? waitBegin : Effect.succeed(seq.value)))",
    replace: "const readBegin = Effect.suspend(() => (invalidating.value < 0 ? waitBegin : Effect.succeed(seq.value)))",
    config: "explore-fault-vs-dontneed"
  },
  {
    name: "unmap-pages-keeps-iommu",
    bug: "range_unmap_pages forgets the IOMMU unmap of system pages (dma_unmap_page)",
    file: "src/services/gpusvm/Pages.ts",
    find: "    if (a.proto === SYSTEM_PROTO) return core.dma.unmapPage(a)\n",
    replace: "    if (a.proto === SYSTEM_PROTO) return Effect.void\n",
    config: "explore-fault-vs-munmap"
  },
  {
    name: "callback-forgets-set-seq",
    bug: "the GPU SVM notifier callback never calls mmu_interval_set_seq, so read_retry cannot see the invalidation",
    file: "src/services/gpusvm/Notifiers.ts",
    find: `      yield* core.mmu.setSeq(h, curSeq)\n`,
    replace: ``,
    config: "explore-fault-vs-dontneed"
  },
  {
    name: "bind-without-notifier-lock",
    bug: "the fault handler checks pages-valid and binds without holding the notifier lock, so an invalidation can run in between",
    file: "src/programs/FaultHandler.ts",
    find: "env.svm.withNotifierLock(",
    replace: "((e) => e)(",
    config: "explore-fault-vs-dontneed"
  },
  {
    name: "fault-handler-skips-gc",
    bug: "the fault handler binds a range the collector should have removed (the GC pass at the start of the fault loop is skipped)",
    file: "src/programs/FaultHandler.ts",
    find: `    if (st.gcQueue.length > 0) yield* GarbageCollector.run(st, svm, env.gpu)\n`,
    replace: ``,
    config: "explore-fault-vs-munmap"
  }
]

const args = process.argv.slice(2)
const onlyList = args.includes("--only") ? args[args.indexOf("--only") + 1]!.split(",") : undefined
const traceOf = args.includes("--trace") ? args[args.indexOf("--trace") + 1] : undefined
const seconds = args.includes("--time") ? Number(args[args.indexOf("--time") + 1]) : 60

const apply = (dir: string, m: Mutant): string | undefined => {
  const path = join(dir, m.file)
  const text = readFileSync(path, "utf8")
  const count = text.split(m.find).length - 1
  if (count !== 1) return `mutation site found ${count} times in ${m.file} (expected once)`
  writeFileSync(path, text.replace(m.find, m.replace))
  return undefined
}

interface Row {
  readonly name: string
  readonly config: string
  readonly found: boolean
  readonly detail: string
  readonly schedules: number | undefined
  readonly seconds: number
  readonly steps: number | undefined
  readonly preemptions: number | undefined
  readonly violation: Violation | undefined
}

// `--sites`: only check that every mutation site occurs exactly once in the repository (a fast CI guard:
// mutants are exact text replacements and must keep up with the code)
if (args.includes("--sites")) {
  const gone = MUTANTS.map((m) => [m.name, readFileSync(join(ROOT, m.file), "utf8").split(m.find).length - 1] as const).filter(([, n]) => n !== 1)
  for (const [name, n] of gone) console.log(`${name}: mutation site found ${n} times (expected once)`)
  console.log(`${MUTANTS.length - gone.length} of ${MUTANTS.length} mutation sites present`)
  process.exit(gone.length === 0 ? 0 : 1)
}

const rows: Array<Row> = []
for (const m of MUTANTS.filter((x) => onlyList === undefined || onlyList.includes(x.name))) {
  const dir = mkdtempSync(join(tmpdir(), `gpusvm-mutant-${m.name}-`))
  try {
    for (const d of ["src", "scenarios"]) cpSync(join(ROOT, d), join(dir, d), { recursive: true })
    for (const f of ["package.json", "tsconfig.json"]) cpSync(join(ROOT, f), join(dir, f))
    symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"))
    const problem = apply(dir, m)
    if (problem !== undefined) {
      rows.push({ name: m.name, config: m.config, found: false, detail: problem, schedules: undefined, seconds: 0, steps: undefined, preemptions: undefined, violation: undefined })
      continue
    }
    const started = performance.now()
    const run = spawnSync(process.execPath, [join(dir, "src/cli/main.ts"), "explore", m.config, "--json", "--time", String(seconds)], {
      cwd: dir,
      encoding: "utf8",
      timeout: (seconds + 120) * 1000,
      maxBuffer: 64 * 1024 * 1024
    })
    const took = (performance.now() - started) / 1000
    let parsed: { schedules?: number; violation?: Violation } = {}
    try {
      parsed = JSON.parse(run.stdout.trim().split("\n").pop() ?? "{}")
    } catch {
      parsed = {}
    }
    const v = parsed.violation
    rows.push({
      name: m.name,
      config: m.config,
      found: run.status === 1 && v !== undefined,
      detail: v !== undefined ? `${v.kind}: ${v.detail}`.slice(0, 110) : `exit ${run.status}: ${(run.stderr || run.stdout).trim().split("\n")[0]?.slice(0, 100) ?? ""}`,
      schedules: parsed.schedules,
      seconds: Math.round(took * 10) / 10,
      steps: v?.steps,
      preemptions: v?.preemptions,
      violation: v
    })
    if (traceOf === m.name) {
      const human = spawnSync(process.execPath, [join(dir, "src/cli/main.ts"), "explore", m.config, "--time", String(seconds)], { cwd: dir, encoding: "utf8" })
      console.log(`\n$ gpusvm explore ${m.config}   # with mutant ${m.name}: ${m.bug}\n${human.stdout}`)
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

console.log("| mutant | bug | config | found | schedules | s | minimal trace | violation |")
console.log("|---|---|---|---|---:|---:|---|---|")
for (const r of rows) {
  const m = MUTANTS.find((x) => x.name === r.name)!
  console.log(
    `| ${r.name} | ${m.bug} | ${r.config} | ${r.found ? "yes" : "**no**"} | ${r.schedules ?? "-"} | ${r.seconds} | ${r.steps === undefined ? "-" : `${r.steps} steps, ${r.preemptions} preemptions`} | ${r.detail.replaceAll("|", "\\|")} |`
  )
}
// every mutant's minimal counterexample
for (const r of rows) {
  if (r.violation === undefined) continue
  console.log(`\n${r.name} on ${r.config}: ${r.violation.kind}: ${r.violation.detail}`)
  for (const line of formatTrace(r.violation)) console.log(line)
  console.log(`  schedule ${r.violation.schedule}`)
}
const survived = rows.filter((r) => !r.found)
console.log(`\n${rows.length - survived.length} of ${rows.length} mutants found`)
process.exitCode = survived.length === 0 ? 0 : 1
