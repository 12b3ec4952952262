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
import { exitProcess } from "./MemorySteps.ts"
import { type RunEnv, viewOf } from "./RunEnv.ts"

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

/** Every VM of every process of the run, as views (the primary's first VM first). */
const allViews = (env: RunEnv): Array<RunEnv> => {
  const out: Array<RunEnv> = []
  for (const p of env.world.processes.values()) for (const vm of p.vms) out.push(viewOf(env, p, vm))
  return out
}

/**
 * The result's counters: `readMetrics` of the primary VM, with the driver and
 * GPU SVM counters summed over every VM of every process (kernel-semantics
 * §11.17); the machine's and the pagemaps' are machine-wide already.
 */
const runMetrics = (env: RunEnv): Effect.Effect<ResultMetrics> =>
  Effect.gen(function*() {
    const base = yield* readMetrics(env)
    const others = allViews(env).filter((v) => v.svm !== env.svm)
    if (others.length === 0) return base
    const out = { ...base, faultRetries: { ...base.faultRetries } }
    for (const v of others) {
      const c = yield* v.driver.counters
      const s = yield* v.svm.stats
      out.faults += c.faults
      for (const k of Object.keys(out.faultRetries) as Array<keyof typeof out.faultRetries>) out.faultRetries[k] += c.faultRetries[k]
      out.rangesCreated += s.rangesCreated
      out.rangesRemoved += s.rangesRemoved
      out.notifiersCreated += s.notifiersCreated
      out.notifiersRemoved += s.notifiersRemoved
      out.evictions += c.evictions
      out.gcRuns += c.gcRuns
    }
    return out
  })

/**
 * Snapshots, checks the invariants, tears down and builds the run's result
 * (its `durationMs` is filled in by the caller, 0 here). `env` is the primary
 * process's first VM; every other process and VM of the run (kernel-semantics
 * §11.17) is checked and torn down too.
 *
 * @category invariants
 * @since 0.2.0
 */
export const finish = (env: RunEnv): Effect.Effect<ScenarioResult> =>
  Effect.gen(function*() {
    const { svm, machine, pagemaps, violations } = env
    const views = allViews(env)
    // Snapshot for the result, before teardown.
    // notifiers first: the GC worker may still be collecting (its own fiber), and a collection removes a
    // range before its notifier, so this order never sees a range whose notifier is already gone
    const notifiers = yield* svm.notifiers
    const ranges = yield* svm.ranges()
    const metrics = yield* runMetrics(env)
    for (const v of views) {
      const vNotifiers = yield* v.svm.notifiers
      treeIntegrity(v, yield* v.svm.ranges(), vNotifiers)
    }

    // Teardown (every process not yet exited), then invariant 3: no leaks.
    for (const p of env.world.processes.values()) yield* exitProcess(p)
    const after = yield* machine.stats
    for (const p of env.world.processes.values()) {
      const pstats = p === env.process ? after : yield* p.machine.stats
      const left = pstats.notifiersLive
      let svmLeft = false
      for (const vm of p.vms) if ((yield* vm.svm.notifiers).length > 0) svmLeft = true
      if (svmLeft || left > 0) {
        violations.push({ invariant: "no-leaks", detail: `${left} MMU notifiers left after exit${p.primary ? "" : ` of process ${p.name}`}` })
      }
      for (const vm of p.vms) {
        if ((yield* vm.svm.ranges()).length > 0) violations.push({ invariant: "no-leaks", detail: `ranges left after fini${p.primary && vm === p.vms[0] ? "" : ` (process ${p.name}, VM ${vm.name})`}` })
      }
      // kernel-semantics §11.16: every mmget_not_zero must have had its mmput by now (the 6.17 range_evict leak).
      const mmRefs = yield* p.mm.references
      if (mmRefs > 0) violations.push({ invariant: "mm-ref-leak", detail: `${mmRefs} mm references (mmget_not_zero without mmput) left after teardown${p.primary ? "" : ` of process ${p.name}`}` })
    }
    // kernel-semantics §11.16: the 6.17 get_pages restart loop spent its work budget.
    for (const v of views) {
      const livelocks = (yield* v.svm.stats).livelocks
      if (livelocks > 0) {
        violations.push({ invariant: "livelock", detail: `${livelocks} get_pages calls restarted without bound (kernel ${v.svm.config.kernel}) until the work budget was spent` })
      }
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
      durationMs: 0,
      ...(env.world.skip.reason === undefined ? {} : { skipped: env.world.skip.reason })
    } satisfies ScenarioResult
  })
