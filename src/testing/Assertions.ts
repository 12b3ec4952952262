/**
 * Invariant assertions for tests (design.md §8), as Effects that fail with a
 * typed error naming what broke:
 *
 * - {@link assertCoherent}: the GPU sees the bytes the CPU sees
 *   (kernel-semantics §6: the GPU mirrors the process's address space).
 * - {@link assertNoLeaks}: after `exit` + `drm_gpusvm_fini`, nothing is left:
 *   no MMU notifiers, ranges, DMA mappings, device allocations or mm references
 *   (invariant 3; §11.16 for the mm reference). The checks are the scenario
 *   runner's own (`programs/scenario/Invariants.ts`), run on the test's stack.
 * - {@link assertNoViolations}: the machine recorded no violation (invariants
 *   1–2: IOMMU faults, stale device access, bad unmaps).
 *
 * @since 0.2.0
 */
import { Deferred, Effect, Exit, Option, Schema } from "effect"
import { hex } from "../domain/Address.ts"
import { decodeScenario } from "../domain/Scenario.ts"
import { Driver } from "../programs/Driver.ts"
import { finish } from "../programs/scenario/Invariants.ts"
import { type ProcessEnv, type RunWorld, viewOf } from "../programs/scenario/RunEnv.ts"
import { Cpu } from "../services/Cpu.ts"
import { DevicePagemaps } from "../services/DevicePagemap.ts"
import { Gpu } from "../services/Gpu.ts"
import { GpuSvm } from "../services/GpuSvm.ts"
import { Interleaving } from "../services/Interleaving.ts"
import { Machine } from "../services/Machine.ts"
import { Mm } from "../services/Mm.ts"
import type { Span } from "./Workload.ts"

/**
 * One broken invariant: its name (e.g. `no-leaks`, `mm-ref-leak`,
 * `iommu-fault`) and what was seen.
 *
 * @category models
 * @since 0.2.0
 */
export const Broken = Schema.Struct({ invariant: Schema.String, detail: Schema.String })

/**
 * One broken invariant (see {@link Broken}).
 *
 * @category models
 * @since 0.2.0
 */
export type Broken = typeof Broken.Type

/**
 * `assertCoherent` failed: at `addr` the GPU and the CPU saw different bytes,
 * or one of them could not read the span at all (`detail` says which).
 *
 * @category errors
 * @since 0.2.0
 */
export class IncoherentView extends Schema.TaggedError<IncoherentView>()("IncoherentView", {
  addr: Schema.Number,
  gpu: Schema.optionalKey(Schema.Number),
  cpu: Schema.optionalKey(Schema.Number),
  detail: Schema.String
}) {
  override get message(): string {
    return `incoherent view at ${hex(this.addr)}: ${this.detail}`
  }
}

/**
 * `assertNoLeaks` failed: what was left after `exit` + `fini`.
 *
 * @category errors
 * @since 0.2.0
 */
export class LeakDetected extends Schema.TaggedError<LeakDetected>()("LeakDetected", {
  leaks: Schema.Array(Broken)
}) {
  override get message(): string {
    return `leaked after exit + fini: ${this.leaks.map((l) => `${l.invariant}: ${l.detail}`).join("; ")}`
  }
}

/**
 * `assertNoViolations` failed: the machine's recorded violations.
 *
 * @category errors
 * @since 0.2.0
 */
export class MachineViolations extends Schema.TaggedError<MachineViolations>()("MachineViolations", {
  violations: Schema.Array(Broken)
}) {
  override get message(): string {
    return `machine violations: ${this.violations.map((v) => `${v.invariant}: ${v.detail}`).join("; ")}`
  }
}

const describe = (e: unknown): string => (e instanceof Error ? e.message : String(e))

/**
 * Reads every span through the GPU (`Gpu.access(…, "read")`, faulting it in
 * through the driver) and then through the CPU, and fails with
 * `IncoherentView` at the first byte where they differ, or when either read
 * fails (a span must be mapped and readable; `WorkloadRun.readable` lists
 * such spans). The GPU read comes first, so pages the driver migrated to
 * device memory are read there before the CPU read moves them back
 * (`migrate_to_ram`).
 *
 * @category assertions
 * @since 0.2.0
 */
