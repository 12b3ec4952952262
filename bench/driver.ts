/**
 * Benchmarks of the whole driver stack on the simulated machine:
 * - first-touch GPU fault storm, chunk sizes 4 KiB / 64 KiB / 2 MiB, policy
 *   `never` and `always` (migration), µs per fault and faults/s, beside the Xe
 *   kernel's CPU time per fault including migration (reference rows);
 * - invalidation: munmap of 1 GiB covered by 512 bound 2 MiB ranges;
 * - concurrency: 4 GPU-fault fibers + 1 munmap/re-mmap fiber for 2 s;
 * - Effect overhead: the fault path's lookups beside a plain imperative loop
 *   doing the same interval-tree lookups and page-table walks.
 *
 * Run directly: `node bench/driver.ts`.
 */
import { Effect, Fiber } from "effect"
import { pathToFileURL } from "node:url"
import * as IT from "../src/domain/IntervalTree.ts"
import { Driver } from "../src/stacks/Driver.ts"
import { Cpu } from "../src/services/Cpu.ts"
import { Gpu } from "../src/services/Gpu.ts"
import { GpuSvm } from "../src/services/GpuSvm.ts"
import { plainStorm } from "./plainModel.ts"
import { median, type Row, row } from "./stats.ts"

const KiB = 1024
const MiB = 1024 * KiB
const GiB = 1024 * MiB

const stack = (chunkSizes: ReadonlyArray<number>, policy: "never" | "always", vramBytes: number) =>
  Driver.simulated({
    machine: { vramBytes, devicePrivateOwner: "bench" },
    config: { name: "bench", chunkSizes },
    policy,
    driver: { checkPagesThreshold: 0 }
  })

/** First GPU touch of every chunk of a `bytes` buffer: µs per fault. */
const storm = (chunk: number, bytes: number, policy: "never" | "always") =>
  Effect.gen(function*() {
    const cpu = yield* Cpu
    const gpu = yield* Gpu
    const driver = yield* Driver
    const base = yield* cpu.mmap({ length: bytes, align: 2 * MiB })
    const t0 = performance.now()
    for (let off = 0; off < bytes; off += chunk) yield* gpu.access(base + off, 4, "read")
    const ms = performance.now() - t0
    const faults = (yield* driver.counters).faults
    return (ms * 1000) / faults
  }).pipe(Effect.provide(stack([chunk, 4096].filter((x, i, a) => a.indexOf(x) === i), policy, policy === "always" ? bytes + 64 * MiB : 0)))

/** munmap of 1 GiB covered by 512 bound 2 MiB ranges: total µs. */
const invalidation = Effect.gen(function*() {
  const cpu = yield* Cpu
  const gpu = yield* Gpu
  const svm = yield* GpuSvm
  const base = yield* cpu.mmap({ length: GiB, align: 2 * MiB })
  for (let off = 0; off < GiB; off += 2 * MiB) yield* gpu.access(base + off, 4, "read")
  const bound = (yield* svm.ranges()).length
  const t0 = performance.now()
  yield* cpu.munmap(base, GiB)
  return { us: (performance.now() - t0) * 1000, ranges: bound }
}).pipe(Effect.provide(stack([2 * MiB, 64 * KiB, 4096], "never", 0)))

