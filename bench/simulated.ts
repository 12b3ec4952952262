/**
 * Benchmarks of the simulated machine (`src/layers/simulated`):
 * - `Hmm.rangeFault` over 2 MiB of present pages: 512 × 4 KiB mappings, and
 *   one 2 MiB THP (µs per call, fault + write asked, steady state);
 * - `Cpu.write` of 1 GiB in 2 MiB pieces from one reused buffer, into a fresh
 *   1 GiB mapping (first touch: frames and page contents are created) and
 *   again over the same mapping (overwrite), in MB/s;
 * - memory held by a 64 GiB mapping with 16 MiB written: process RSS delta
 *   after a full GC.
 *
 * Run directly (`npx node bench/simulated.ts`) to print a table; `bench/run.ts`
 * imports {@link benchSimulated}.
 */
import { Effect, Layer } from "effect"
import v8 from "node:v8"
import vm from "node:vm"
import { MachineState } from "../src/layers/simulated/MachineState.ts"
import { contextOf } from "../src/layers/simulated/Simulated.ts"
import { Cpu } from "../src/services/Cpu.ts"
import { Hmm } from "../src/services/Hmm.ts"
import { MmuNotifier } from "../src/services/MmuNotifier.ts"
import { median, type Row } from "./stats.ts"

const MiB = 1024 * 1024
const GiB = 1024 * MiB

const gc: () => void = (() => {
  const g = (globalThis as { gc?: () => void }).gc
  if (g !== undefined) return g
  try {
    v8.setFlagsFromString("--expose_gc")
    return vm.runInNewContext("gc") as () => void
  } catch {
    return () => {}
  }
})()

/** Runs `e` against a fresh machine. */
const onMachine = <A, E>(e: Effect.Effect<A, E, Cpu | Hmm | MmuNotifier>, thp: boolean): Promise<A> => {
  const st = new MachineState({ thp })
  return Effect.runPromise(Effect.provide(e, Layer.succeedContext(contextOf(st))))
}

/** µs per `rangeFault` over 2 MiB of present pages (rounds of `iters` calls). */
const benchRangeFault = (thp: boolean, rounds: number, iters: number) =>
  onMachine(Effect.gen(function*() {
    const cpu = yield* Cpu
    const hmm = yield* Hmm
    const mn = yield* MmuNotifier
    const a = yield* cpu.mmap({ length: 2 * MiB, align: 2 * MiB })
    const h = yield* mn.insert(a, 2 * MiB, () => Effect.succeed(true))
    const r = { notifier: h, notifierSeq: yield* mn.readBegin(h), start: a, end: a + 2 * MiB, fault: true, write: true }
    const first = yield* hmm.rangeFault(r)
    if (first.length !== 512 || first[0]!.order !== (thp ? 9 : 0)) throw new Error("unexpected rangeFault result")
    for (let i = 0; i < iters; i++) yield* hmm.rangeFault(r) // warm-up
    const per: Array<number> = []
    for (let k = 0; k < rounds; k++) {
      const t0 = performance.now()
      for (let i = 0; i < iters; i++) yield* hmm.rangeFault(r)
      per.push(((performance.now() - t0) * 1000) / iters)
    }
    return per
  }), thp)

/** MB/s of `Cpu.write` of `total` bytes in 2 MiB pieces over a `region`-byte mapping, first touch and overwrite. */
const benchWrite = (total: number, region: number) =>
  onMachine(Effect.gen(function*() {
    const cpu = yield* Cpu
    const a = yield* cpu.mmap({ length: region, align: 2 * MiB })
    const buf = new Uint8Array(2 * MiB)
    for (let i = 0; i < buf.length; i++) buf[i] = i % 251
    const pass = Effect.fnUntraced(function*() {
      const t0 = performance.now()
      for (let done = 0; done < total; done += buf.length) yield* cpu.write(a + (done % region), buf)
      return total / MiB / ((performance.now() - t0) / 1000)
    })
    const firstTouch = yield* pass()
    const overwrite = yield* pass()
    return { firstTouch, overwrite }
  }), true)

/** RSS growth (MiB) of a machine with a 64 GiB mapping and 16 MiB written in 2 MiB pieces spread over it. */
const keep: Array<MachineState> = []
const benchSparse = async (): Promise<number> => {
  gc()
  const before = process.memoryUsage().rss
  const st = new MachineState({ thp: true })
  keep.push(st) // kept alive so later runs cannot reuse its memory
  await Effect.runPromise(Effect.provide(
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const a = yield* cpu.mmap({ length: 64 * GiB, align: 2 * MiB })
      const buf = new Uint8Array(2 * MiB).fill(7)
      for (let i = 0; i < 8; i++) yield* cpu.write(a + i * 8 * GiB, buf)
    }),
    Layer.succeedContext(contextOf(st))
  ))
  gc()
  const after = process.memoryUsage().rss
  if (st.frames.bytesHeld !== 16 * MiB) throw new Error(`unexpected bytesHeld ${st.frames.bytesHeld}`)
  return (after - before) / MiB
}

/** Runs every simulated-machine benchmark. */
export async function benchSimulated(): Promise<ReadonlyArray<Row>> {
  const rows: Array<Row> = []
  const sparse: Array<number> = []
  for (let i = 0; i < 3; i++) sparse.push(await benchSparse())
  keep.length = 0
  rows.push({
    name: "RSS of a 64 GiB mapping with 16 MiB written",
    value: median(sparse),
    unit: "MiB",
    min: Math.min(...sparse),
    max: Math.max(...sparse)
  })
  for (const thp of [false, true]) {
    const per = await benchRangeFault(thp, 9, thp ? 400 : 400)
    rows.push({
      name: `Hmm.rangeFault 2 MiB (${thp ? "one 2 MiB THP" : "512 x 4 KiB pages"}), present, fault+write`,
      value: median(per),
      unit: "us/call",
      min: Math.min(...per),
      max: Math.max(...per)
    })
  }
  const w = await benchWrite(GiB, GiB)
  rows.push({ name: "Cpu.write 1 GiB in 2 MiB pieces (first touch)", value: w.firstTouch, unit: "MB/s" })
  rows.push({ name: "Cpu.write 1 GiB in 2 MiB pieces (overwrite)", value: w.overwrite, unit: "MB/s" })
  return rows
}

const isMain = import.meta.url === `file://${process.argv[1]}`
if (isMain) {
  const t0 = Date.now()
  const rows = await benchSimulated()
  const f = (n: number | undefined) => (n === undefined ? "" : n >= 100 ? n.toFixed(0) : n.toFixed(2))
  console.log("| benchmark | value | unit | min | max |\n|---|---:|---|---:|---:|")
  for (const r of rows) console.log(`| ${r.name} | ${f(r.value)} | ${r.unit} | ${f(r.min)} | ${f(r.max)} |`)
  console.log(`(${((Date.now() - t0) / 1000).toFixed(1)} s)`)
}