export const assertCoherent = (spans: ReadonlyArray<Span>): Effect.Effect<void, IncoherentView, Cpu | Gpu> =>
  Effect.gen(function*() {
    const cpu = yield* Cpu
    const gpu = yield* Gpu
    for (const { addr, length } of spans) {
      const g = yield* gpu.access(addr, length, "read").pipe(
        Effect.mapError((e) => new IncoherentView({ addr, detail: `GPU read of ${length} bytes failed: ${describe(e)}` }))
      )
      const c = yield* cpu.read(addr, length).pipe(
        Effect.mapError((e) => new IncoherentView({ addr, detail: `CPU read of ${length} bytes failed: ${describe(e)}` }))
      )
      if (!(g instanceof Uint8Array) || g.length !== c.length) {
        return yield* new IncoherentView({ addr, detail: `GPU read returned ${g instanceof Uint8Array ? g.length : 0} bytes, CPU ${c.length}` })
      }
      for (let i = 0; i < c.length; i++) {
        if (g[i] !== c[i]) {
          return yield* new IncoherentView({ addr: addr + i, gpu: g[i]!, cpu: c[i]!, detail: `GPU sees ${g[i]}, CPU sees ${c[i]}` })
        }
      }
    }
  })

/** The invariants of the runner's teardown check that are leaks. */
const LEAKS = new Set(["no-leaks", "mm-ref-leak"])

/** An empty scenario: `finish` names the run after it. */
const scenario = (() => {
  const exit = decodeScenario({ name: "gpusvm-testing", steps: [] })
  if (Exit.isFailure(exit)) throw new Error("gpusvm/testing: the empty scenario does not decode")
  return exit.value
})()

/**
 * Tears the process down (`exit`, then `drm_gpusvm_fini`; both are no-ops if
 * already done) and fails with `LeakDetected` listing what is left: MMU
 * notifiers, GPU SVM ranges, DMA mappings, device allocations of any
 * pagemap, mm references taken without `mmput` (kernel-semantics §11.16).
 * The checks are the scenario runner's teardown checks, run on this stack.
 * After it the process is gone: call it last.
 *
 * @category assertions
 * @since 0.2.0
 */
export const assertNoLeaks: Effect.Effect<void, LeakDetected, Cpu | Gpu | GpuSvm | Driver | Machine | Mm> = Effect.gen(
  function*() {
    const pagemaps = (yield* Effect.serviceOption(DevicePagemaps)).pipe(Option.map((p) => p.all), Option.getOrElse(() => []))
    const process: ProcessEnv = {
      name: "p0",
      primary: true,
      cpu: yield* Cpu,
      mm: yield* Mm,
      machine: yield* Machine,
      pagemaps,
      vms: [{ name: "v0", gpu: yield* Gpu, svm: yield* GpuSvm, driver: yield* Driver }],
      buffers: new Map(),
      bos: new Map(),
      exited: false,
      done: yield* Deferred.make<void>()
    }
    const world: RunWorld = {
      processes: new Map([[process.name, process]]),
      skip: { reason: undefined },
      fork: () => Effect.die("assertNoLeaks runs no steps"),
      wait: () => Effect.die("assertNoLeaks runs no steps")
    }
    const result = yield* finish(viewOf({ scenario, il: yield* Interleaving, failures: [], violations: [], world }, process, process.vms[0]!))
    const leaks = result.violations.filter((v) => LEAKS.has(v.invariant))
    if (leaks.length > 0) return yield* new LeakDetected({ leaks })
  }
)

/**
 * Fails with `MachineViolations` if the machine recorded any violation
 * (`Machine.violations`: IOMMU faults, device access through a stale PTE,
 * unmaps of unknown DMA addresses, a notifier callback that returned without
 * `mmu_interval_set_seq`, …).
 *
 * @category assertions
 * @since 0.2.0
 */
export const assertNoViolations: Effect.Effect<void, MachineViolations, Machine> = Effect.gen(function*() {
  const violations = yield* (yield* Machine).violations
  if (violations.length > 0) {
    return yield* new MachineViolations({ violations: violations.map((v) => ({ invariant: v.invariant, detail: v.detail })) })
  }
})