/** 4 GPU fibers faulting through their quarter + 1 fiber munmapping and re-mmapping pieces, for `ms`. */
const concurrency = (ms: number) =>
  Effect.gen(function*() {
    const cpu = yield* Cpu
    const gpu = yield* Gpu
    const driver = yield* Driver
    const size = 64 * MiB
    const base = yield* cpu.mmap({ length: size, align: 2 * MiB })
    const deadline = performance.now() + ms
    let accesses = 0
    const gpuFiber = (q: number) =>
      Effect.gen(function*() {
        let i = 0
        while (performance.now() < deadline) {
          const off = q * (size / 4) + ((i++ * 64 * KiB) % (size / 4))
          yield* Effect.ignore(gpu.access(base + off, 4, "read"))
          accesses++
          if (i % 16 === 0) yield* Effect.yieldNow
        }
      })
    const cpuFiber = Effect.gen(function*() {
      let i = 0
      while (performance.now() < deadline) {
        const off = ((i++ * 2 * MiB) % size)
        yield* cpu.munmap(base + off, 2 * MiB)
        yield* cpu.mmap({ length: 2 * MiB, addr: base + off, fixed: true })
        yield* Effect.sleep("1 millis")
      }
    })
    const fibers = yield* Effect.forEach([gpuFiber(0), gpuFiber(1), gpuFiber(2), gpuFiber(3), cpuFiber], (e) => Effect.forkChild(e))
    yield* Effect.forEach(fibers, Fiber.join, { discard: true })
    const c = yield* driver.counters
    return { faultsPerS: c.faults / (ms / 1000), accessesPerS: accesses / (ms / 1000), retries: c.faultRetries }
  }).pipe(Effect.provide(stack([2 * MiB, 64 * KiB, 4096], "never", 0)))

/**
 * The price of the Effect structure: existing-range lookups through the service
 * (`rangeFindOrInsert` hit: mm ref, mmap lock, VMA lookup, notifier and range
 * tree lookups) beside a plain loop doing the same tree lookups and a page-table
 * probe on plain data.
 */
const overhead = Effect.gen(function*() {
  const cpu = yield* Cpu
  const svm = yield* GpuSvm
  const n = 10_000
  const base = yield* cpu.mmap({ length: n * 4096, align: 2 * MiB })
  for (let i = 0; i < n; i++) yield* svm.rangeFindOrInsert(base + i * 4096, 0, 2 ** 47)
  const L = 20_000
  const effectS: Array<number> = []
  for (let rep = 0; rep < 6; rep++) {
    const t0 = performance.now()
    for (let i = 0; i < L; i++) yield* svm.rangeFindOrInsert(base + ((i * 7919) % n) * 4096, 0, 2 ** 47)
    if (rep > 0) effectS.push(((performance.now() - t0) * 1e3) / L)
  }
  // the plain model: a notifier tree of one notifier holding n ranges, a VMA list and a page table
  let ranges = IT.empty<number>()
  for (let i = 0; i < n; i++) ranges = IT.insert(ranges, base + i * 4096, base + i * 4096 + 4095, i)
  const notifiers = IT.insert(IT.empty<typeof ranges>(), 0, 2 ** 47, ranges)
  const vmas = [{ start: base, end: base + n * 4096, write: true }]
  const pt = new Map<number, number>()
  for (let i = 0; i < n; i++) pt.set(base / 4096 + i, i)
  const plainS: Array<number> = []
  let sink = 0
  for (let rep = 0; rep < 6; rep++) {
    const t0 = performance.now()
    for (let i = 0; i < L; i++) {
      const addr = base + ((i * 7919) % n) * 4096
      const vma = vmas.find((v) => v.start <= addr && addr < v.end)
      const nt = IT.first(notifiers, addr, addr)
      const r = nt === undefined ? undefined : IT.first(nt.value, addr, addr)
      sink += (vma?.write ? 1 : 0) + (r?.value ?? 0) + (pt.get(Math.floor(addr / 4096)) ?? 0)
    }
    if (rep > 0) plainS.push(((performance.now() - t0) * 1e3) / L)
  }
  return { effectS, plainS, sink }
}).pipe(Effect.provide(stack([4096], "never", 0)))

