/**
 * The benchmark's plain imperative model (bench/plainModel.ts, the denominator
 * of issue #16's fault-path ratios) does the same work as the real stack: for
 * the same first-touch storm it ends with the same ranges (kernel-semantics §3
 * chunk selection) and the same bound GPU pages, with and without migration.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { PlainModel } from "../../bench/plainModel.ts"
import { Cpu } from "../../src/services/Cpu.ts"
import { Gpu } from "../../src/services/Gpu.ts"
import { GpuSvm } from "../../src/services/GpuSvm.ts"
import { Driver } from "../../src/stacks/Driver.ts"

const KiB = 1024
const MiB = 1024 * KiB

/** Page offsets touched in a seeded order (repeats included: a hit must not fault). */
const touches = (pages: number, n: number, seed: number): ReadonlyArray<number> => {
  let s = seed
  const out: Array<number> = []
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0
    out.push(s % pages)
  }
  return out
}

const cases = [
  { chunkSizes: [64 * KiB, 4096], bytes: 2 * MiB, policy: "never" as const },
  { chunkSizes: [2 * MiB, 64 * KiB, 4096], bytes: 4 * MiB + 192 * KiB, policy: "never" as const },
  { chunkSizes: [64 * KiB, 4096], bytes: 1 * MiB, policy: "always" as const }
]

describe("bench/plainModel: the same work as the real stack (issue #16 denominator, kernel-semantics §3)", () => {
  for (const c of cases) {
    it.effect(`§3 same ranges and bound GPU pages after a seeded storm: chunks ${c.chunkSizes.map((s) => s / KiB).join("/")} KiB, ${c.bytes / KiB} KiB, policy ${c.policy}`, () =>
      Effect.gen(function*() {
        const cpu = yield* Cpu
        const gpu = yield* Gpu
        const svm = yield* GpuSvm
        const base = yield* cpu.mmap({ length: c.bytes, align: 2 * MiB })
        const plain = new PlainModel({ chunkSizes: c.chunkSizes, notifierSize: 512 * MiB, migrate: c.policy === "always", vramBytes: 64 * MiB })
        plain.mmap(base, c.bytes)
        const pages = c.bytes / 4096
        for (const p of touches(pages, pages, 7)) {
          yield* gpu.access(base + p * 4096, 4, "read")
          plain.access(base + p * 4096)
        }
        const real = (yield* svm.ranges()).map((r) => [r.start, r.end] as const)
        assert.deepStrictEqual(plain.ranges(), real)
        assert.isAtLeast(real.length, 2)
        for (let p = 0; p < pages; p++) {
          assert.strictEqual(plain.gpuPt.has(base / 4096 + p), yield* gpu.isBound(base + p * 4096, base + p * 4096 + 4096), `page ${p}`)
        }
        assert.strictEqual(plain.faults, (yield* (yield* Driver).counters).faults)
      }).pipe(Effect.provide(Driver.simulated({
        machine: { vramBytes: 64 * MiB },
        config: { chunkSizes: c.chunkSizes },
        policy: c.policy,
        driver: { checkPagesThreshold: 0 }
      }))))
  }
})
