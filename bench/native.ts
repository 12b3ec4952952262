/**
 * Native machine benchmarks (issue 8): userfaultfd event latency from a
 * `munmap` in the target to the MMU notifier callback in Node (median, p99),
 * `hmm_range_fault` over 2 MiB, and a 2 MiB migration round trip (to device
 * memory, back on a CPU fault). Each row is skipped with a note when the host
 * lacks a capability. Times are wall clock (`performance.now`) on a real
 * process, so they are noisy on 2 cores: medians with min–max.
 */
import { Effect, Layer } from "effect"
import { Native } from "../src/layers/native/Native.ts"
import type { NotifierHandle } from "../src/domain/NotifierHandle.ts"
import { Cpu } from "../src/services/Cpu.ts"
import { DevicePagemap } from "../src/services/DevicePagemap.ts"
import { Hmm } from "../src/services/Hmm.ts"
import { MmuNotifier } from "../src/services/MmuNotifier.ts"
import { quantile, type Row, row } from "./stats.ts"

const KiB = 1024
const MiB = 1024 * KiB

/** munmap → invalidate callback, 64 KiB each time, `n` times. */
const eventLatency = (source: "cpu" | "uffd", n: number) =>
  Effect.gen(function*() {
    const cpu = yield* Cpu
    const mmu = yield* MmuNotifier
    const region = yield* cpu.mmap({ length: 64 * MiB, align: 2 * MiB })
    yield* cpu.munmap(region, 64 * MiB)
    let hit = 0
    const h: NotifierHandle = yield* mmu.insert(region, 64 * MiB, (_r, cur) =>
      Effect.as(Effect.andThen(mmu.setSeq(h, cur), Effect.sync(() => {
        hit = performance.now()
      })), true))
    const lat: Array<number> = []
    for (let i = 0; i < n; i++) {
      const at = region + (i % 512) * 64 * KiB
      yield* cpu.mmap({ length: 64 * KiB, addr: at })
      hit = 0
      const t0 = performance.now()
      yield* cpu.munmap(at, 64 * KiB)
      if (hit > 0) lat.push((hit - t0) * 1000)
    }
    return lat
  }).pipe(Effect.provide(Layer.fresh(Native.layer({ notifier: source }))))

const rangeFault2M = (n: number) =>
  Effect.gen(function*() {
    const cpu = yield* Cpu
    const mmu = yield* MmuNotifier
    const hmm = yield* Hmm
    const first: Array<number> = []
    const again: Array<number> = []
    for (let i = 0; i < n; i++) {
      const buf = yield* cpu.mmap({ length: 2 * MiB, align: 2 * MiB })
      const h = yield* mmu.insert(buf, 2 * MiB, () => Effect.succeed(true))
      const seq = yield* mmu.readBegin(h)
      const r = { notifier: h, notifierSeq: seq, start: buf, end: buf + 2 * MiB, fault: true, write: true }
      let t0 = performance.now()
      yield* hmm.rangeFault(r)
      first.push((performance.now() - t0) * 1000)
      t0 = performance.now()
      yield* hmm.rangeFault(r)
      again.push((performance.now() - t0) * 1000)
      yield* mmu.remove(h)
      yield* cpu.munmap(buf, 2 * MiB)
    }
    return { first, again }
  }).pipe(Effect.provide(Layer.fresh(Native.layer())))

const migration2M = (n: number) =>
  Effect.gen(function*() {
    const cpu = yield* Cpu
    const pm = yield* DevicePagemap
    const buf = yield* cpu.mmap({ length: 2 * MiB, align: 2 * MiB })
    yield* cpu.write(buf, new Uint8Array(2 * MiB).fill(7))
    const toDev: Array<number> = []
    const back: Array<number> = []
    const total: Array<number> = []
    for (let i = 0; i < n; i++) {
      const t0 = performance.now()
      yield* pm.populateMm(buf, buf + 2 * MiB)
      const t1 = performance.now()
      yield* cpu.read(buf, 4096)
      const t2 = performance.now()
      toDev.push(t1 - t0)
      back.push(t2 - t1)
      total.push(t2 - t0)
    }
    return { toDev, back, total }
  }).pipe(Effect.provide(Layer.fresh(Native.layer())))

/** Runs the native benchmarks (rows skipped with a note where the host cannot). */
export async function benchNative(): Promise<ReadonlyArray<Row>> {
  const caps = await Effect.runPromise(Native.probe)
  const missing = (["linux", "helperBuilt", "userfaultfd", "pfnVisible"] as const).filter((c) => !caps[c])
  if (missing.length > 0) {
    const note = `skipped: needs capability ${missing.join(", ")} (${missing.map((m) => caps.details[m]).join("; ")})`
    return [
      { name: `munmap → invalidate callback: ${note}`, value: 0, unit: "" },
      { name: `rangeFault 2 MiB: ${note}`, value: 0, unit: "" },
      { name: `migration round trip 2 MiB: ${note}`, value: 0, unit: "" }
    ]
  }
  const run = <A>(e: Effect.Effect<A, unknown>) => Effect.runPromise(Effect.scoped(e))
  const out: Array<Row> = []
  const uffd = await run(eventLatency("uffd", 1000))
  out.push(row("munmap 64 KiB → invalidate callback, via uffd UNMAP event (median)", uffd, "µs", "native-linux.md: munmap → Node 62–81 µs"))
  out.push({ name: "munmap 64 KiB → invalidate callback, via uffd UNMAP event (p99)", value: quantile(uffd, 0.99), unit: "µs", reference: "native-linux.md: p99 134–183 µs" })
  const cpu = await run(eventLatency("cpu", 1000))
  out.push(row("munmap 64 KiB → invalidate callback, raised by the Cpu before the command (median)", cpu, "µs", "no uffd round trip"))
  out.push({ name: "munmap 64 KiB → invalidate callback, raised by the Cpu (p99)", value: quantile(cpu, 0.99), unit: "µs" })
  const rf = await run(rangeFault2M(50))
  out.push(row("rangeFault 2 MiB, first touch (populate write + pagemap)", rf.first, "µs"))
  out.push(row("rangeFault 2 MiB, already populated", rf.again, "µs", "native-linux.md: pagemap pread of 512 entries 14–18 µs"))
  const mig = await run(migration2M(50))
  out.push(row("migration 2 MiB to device memory (WP, copy out via /proc/pid/mem, DONTNEED)", mig.toDev, "ms"))
  out.push(row("migration 2 MiB back on a CPU fault (UFFDIO_COPY, one chunk)", mig.back, "ms", "native-linux.md: chunk mode 1.8–2.5 ms"))
  out.push(row("migration round trip 2 MiB", mig.total, "ms"))
  return out
}
