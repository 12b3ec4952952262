/**
 * The built-in scenarios (`scenarios/*.json`): the IGT-derived set is complete,
 * every file asserts its data, and every scenario passes on the simulated
 * machine under a schedule seed — three different ones with `GPUSVM_SEEDS=all`
 * (`npm run test:seeds`) — run in-process through the same loader and machine
 * factory as the CLI.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { builtins, loadFile } from "../../src/cli/load.ts"
import { simulated } from "../../src/cli/machines.ts"
import type { Step } from "../../src/domain/Scenario.ts"
import { decodeScenarioResult, type ScenarioResult } from "../../src/domain/ScenarioResult.ts"
import * as ScenarioRunner from "../../src/programs/ScenarioRunner.ts"
import { DevicePagemaps } from "../../src/services/DevicePagemap.ts"
import { builtinNames, SCENARIOS } from "./support.ts"

/** The subtests of IGT's xe_exec_system_allocator the set must cover (the issue's list). */
const REQUIRED = [
  "approx-once-malloc",
  "approx-twice-malloc",
  "approx-many-malloc",
  "approx-once-large-malloc",
  "once-64k-malloc",
  "approx-many-stride-malloc",
  "approx-once-mmap",
  "approx-once-mmap-shared",
  "approx-once-mmap-file",
  "approx-once-mmap-huge",
  "approx-many-new",
  "approx-many-free",
  "approx-many-mmap-free",
  "approx-once-malloc-race",
  "approx-once-malloc-nomemset",
  "mmap-remap",
  "mmap-remap-dontunmap",
  "mmap-remap-ro",
  "multi-fault",
  "prefetch",
  "approx-fault",
  "approx-partial-munmap-cpu-fault",
  "approx-partial-munmap-no-cpu-fault",
  "approx-partial-middle-munmap-cpu-fault",
  "approx-partial-middle-munmap-no-cpu-fault",
  "approx-partial-remap-cpu-fault",
  "approx-partial-atomic-munmap-cpu-fault",
  "approx-unaligned-alloc",
  "approx-evict-malloc",
  "threads-many-malloc",
  "threads-shared-stride-race"
] as const

/**
 * The schedule seeds every built-in runs under: the first in `npm test`, all three with
 * `GPUSVM_SEEDS=all` (`npm run test:seeds`; `npm test` stays under 5 minutes on 2 cores).
 */
const ALL_SEEDS = [1, 7, 20261124] as const
const SEEDS = process.env["GPUSVM_SEEDS"] === "all" ? ALL_SEEDS : ALL_SEEDS.slice(0, 1)

const NAMES = builtinNames()

const describeResult = (r: ScenarioResult): string =>
  [
    ...r.failures.map((f) => `  failure ${f.step}: ${f.detail}`),
    ...r.violations.map((v) => `  violation ${v.invariant}: ${v.detail}`)
  ].join("\n")

type RawThreads = { steps?: ReadonlyArray<Step>; threads?: ReadonlyArray<{ steps: ReadonlyArray<Step> }> }
const stepsOf = (raw: RawThreads & { processes?: ReadonlyArray<RawThreads> }): Array<Step> =>
  [...(raw.steps ?? []), ...(raw.threads ?? []).flatMap((t) => t.steps), ...(raw.processes ?? []).flatMap(stepsOf)]

describe("built-in scenarios: the set", () => {
  it("holds every required IGT-derived scenario, and at least 30", () => {
    const missing = REQUIRED.filter((n) => !NAMES.includes(n))
    assert.deepStrictEqual(missing, [], `missing built-in scenarios: ${missing.join(", ")}`)
    assert.isAtLeast(NAMES.length, 30)
  })

  it.effect("every file decodes, is named after its file and has a description", () =>
    Effect.gen(function*() {
      const list = yield* builtins()
      assert.deepStrictEqual(list.map((b) => b.name).sort(), [...NAMES], "scenario names must equal their file names")
      for (const b of list) assert.isAbove(b.description.trim().length, 10, `${b.name}: description`)
    }))

  it("every scenario asserts data: a cpu-read or gpu-read outside expect-error", () => {
    for (const name of NAMES) {
      const raw = JSON.parse(readFileSync(join(SCENARIOS, `${name}.json`), "utf8"))
      const reads = stepsOf(raw).filter((s) => s.op === "cpu-read" || s.op === "gpu-read")
      assert.isAbove(reads.length, 0, `${name}: no cpu-read/gpu-read expectation`)
      if (name.startsWith("threads-") || name.endsWith("-race")) {
        assert.isAtLeast((raw.threads ?? []).length, 2, `${name}: should run several threads`)
      }
    }
  })

  it("scenarios that exist to migrate use a migrating policy (xe unless they say always)", () => {
    for (const name of NAMES.filter((n) => n.startsWith("partial-") || n.startsWith("evict-") || n === "prefetch")) {
      const raw = JSON.parse(readFileSync(join(SCENARIOS, `${name}.json`), "utf8"))
      assert.notStrictEqual(raw.policy?.migrate ?? "xe", "never", `${name}: policy "never" would not exercise VRAM`)
    }
    const evict = JSON.parse(readFileSync(join(SCENARIOS, "approx-evict-malloc.json"), "utf8"))
    assert.strictEqual(evict.machine?.vramBytes, "16M", "approx-evict-malloc: the VRAM size the metrics test below assumes")
  })
})

