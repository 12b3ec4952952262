/**
 * Counts the Effect steps (primitives the fiber run loop evaluates) of one GPU first-touch fault and of one
 * existing-range lookup through `GpuSvm.rangeFindOrInsert`, with a `Scheduler` whose `shouldYield` (asked
 * once per step) counts. Deterministic, unlike timings on a shared machine (issue #16, bench/findings.md).
 *
 * Run: `node bench/steps.ts [chunkBytes] [never|always]`.
 */
import { Effect, Scheduler } from "effect"
import { Cpu } from "../src/services/Cpu.ts"
import { Gpu } from "../src/services/Gpu.ts"
import { Driver } from "../src/stacks/Driver.ts"
import { GpuSvm } from "../src/services/GpuSvm.ts"
const MiB = 1024 * 1024
const chunk = Number(process.argv[2] ?? 4096)
const policy = process.argv[3] === "always" ? "always" : "never"
let ops = 0
const base = new Scheduler.MixedScheduler()
const counting = Object.create(base) as Scheduler.Scheduler & { shouldYield: (f: unknown) => boolean }
counting.shouldYield = (f) => {
  ops++
  return base.shouldYield(f as never)
}
const prog = Effect.gen(function*() {
  const cpu = yield* Cpu
  const gpu = yield* Gpu
  const svm = yield* GpuSvm
  const b = yield* cpu.mmap({ length: 64 * MiB, align: 2 * MiB })
  yield* gpu.access(b, 4, "read")
  const o0 = ops
  for (let i = 1; i <= 100; i++) yield* gpu.access(b + i * chunk, 4, "read")
  const o1 = ops
  for (let i = 1; i <= 100; i++) yield* svm.rangeFindOrInsert(b + i * chunk, 0, 2 ** 47)
  const o2 = ops
  console.log(`ops per fault ${(o1 - o0) / 100}, per existing lookup ${(o2 - o1) / 100}`)
}).pipe(Effect.provide(Driver.simulated({ machine: { vramBytes: policy === "always" ? 256 * MiB : 0, devicePrivateOwner: "bench" }, config: { name: "bench", chunkSizes: [chunk, 4096].filter((x, i, a) => a.indexOf(x) === i) }, policy, driver: { checkPagesThreshold: 0 } })))
await Effect.runPromise(prog.pipe(Effect.provideService(Scheduler.Scheduler, counting)))