/** Runs every driver benchmark. */
export async function benchDriver(): Promise<ReadonlyArray<Row>> {
  const rows: Array<Row> = []
  const xe: Record<number, string> = { [64 * KiB]: "Xe kernel: 14.7 µs/fault incl. migration", [2 * MiB]: "Xe kernel: 225 µs/fault incl. migration" }
  // issue #16 targets: gpusvm / plain model ≤ 3× at 4 KiB, ≤ 1.5× at 64 KiB, ≤ 1× at 2 MiB
  const target: Record<number, number> = { 4096: 3, [64 * KiB]: 1.5, [2 * MiB]: 1 }
  const xeLimit: Record<number, number> = { [64 * KiB]: 14.7, [2 * MiB]: 225 }
  for (const policy of ["never", "always"] as const) {
    for (const [chunk, bytes] of [[4096, 32 * MiB], [64 * KiB, 256 * MiB], [2 * MiB, GiB]] as const) {
      const samples: Array<number> = []
      for (let rep = 0; rep < 3; rep++) samples.push(await Effect.runPromise(storm(chunk, bytes, policy)))
      const r = row(`GPU first-touch fault, ${chunk / KiB} KiB chunks, policy ${policy}`, samples, "µs/fault", xe[chunk])
      const plainSamples: Array<number> = []
      const config = { chunkSizes: [chunk, 4096].filter((x, i, a) => a.indexOf(x) === i), notifierSize: 512 * MiB, migrate: policy === "always", vramBytes: policy === "always" ? bytes + 64 * MiB : 0 }
      for (let rep = 0; rep < 3; rep++) plainSamples.push(plainStorm(config, 2 * GiB, bytes, chunk).usPerFault)
      const p = row(`  … plain imperative model, same path`, plainSamples, "µs/fault", "bench/plainModel.ts")
      const ratio = r.value / p.value
      rows.push(
        r,
        { name: `  … faults/s`, value: 1e6 / r.value, unit: "faults/s" },
        p,
        { name: `  … gpusvm / plain model`, value: ratio, unit: "x", reference: `target ≤ ${target[chunk]}×: ${ratio <= target[chunk]! ? "met" : "not met"}` }
      )
      // issue #16: with migration, faster than the hardware path it models (Xe's CPU time per fault)
      const xeUs = xeLimit[chunk]
      if (policy === "always" && xeUs !== undefined) {
        rows.push({ name: `  … absolute, vs the Xe kernel's CPU time per fault`, value: r.value, unit: "µs/fault", reference: `target ≤ ${xeUs} µs: ${r.value <= xeUs ? "met" : "not met"}` })
      }
    }
  }
  const inv = await Effect.runPromise(invalidation)
  rows.push({ name: `munmap 1 GiB over ${inv.ranges} bound 2 MiB ranges`, value: inv.us, unit: "µs total" })
  rows.push({ name: "  … per range", value: inv.us / Math.max(inv.ranges, 1), unit: "µs/range" })
  const conc = await Effect.runPromise(concurrency(2000))
  rows.push({ name: "4 GPU fault fibers + 1 munmap fiber, 2 s: faults/s", value: conc.faultsPerS, unit: "faults/s" })
  rows.push({ name: "  … GPU accesses/s", value: conc.accessesPerS, unit: "accesses/s" })
  for (const [reason, n] of Object.entries(conc.retries)) rows.push({ name: `  … retries ${reason}`, value: n, unit: "count" })
  const o = await Effect.runPromise(overhead)
  rows.push(row("existing-range lookup through GpuSvm (Effect)", o.effectS, "µs/op"))
  rows.push(row("same lookups, plain imperative loop", o.plainS, "µs/op", "not used by the library"))
  // issue #16 target: the Effect structure price ≤ 2×
  const price = median(o.effectS) / median(o.plainS)
  rows.push({ name: "Effect structure price (ratio)", value: price, unit: "x", reference: `target ≤ 2×: ${price <= 2 ? "met" : "not met"}` })
  return rows
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  for (const r of await benchDriver()) console.log(`${r.name}: ${r.value.toFixed(2)} ${r.unit}${r.reference ? `  (${r.reference})` : ""}`)
}