describe("built-in scenarios pass on the simulated machine", () => {
  for (const seed of SEEDS) {
    describe(`seed ${seed}`, () => {
      for (const name of NAMES) {
        it.effect(name, () =>
          Effect.gen(function*() {
            const { scenario } = yield* loadFile(join(SCENARIOS, `${name}.json`))
            const result = yield* ScenarioRunner.run(scenario, simulated, { seed })
            assert.isTrue(result.ok, `${name} (seed ${seed}) failed:\n${describeResult(result)}`)
            assert.strictEqual(result.scenario, name)
            // the object `--json` would print is a valid result
            const decoded = decodeScenarioResult(JSON.parse(JSON.stringify(result)))
            assert.isTrue(Exit.isSuccess(decoded), `${name}: the result does not decode: ${String(Exit.isFailure(decoded) ? decoded.cause : "")}`)
          }), 20_000)
      }
    })
  }
})

// ---------------------------------------------------------------------------
// Where the data went: checks on the result's traffic counters (the CLI's
// simulated machine has device memory: one pagemap, 256 MiB unless the
// scenario says otherwise).
// ---------------------------------------------------------------------------

const MiB = 1024 * 1024

const runBuiltin = (name: string, seed = 1) =>
  Effect.gen(function*() {
    const { scenario } = yield* loadFile(join(SCENARIOS, `${name}.json`))
    const result = yield* ScenarioRunner.run(scenario, simulated, { seed })
    assert.isTrue(result.ok, `${name} failed:\n${describeResult(result)}`)
    return result
  })

/** Does the CLI's simulated machine have device memory (a pagemap)? */
const pagemapCount = Effect.gen(function*() {
  return (yield* DevicePagemaps).all.length
}).pipe(
  Effect.provide(simulated({ vramBytes: 64 * MiB, seed: undefined, inject: {}, devicePrivateOwner: ScenarioRunner.OWNER, config: {}, driver: {}, policy: "xe" })),
  Effect.scoped
)

const traffic = (r: ScenarioResult) =>
  `bytesToVram ${r.metrics.bytesToVram}, bytesToRam ${r.metrics.bytesToRam}, evictions ${r.metrics.evictions}`

describe("built-in scenarios: where the data went", () => {
  it.effect("policy never, hugetlb and file mappings: nothing moves to VRAM", () =>
    Effect.gen(function*() {
      for (const name of ["once-malloc-sysmem", "approx-once-mmap-huge", "approx-once-mmap-file", "once-mmap-shared-file"]) {
        const r = yield* runBuiltin(name)
        assert.strictEqual(r.metrics.bytesToVram, 0, `${name}: ${traffic(r)}`)
      }
    }))

  it.effect("injected DMA-map failures are retried by the fault handler (EFAULT), not fatal", () =>
    Effect.gen(function*() {
      const r = yield* runBuiltin("inject-dma-map-fail")
      assert.isAtLeast(r.metrics.faultRetries.EFAULT, 1, JSON.stringify(r.metrics.faultRetries))
    }))

  describe("with device memory", () => {
    it.effect("the CLI's simulated machine has a device pagemap", () =>
      Effect.gen(function*() {
        assert.isAtLeast(yield* pagemapCount, 1, "machines.ts builds the simulated machine without device memory")
      }))

    const withVram = (name: string, body: (r: ScenarioResult) => void) =>
      it.effect(name, () => Effect.map(runBuiltin(name), body), 20_000)

    withVram("prefetch", (r) => {
      assert.isAtLeast(r.metrics.bytesToVram, 2 * MiB, traffic(r))
      assert.isAtLeast(r.metrics.bytesToRam, 2 * MiB, `prefetch to system must bring the 2 MiB back: ${traffic(r)}`)
    })

    withVram("approx-evict-malloc", (r) => {
      // more bytes copied in than the VRAM holds: some buffers had to be evicted to make room
      assert.isAbove(r.metrics.bytesToVram, 16 * MiB, `three 8 MiB buffers through 16 MiB of VRAM: ${traffic(r)}`)
      assert.isAbove(r.metrics.evictions, 0, traffic(r))
      assert.isAtLeast(r.metrics.bytesToRam, 8 * MiB, traffic(r))
    })

    // bytesToVram/bytesToRam count bytes actually copied: a never-touched buffer migrates for free,
    // so what proves the 2 MiB went to VRAM is the remaining 1 MiB being copied back for the CPU.
    for (const name of ["approx-partial-munmap-cpu-fault", "approx-partial-munmap-no-cpu-fault", "approx-partial-middle-munmap-cpu-fault", "approx-partial-middle-munmap-no-cpu-fault"]) {
      withVram(name, (r) => {
        assert.isAtLeast(r.metrics.bytesToRam, 1 * MiB, `xe: the GPU write puts the 2 MiB range in VRAM; the 1 MiB left must be copied back: ${traffic(r)}`)
      })
    }

    withVram("approx-once-malloc", (r) => {
      assert.isAtLeast(r.metrics.bytesToVram, 64 * 1024, `xe: a CPU-written 64 KiB range migrates on the GPU fault: ${traffic(r)}`)
    })

    withVram("approx-partial-atomic-munmap-cpu-fault", (r) => {
      assert.isAbove(r.metrics.bytesToVram, 0, `xe: atomics need VRAM: ${traffic(r)}`)
    })

    withVram("evict-all-then-access", (r) => {
      assert.isAtLeast(r.metrics.bytesToVram, 2 * MiB, traffic(r))
      assert.isAtLeast(r.metrics.bytesToRam, 2 * MiB, traffic(r))
    })
  })
})
