/**
 * The end of a scenario run (design.md §8): after the threads, snapshot the
 * live ranges, notifiers and counters for the result; check tree integrity
 * (invariant 4: ranges are configured chunk sizes, never overlap, each inside a
 * notifier); exit the process and tear GPU SVM down if the scenario did not;
 * then check that nothing leaked (invariant 3: notifiers, ranges, DMA mappings,
 * device allocations, mm references), report a 6.17 get_pages livelock
 * (kernel-semantics §11.16), and add the machine's own violations (invariants
 * 1–2: IOMMU faults, stale device access, bad unmaps).
 *
 * @since 0.2.0
 */
import { Effect } from "effect"
import { hex } from "../../domain/Address.ts"
import type { Range } from "../../domain/Range.ts"
import type { ResultMetrics, ScenarioResult } from "../../domain/ScenarioResult.ts"
import { Mm } from "../../services/Mm.ts"
import type { RunEnv } from "./RunEnv.ts"

const treeIntegrity = (env: RunEnv, ranges: ReadonlyArray<Range>, notifiers: ReadonlyArray<{ readonly start: number; readonly end: number }>) => {
  const sizes = new Set(env.svm.config.chunkSizes)
  const bad = (detail: string) => env.violations.push({ invariant: "tree-integrity", detail })
  for (let i = 0; i < ranges.length; i++) {
    const r = ranges[i]!
    if (i > 0 && ranges[i - 1]!.end > r.start) bad(`ranges overlap at ${hex(r.start)}`)
    if (!sizes.has(r.end - r.start)) bad(`range [${hex(r.start)}, ${hex(r.end)}) is not a configured chunk size`)
    if (notifiers.find((x) => x.start <= r.start && r.end <= x.end) === undefined) bad(`range [${hex(r.start)}, ${hex(r.end)}) lies in no notifier`)
  }
  for (let i = 1; i < notifiers.length; i++) {
    if (notifiers[i - 1]!.end > notifiers[i]!.start) bad(`notifiers overlap at ${hex(notifiers[i]!.start)}`)
  }
}

const sum = (xs: ReadonlyArray<number>) => xs.reduce((a, b) => a + b, 0)

/**
 * The run's counters now, as the result's `metrics` reports them (the driver's fault counters,
 * GPU SVM's range/notifier counts, the machine's invalidations and live DMA mappings, the
 * pagemaps' traffic and usage). `finish` snapshots them for the result; `expect-metrics` reads
 * them mid-run (kernel-semantics §11.17 part 7). No locks: each service's counter read is atomic.
 *
 * @category invariants
 * @since 0.3.0
 */
export const readMetrics = (env: RunEnv): Effect.Effect<ResultMetrics> =>
  Effect.gen(function*() {
    const { svm, machine, driver, pagemaps } = env
    const stats = yield* machine.stats
    const counters = yield* driver.counters
    const svmStats = yield* svm.stats
    const usage = yield* Effect.forEach(pagemaps, (p) => p.usage)
    const traffic = yield* Effect.forEach(pagemaps, (p) => p.traffic)
    return {
      faults: counters.faults,
      faultRetries: { ...counters.faultRetries },
      rangesCreated: svmStats.rangesCreated,
      rangesRemoved: svmStats.rangesRemoved,
      notifiersCreated: svmStats.notifiersCreated,
      notifiersRemoved: svmStats.notifiersRemoved,
      invalidations: { unmap: 0, clear: 0, migrate: 0, ...stats.invalidations },
      bytesToVram: sum(traffic.map((t) => t.bytesToVram)),
      bytesToRam: sum(traffic.map((t) => t.bytesToRam)),
      evictions: sum(traffic.map((t) => t.evictions)) + counters.evictions,
      gcRuns: counters.gcRuns,
      dmaMappingsLive: stats.dmaMappingsLive,
      deviceBytesLive: sum(usage.map((u) => u.usedBytes)),
      // only when a madvise zapped anything: results of runs without one keep their shape
      ...(counters.madviseInvalidations === 0 ? {} : { madviseInvalidations: counters.madviseInvalidations })
    }
  })

/**
 * Snapshots, checks the invariants, tears down and builds the run's result
 * (its `durationMs` is filled in by the caller, 0 here).
 *
 * @category invariants
 * @since 0.2.0
 */
export const finish = (env: RunEnv): Effect.Effect<ScenarioResult, never, Mm> =>
  Effect.gen(function*() {
    const { svm, machine, pagemaps, violations } = env
    // Snapshot for the result, before teardown.
    const ranges = yield* svm.ranges()
    const notifiers = yield* svm.notifiers
    const metrics = yield* readMetrics(env)
    treeIntegrity(env, ranges, notifiers)

    // Teardown, then invariant 3: no leaks.
    if (!env.exited) {
      yield* env.cpu.exit
      yield* svm.fini
    }
    const after = yield* machine.stats
    if ((yield* svm.notifiers).length > 0 || after.notifiersLive > 0) {
      violations.push({ invariant: "no-leaks", detail: `${after.notifiersLive} MMU notifiers left after exit` })
    }
    if ((yield* svm.ranges()).length > 0) violations.push({ invariant: "no-leaks", detail: "ranges left after fini" })
    // kernel-semantics §11.16: every mmget_not_zero must have had its mmput by now (the 6.17 range_evict leak).
    const mmRefs = yield* (yield* Mm).references
    if (mmRefs > 0) violations.push({ invariant: "mm-ref-leak", detail: `${mmRefs} mm references (mmget_not_zero without mmput) left after teardown` })
    // kernel-semantics §11.16: the 6.17 get_pages restart loop spent its work budget.
    const livelocks = (yield* svm.stats).livelocks
    if (livelocks > 0) {
      violations.push({ invariant: "livelock", detail: `${livelocks} get_pages calls restarted without bound (kernel ${svm.config.kernel}) until the work budget was spent` })
    }
    if (after.dmaMappingsLive > 0) violations.push({ invariant: "no-leaks", detail: `${after.dmaMappingsLive} DMA mappings left after exit` })
    for (const p of pagemaps) {
      const u = yield* p.usage
      if (u.usedBytes > 0 || u.allocations > 0) {
        violations.push({ invariant: "no-leaks", detail: `pagemap ${p.id}: ${u.usedBytes} bytes in ${u.allocations} device allocations left after exit` })
      }
    }
    // Invariants 1–2 as the machine saw them (IOMMU faults, stale device access, bad unmaps).
    for (const v of yield* machine.violations) violations.push({ invariant: v.invariant, detail: v.detail })

    return {
      scenario: env.scenario.name,
      ok: violations.length === 0 && env.failures.length === 0,
      violations,
      failures: env.failures,
      metrics,
      ranges: ranges.map((r) => ({ start: r.start, end: r.end, flags: { ...r.flags } })),
      notifiers: notifiers.map((n) => ({ start: n.start, end: n.end })),
      durationMs: 0
    } satisfies ScenarioResult
  })
