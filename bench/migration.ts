/**
 * Benchmark of device-memory migration on the simulated machine
 * (`src/layers/simulated/SimPagemap.ts`): `populateMm` of a chunk (to VRAM)
 * followed by a CPU touch of its first byte (`migrate_to_ram`, back to RAM),
 * over a 64 MiB buffer whose pages all hold data, in 64 KiB and 2 MiB chunks.
 * Throughput counts the bytes moved both ways (2 × 64 MiB per round), in MB/s
 * (10^6 bytes/s), median of the rounds, with min–max.
 *
 * The limit beside it: the raw copy bandwidth of this machine in the same run
 * — `Uint8Array.prototype.set` of the same bytes, page by page (4 KiB, the
 * simulator's page size), both ways between two 64 MiB buffers — and the
 * ratio migration / raw.
 *
 * Run directly (`npx node bench/migration.ts`) to print a table;
 * `bench/run.ts` can import {@link benchMigration}.
 */
import { Context, Effect } from "effect"
import { MachineState } from "../src/layers/simulated/MachineState.ts"
import { contextOf } from "../src/layers/simulated/Simulated.ts"
import { Cpu } from "../src/services/Cpu.ts"
import { DevicePagemap } from "../src/services/DevicePagemap.ts"
import { median, type Row } from "./stats.ts"

const MiB = 1024 * 1024
const KiB = 1024
const PAGE = 4096
const BUFFER = 64 * MiB
const ROUNDS = 7

const mbps = (bytes: number, ms: number) => bytes / 1e6 / (ms / 1000)

/** MB/s of populate + CPU touch of every `chunk` of a 64 MiB buffer, per round. */
const benchChunk = async (chunk: number): Promise<Array<number>> => {
  const st = new MachineState({ vramBytes: 256 * MiB })
  const ctx = contextOf(st)
  const run = <A, E>(e: Effect.Effect<A, E, Cpu | DevicePagemap>) => Effect.runPromise(Effect.provideContext(e, ctx as Context.Context<Cpu | DevicePagemap>))
  const buf = await run(Effect.gen(function*() {
    const cpu = yield* Cpu
    const a = yield* cpu.mmap({ length: BUFFER, align: 2 * MiB })
    const data = new Uint8Array(2 * MiB)
    for (let i = 0; i < data.length; i++) data[i] = (i * 7 + 3) % 251
    for (let off = 0; off < BUFFER; off += data.length) yield* cpu.write(a + off, data)
    return a
  }))
  const round = Effect.gen(function*() {
    const cpu = yield* Cpu
    const pm = yield* DevicePagemap
    for (let off = 0; off < BUFFER; off += chunk) {
      yield* pm.populateMm(buf + off, buf + off + chunk)
      yield* cpu.read(buf + off, 1)
    }
  })
  await run(round) // warm-up
  const out: Array<number> = []
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = performance.now()
    await run(round)
    out.push(mbps(2 * BUFFER, performance.now() - t0))
  }
  const check = await run(Effect.gen(function*() {
    const pm = yield* DevicePagemap
    const cpu = yield* Cpu
    const bytes = yield* cpu.read(buf + BUFFER - 1, 1)
    return { usage: yield* pm.usage, traffic: yield* pm.traffic, last: bytes[0]! }
  }))
  if (check.usage.usedBytes !== 0) throw new Error("VRAM not released after the rounds")
  if (check.traffic.bytesToVram !== (ROUNDS + 1) * BUFFER) throw new Error(`unexpected traffic ${check.traffic.bytesToVram}`)
  if (check.last !== ((2 * MiB - 1) * 7 + 3) % 251) throw new Error("bytes changed by the migrations")
  return out
}

/** MB/s of `Uint8Array.set` of the same bytes, page by page, both ways, per round. */
const benchRaw = (): Array<number> => {
  const a = new Uint8Array(BUFFER)
  const b = new Uint8Array(BUFFER)
  for (let i = 0; i < BUFFER; i += 4096) a[i] = i % 251
  const once = () => {
    for (let off = 0; off < BUFFER; off += PAGE) b.set(a.subarray(off, off + PAGE), off)
    for (let off = 0; off < BUFFER; off += PAGE) a.set(b.subarray(off, off + PAGE), off)
  }
  once()
  const out: Array<number> = []
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = performance.now()
    once()
    out.push(mbps(2 * BUFFER, performance.now() - t0))
  }
  return out
}

/** Runs the migration benchmark (well under 30 s). */
export async function benchMigration(): Promise<ReadonlyArray<Row>> {
  const raw = benchRaw()
  const rawMed = median(raw)
  const rows: Array<Row> = [{
    name: "raw copy: Uint8Array.set, 4 KiB pages, both ways",
    value: rawMed,
    unit: "MB/s",
    min: Math.min(...raw),
    max: Math.max(...raw),
    reference: "limit"
  }]
  for (const chunk of [64 * KiB, 2 * MiB]) {
    const xs = await benchChunk(chunk)
    const m = median(xs)
    const label = chunk >= MiB ? `${chunk / MiB} MiB` : `${chunk / KiB} KiB`
    rows.push({
      name: `populate_mm + CPU touch (migrate_to_ram), ${label} chunks`,
      value: m,
      unit: "MB/s",
      min: Math.min(...xs),
      max: Math.max(...xs),
      reference: `raw copy ${rawMed.toFixed(0)} MB/s`
    })
    // issue #16 targets: ≥ 0.6× raw copy at 64 KiB chunks, ≥ 0.8× at 2 MiB (1 = copy-bound)
    const target = chunk >= MiB ? 0.8 : 0.6
    const ratio = m / rawMed
    rows.push({ name: `ratio migration / raw copy, ${label} chunks`, value: ratio, unit: "x", reference: `target ≥ ${target}×: ${ratio >= target ? "met" : "not met"}` })
  }
  return rows
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const t0 = Date.now()
  const rows = await benchMigration()
  console.log("| row | value | unit | min–max | reference |")
  console.log("|---|---:|---|---|---|")
  for (const r of rows) {
    const f = (n: number | undefined) => (n === undefined ? "" : n >= 100 ? n.toFixed(0) : n.toFixed(3))
    console.log(`| ${r.name} | ${f(r.value)} | ${r.unit} | ${r.min === undefined ? "" : `${f(r.min)}–${f(r.max)}`} | ${r.reference ?? ""} |`)
  }
  console.error(`bench/migration.ts: ${((Date.now() - t0) / 1000).toFixed(1)} s`)
}
