/**
 * `gpusvm igt …` (issue #17 part 4): the IGT `xe_exec_system_allocator`
 * subtests by name, from the table of src/igt/Subtests.ts.
 *
 * - `gpusvm igt list [--filter GLOB]`: one subtest name per line, in IGT's
 *   order (`--list-subtests` order); `--filter` keeps the names the shell-style
 *   glob matches (`*`, `?`, `[…]`). Exit 0; a filter that matches nothing is
 *   bad input (one line on stderr, exit 2).
 *
 * - `gpusvm igt report [--filter GLOB] [--json]`: builds and runs every
 *   (matching) subtest in this process on the simulated machine
 *   (`Generate.ts`, the scenario runner) and prints the coverage table:
 *   passed, failed, skipped by reason, vacuous (issue #17 part 5). Exit 0
 *   unless a subtest failed (1).
 *
 * @since 0.3.0
 */
import { Console, Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"
import { build } from "../igt/Generate.ts"
import { matching, type Subtest } from "../igt/Subtests.ts"
import * as Runner from "../programs/ScenarioRunner.ts"
import { simulated } from "./machines.ts"

/**
 * The outcome of one subtest in a report.
 *
 * @category models
 */
export interface IgtOutcome {
  readonly name: string
  readonly outcome: "passed" | "failed" | "skipped" | "vacuous"
  /** skipped / vacuous: why; failed: the first failure or violation. */
  readonly detail?: string
  readonly ms: number
}

/**
 * Builds and runs each subtest in this process (simulated machine), in order;
 * `onEach` sees every outcome as it comes.
 *
 * @category running
 */
export const runSubtests = (subtests: ReadonlyArray<Subtest>, onEach: (o: IgtOutcome) => Effect.Effect<void> = () => Effect.void) =>
  Effect.forEach(subtests, (t) =>
    Effect.gen(function*() {
      const started = performance.now()
      const b = build(t)
      let o: IgtOutcome
      if (b.kind !== "scenario") o = { name: t.name, outcome: b.kind, detail: b.reason, ms: 0 }
      else {
        // the benchmarks (prefetch-*-benchmark: 128 prefetches of 64 MiB) run past the default 60 s bound
        const r = yield* Runner.run(b.scenario, simulated, { timeoutMs: REPORT_TIMEOUT_MS })
        const first = r.failures[0]?.detail ?? r.violations[0]?.detail
        o = { name: t.name, outcome: r.ok ? "passed" : "failed", ...(r.ok || first === undefined ? {} : { detail: first }), ms: Math.round(performance.now() - started) }
      }
      yield* onEach(o)
      return o
    }))

/**
 * The time bound of one subtest in a report: 10 minutes (the runner's default, 60 s, is too short
 * for the prefetch benchmarks).
 *
 * @category constants
 */
export const REPORT_TIMEOUT_MS = 600_000

/** The reason class of a skip: its source (`#14`, `#17 part 1`, …) and what. */
const reasonClass = (detail: string): string => detail.split("; ").map((d) => d.replace(/ \(.*\)$/, "")).join("; ")

/**
 * The coverage table of a report, as text lines.
 *
 * @category functions
 */
export const coverageTable = (outcomes: ReadonlyArray<IgtOutcome>, wallMs: number): ReadonlyArray<string> => {
  const count = (k: IgtOutcome["outcome"]) => outcomes.filter((o) => o.outcome === k).length
  const byReason = new Map<string, number>()
  for (const o of outcomes) if (o.outcome === "skipped") byReason.set(reasonClass(o.detail ?? ""), (byReason.get(reasonClass(o.detail ?? "")) ?? 0) + 1)
  const lines = [
    `IGT xe_exec_system_allocator: ${outcomes.length} subtests in ${(wallMs / 1000).toFixed(1)} s`,
    `  passed   ${count("passed")}`,
    `  failed   ${count("failed")}`,
    `  skipped  ${count("skipped")}`,
    ...[...byReason].sort((a, b) => b[1] - a[1]).map(([r, n]) => `    ${String(n).padStart(5)}  ${r}`),
    `  vacuous  ${count("vacuous")}`
  ]
  for (const o of outcomes) if (o.outcome === "failed") lines.push(`  FAILED ${o.name}: ${o.detail ?? ""}`)
  return lines
}

/** `gpusvm igt report`. */
const report = Command.make(
  "report",
  {
    filter: Flag.String("filter").pipe(Flag.withMetavar("GLOB"), Flag.withDescription("Only the subtests whose name matches this glob"), Flag.optional),
    json: Flag.Boolean("json").pipe(Flag.withDescription("One JSON object per subtest, then the totals"), Flag.withDefault(false))
  },
  Effect.fnUntraced(function*({ filter, json }) {
    const glob = Option.getOrUndefined(filter)
    const subtests = matching(glob)
    if (subtests.length === 0) {
      yield* Console.error(`gpusvm: igt report: no subtest matches "${glob}"`)
      return yield* Effect.sync(() => {
        process.exitCode = 2
      })
    }
    const started = performance.now()
    const outcomes = yield* runSubtests(subtests, (o) => (json ? Console.log(JSON.stringify(o)) : Effect.void))
    const wall = performance.now() - started
    if (json) {
      const count = (k: IgtOutcome["outcome"]) => outcomes.filter((o) => o.outcome === k).length
      yield* Console.log(JSON.stringify({ total: outcomes.length, passed: count("passed"), failed: count("failed"), skipped: count("skipped"), vacuous: count("vacuous"), wallMs: Math.round(wall) }))
    } else yield* Console.log(coverageTable(outcomes, wall).join("\n"))
    if (outcomes.some((o) => o.outcome === "failed")) {
      yield* Effect.sync(() => {
        process.exitCode = 1
      })
    }
  })
).pipe(Command.withDescription("Run every IGT subtest (generated scenarios, simulated machine) and print the coverage table"))

/** `gpusvm igt list`. */
const list = Command.make(
  "list",
  {
    filter: Flag.String("filter").pipe(
      Flag.withMetavar("GLOB"),
      Flag.withDescription("Only the subtests whose name matches this glob (* ? [...]), e.g. 'once-*'"),
      Flag.optional
    )
  },
  Effect.fnUntraced(function*({ filter }) {
    const glob = Option.getOrUndefined(filter)
    const names = matching(glob).map((t) => t.name)
    if (names.length === 0) {
      yield* Console.error(`gpusvm: igt list: no subtest matches "${glob}"`)
      return yield* Effect.sync(() => {
        process.exitCode = 2
      })
    }
    yield* Console.log(names.join("\n"))
  })
).pipe(Command.withDescription("List the IGT xe_exec_system_allocator subtests, one name per line, in IGT's order"))

/**
 * `gpusvm igt`: the IGT `xe_exec_system_allocator` subtests (`list`).
 *
 * @category commands
 * @since 0.3.0
 */
export const igt = Command.make("igt").pipe(
  Command.withDescription("The IGT xe_exec_system_allocator subtests by name (see docs/igt.md)"),
  Command.withSubcommands([list, report])
)
