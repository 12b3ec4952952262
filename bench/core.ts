/**
 * Benchmarks of the GpuSvm core on the simulated machine (system memory, no
 * migration): the fault path (`rangeFindOrInsert` + `rangeGetPages`) per range
 * size, the lookup of an existing range with 10^3 and 10^6 ranges live, and one
 * notifier-lock acquire/release (ours vs `TxReentrantLock`).
 *
 * Run directly: `node bench/core.ts`.
 */
import { Effect, Layer, TxReentrantLock } from "effect"
import { pathToFileURL } from "node:url"
import { Simulated } from "../src/layers/simulated/Simulated.ts"
import { Cpu } from "../src/services/Cpu.ts"
import { GpuSvm } from "../src/services/GpuSvm.ts"
import * as Lock from "../src/services/gpusvm/NotifierLock.ts"

/** One result row. */
export interface CoreRow {
  readonly name: string
  readonly value: number
  readonly unit: string
  readonly min?: number
  readonly max?: number
  readonly reference?: string
}

const MiB = 1024 * 1024
const noopOps = { invalidate: () => Effect.void }

const machine = (chunkSizes: ReadonlyArray<number>) =>
  GpuSvm.layer({ name: "bench", chunkSizes, devicePrivateOwner: "bench" }, noopOps).pipe(
    Layer.provideMerge(Simulated.layer({}))
  )

const median = (xs: Array<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]!
}

/** µs per fault (find_or_insert + get_pages) for ranges of `size`, over `count` fresh ranges, `reps` times. */
const faultPath = (size: number, count: number, reps: number) =>
  Effect.gen(function*() {
    const samples: Array<number> = []
    for (let rep = 0; rep < reps + 1; rep++) {
      const us = yield* Effect.gen(function*() {
        const cpu = yield* Cpu
        const svm = yield* GpuSvm
        const base = yield* cpu.mmap({ length: size * count, align: 2 * MiB })
        const t0 = performance.now()
        for (let i = 0; i < count; i++) {
          const r = yield* svm.rangeFindOrInsert(base + i * size, 0, 2 ** 47)
          yield* svm.rangeGetPages(r)
        }
        return ((performance.now() - t0) * 1000) / count
      }).pipe(Effect.provide(machine([size, 4096].filter((x, i, a) => a.indexOf(x) === i))))
      if (rep > 0) samples.push(us)
    }
    return samples
  })

/** ns per lookup of an existing range (find_or_insert hit) with `n` 4 KiB ranges live. */
const lookup = (n: number, lookups: number) =>
  Effect.gen(function*() {
    const cpu = yield* Cpu
    const svm = yield* GpuSvm
    const base = yield* cpu.mmap({ length: n * 4096, align: 2 * MiB })
    for (let i = 0; i < n; i++) yield* svm.rangeFindOrInsert(base + i * 4096, 0, 2 ** 47)
    const samples: Array<number> = []
    let x = 12345
    for (let rep = 0; rep < 6; rep++) {
      const t0 = performance.now()
      for (let i = 0; i < lookups; i++) {
        x = (Math.imul(x, 1103515245) + 12345) >>> 0
        yield* svm.rangeFindOrInsert(base + (x % n) * 4096, 0, 2 ** 47)
      }
      if (rep > 0) samples.push(((performance.now() - t0) * 1e3) / lookups)
    }
    return samples
  }).pipe(Effect.provide(machine([4096])))

const lockCost = Effect.gen(function*() {
  const ours = yield* Lock.make
  const reentrant = yield* TxReentrantLock.make()
  const N = 20_000
  const time = (e: Effect.Effect<void>) =>
    Effect.gen(function*() {
      const samples: Array<number> = []
      for (let rep = 0; rep < 6; rep++) {
        const t0 = performance.now()
        for (let i = 0; i < N; i++) yield* e
        if (rep > 0) samples.push(((performance.now() - t0) * 1e6) / N)
      }
      return samples
    })
  return {
    read: yield* time(Lock.withRead(ours, Effect.void)),
    write: yield* time(Lock.withWrite(ours, Effect.void)),
    reentrantRead: yield* time(TxReentrantLock.withReadLock(reentrant, Effect.void)),
    reentrantWrite: yield* time(TxReentrantLock.withWriteLock(reentrant, Effect.void))
  }
})

const row = (name: string, samples: Array<number>, unit: string, reference?: string): CoreRow => ({
  name,
  value: median(samples),
  unit,
  min: Math.min(...samples),
  max: Math.max(...samples),
  ...(reference === undefined ? {} : { reference })
})

/** Runs every core benchmark. */
export async function benchCore(): Promise<ReadonlyArray<CoreRow>> {
  const rows: Array<CoreRow> = []
  const refs: Record<number, string> = { [64 * 1024]: "Xe kernel 14.7 µs/fault incl. migration", [2 * MiB]: "Xe kernel 225 µs/fault incl. migration" }
  for (const [size, count] of [[4096, 2000], [64 * 1024, 1000], [2 * MiB, 100]] as const) {
    const samples = await Effect.runPromise(faultPath(size, count, 5))
    rows.push(row(`fault path find_or_insert+get_pages ${size / 1024} KiB`, samples, "µs/fault", refs[size]))
  }
  const small = await Effect.runPromise(lookup(1_000, 20_000))
  rows.push(row("lookup existing range, 10^3 live", small, "µs/op"))
  const big = await Effect.runPromise(lookup(1_000_000, 20_000))
  rows.push(row("lookup existing range, 10^6 live", big, "µs/op"))
  rows.push({ name: "lookup ratio 10^6/10^3", value: median(big) / median(small), unit: "x", reference: "O(log n)" })
  const locks = await Effect.runPromise(lockCost)
  rows.push(row("notifier lock read acquire+release (TxRef counter)", locks.read, "ns"))
  rows.push(row("notifier lock write acquire+release (TxRef counter)", locks.write, "ns"))
  rows.push(row("TxReentrantLock read acquire+release", locks.reentrantRead, "ns", "the lock it replaces"))
  rows.push(row("TxReentrantLock write acquire+release", locks.reentrantWrite, "ns", "the lock it replaces"))
  return rows
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  for (const r of await benchCore()) console.log(`${r.name}: ${r.value.toFixed(2)} ${r.unit}`)
}
