import { Effect } from "effect"
import { Driver } from "../src/stacks/Driver.ts"
import { Cpu } from "../src/services/Cpu.ts"
import { Gpu } from "../src/services/Gpu.ts"
const MiB = 1024 * 1024
const chunk = Number(process.argv[2] ?? 4096)
const policy = (process.argv[3] ?? "never") as "never" | "always"
const bytes = Number(process.argv[4] ?? 32) * MiB
for (let rep = 0; rep < 3; rep++) {
  const us = await Effect.runPromise(Effect.gen(function*() {
    const cpu = yield* Cpu
    const gpu = yield* Gpu
    const driver = yield* Driver
    const base = yield* cpu.mmap({ length: bytes, align: 2 * MiB })
    const t0 = performance.now()
    for (let off = 0; off < bytes; off += chunk) yield* gpu.access(base + off, 4, "read")
    const ms = performance.now() - t0
    return (ms * 1000) / (yield* driver.counters).faults
  }).pipe(Effect.provide(Driver.simulated({ machine: { vramBytes: policy === "always" ? bytes + 64 * MiB : 0, devicePrivateOwner: "bench" }, config: { name: "bench", chunkSizes: [chunk, 4096].filter((x, i, a) => a.indexOf(x) === i) }, policy, driver: { checkPagesThreshold: 0 } }))))
  console.log(rep, us.toFixed(2), "µs/fault")
}
