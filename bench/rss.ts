/**
 * Peak RSS of a 1 GiB-buffer scenario with 256 MiB of VRAM (issue #16 target:
 * ≤ 1.2× the bytes actually written). Run as a child process so that the peak
 * it reads (`process.resourceUsage().maxRSS`) is the scenario's alone:
 * `node bench/rss.ts --child` mmaps 1 GiB on a fresh simulated stack (policy
 * `always`, 2 MiB chunks, 256 MiB VRAM), CPU-writes every other 2 MiB chunk
 * (512 MiB written), then GPU-reads every 2 MiB chunk once (first touch:
 * the first 256 MiB of ranges migrate to VRAM, the rest stay in system
 * memory), and prints its peak RSS, its RSS before the scenario, and the bytes
 * written as JSON. {@link benchRss} spawns it and turns that into rows.
 */
import { spawnSync } from "node:child_process"
import { existsSync } from "node:fs"
import { fileURLToPath } from "node:url"
import type { Row } from "./stats.ts"

const MiB = 1024 * 1024
const GiB = 1024 * MiB

interface ChildResult {
  readonly peakRss: number
  readonly baseRss: number
  readonly written: number
  readonly migrated: number
}

/**
 * Where the child loads the library from: the compiled `dist/` (what the `gpusvm` command runs; `npm run
 * bench` builds it first) when present, else the `.ts` sources (type stripping adds ~34 MiB of RSS).
 */
const from = (): "dist" | "src" => (existsSync(fileURLToPath(new URL("../dist/stacks/Driver.js", import.meta.url))) ? "dist" : "src")

const child = async (): Promise<ChildResult> => {
  const { Effect } = await import("effect")
  const dir = from()
  const ext = dir === "dist" ? "js" : "ts"
  const { Driver } = (await import(`../${dir}/stacks/Driver.${ext}`)) as typeof import("../src/stacks/Driver.ts")
  const { Cpu } = (await import(`../${dir}/services/Cpu.${ext}`)) as typeof import("../src/services/Cpu.ts")
  const { Gpu } = (await import(`../${dir}/services/Gpu.${ext}`)) as typeof import("../src/services/Gpu.ts")
  ;(globalThis as { gc?: () => void }).gc?.()
  const baseRss = process.memoryUsage().rss
  const scenario = Effect.gen(function*() {
    const cpu = yield* Cpu
    const gpu = yield* Gpu
    const driver = yield* Driver
    const base = yield* cpu.mmap({ length: GiB, align: 2 * MiB })
    const data = new Uint8Array(2 * MiB)
    for (let i = 0; i < data.length; i++) data[i] = (i * 7 + 3) % 251
    let written = 0
    for (let off = 0; off < GiB; off += 4 * MiB) {
      yield* cpu.write(base + off, data)
      written += data.length
    }
    for (let off = 0; off < GiB; off += 2 * MiB) yield* gpu.access(base + off, 4, "read")
    const c = yield* driver.counters
    return { written, migrated: c.bytesToVram }
  }).pipe(Effect.provide(Driver.simulated({
    machine: { vramBytes: 256 * MiB, devicePrivateOwner: "bench" },
    config: { name: "bench", chunkSizes: [2 * MiB, 64 * 1024, 4096] },
    policy: "always"
  })))
  const r = await Effect.runPromise(scenario)
  return { peakRss: process.resourceUsage().maxRSS * 1024, baseRss, ...r }
}

/** Spawns the child and reports its peak RSS against the bytes it wrote. */
export async function benchRss(): Promise<ReadonlyArray<Row>> {
  const self = fileURLToPath(import.meta.url)
  const out = spawnSync(process.execPath, ["--expose-gc", self, "--child"], { encoding: "utf8", maxBuffer: 1 << 20 })
  if (out.status !== 0) throw new Error(`bench/rss.ts child failed (${out.status}): ${out.stderr.slice(-500)}`)
  const r = JSON.parse(out.stdout.trim().split("\n").at(-1)!) as ChildResult
  const ratio = r.peakRss / r.written
  return [
    { name: "1 GiB buffer, 256 MiB VRAM: bytes written by the CPU", value: r.written / MiB, unit: "MiB" },
    { name: "  … bytes migrated to VRAM", value: r.migrated / MiB, unit: "MiB" },
    { name: "  … peak RSS of the process", value: r.peakRss / MiB, unit: "MiB", reference: `RSS before the scenario ${(r.baseRss / MiB).toFixed(0)} MiB; library loaded from ${from()}/` },
    { name: "  … peak RSS above the pre-scenario RSS / bytes written", value: (r.peakRss - r.baseRss) / r.written, unit: "x" },
    { name: "  … peak RSS / bytes written", value: ratio, unit: "x", reference: `target ≤ 1.2×: ${ratio <= 1.2 ? "met" : "not met"}` }
  ]
}

if (process.argv.includes("--child")) {
  console.log(JSON.stringify(await child()))
} else if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const r of await benchRss()) console.log(`${r.name}: ${r.value.toFixed(2)} ${r.unit}${r.reference ? `  (${r.reference})` : ""}`)
}
