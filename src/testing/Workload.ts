/**
 * Random workloads: small programs of `munmap`, re-`mmap`, `mprotect`,
 * `madvise(MADV_DONTNEED)` and CPU/GPU reads and writes over a few anonymous
 * private buffers, described by an effect `Schema` (so `Arbitrary.schema`
 * generates and shrinks them), and {@link runWorkload}, the interpreter that
 * runs one on the stack's `Cpu` and `Gpu` against a model of the memory.
 *
 * The model is what the process must see (kernel-semantics §6–§7: the GPU
 * mirrors the CPU's address space): bytes written by either side, zeros after
 * `MADV_DONTNEED` or a fresh `mmap`, accesses to unmapped pages or without the
 * permission failing. Every read is compared with the model; a difference, or
 * an access that should have succeeded failing (or the reverse), is a typed
 * `WorkloadDiverged` naming the op.
 *
 * The model is the ideal mirror. Where the kernel's default deviates from it,
 * run the driver with the documented option that follows it: an `mprotect`
 * that splits the VMA under an existing range makes later GPU faults there
 * fail with the kernel's default (kernel-semantics §11.3 item 4, Xe's
 * livelock, bounded here); `driver: { onSplitVma: "recreate" }` is the
 * behaviour the model assumes.
 *
 * @since 0.2.0
 */
import { Arbitrary, Effect, Schema } from "effect"
import { PAGE_SIZE } from "../domain/Address.ts"
import { fromName, type ProtName } from "../domain/Prot.ts"
import { Cpu } from "../services/Cpu.ts"
import { Gpu } from "../services/Gpu.ts"

const MAX_BUFFERS = 3
const MAX_PAGES = 32
const MAX_OPS = 40

const Int = (minimum: number, maximum: number) => Schema.Int.check(Schema.isBetween({ minimum, maximum }))
const Buffer = Int(0, MAX_BUFFERS - 1)
const Page = Int(0, MAX_PAGES - 1)
const Pages = Int(1, MAX_PAGES)
const Value = Int(0, 255)
const window = { buffer: Buffer, page: Page, pages: Pages }

/**
 * One op of a workload. `buffer` picks a buffer (modulo how many there are),
 * `page`/`pages` a window of it (clipped to its length); `value` seeds the
 * bytes written (`(value + i) mod 256` at offset `i`).
 *
 * - `Munmap`: `munmap(2)` of the window.
 * - `Remap`: `munmap` of the whole buffer, then `mmap(MAP_FIXED)` at the same address (fresh zeros; the
 *   GPU SVM collector must drop the old ranges, kernel-semantics §11.2).
 * - `Mprotect`: `mprotect(2)` of the window to `prot` (only issued when the window is all mapped).
 * - `Madvise`: `madvise(MADV_DONTNEED)` of the window (only issued when the window is all mapped).
 * - `CpuRead`/`CpuWrite`, `GpuRead`/`GpuWrite`: accesses of the window.
 *
 * @category models
 * @since 0.2.0
 */
export const WorkloadOp = Schema.Union([
  Schema.TaggedStruct("Munmap", window),
  Schema.TaggedStruct("Remap", { buffer: Buffer }),
  Schema.TaggedStruct("Mprotect", { ...window, prot: Schema.Literals(["none", "r", "rw"]) }),
  Schema.TaggedStruct("Madvise", window),
  Schema.TaggedStruct("CpuRead", window),
  Schema.TaggedStruct("CpuWrite", { ...window, value: Value }),
  Schema.TaggedStruct("GpuRead", window),
  Schema.TaggedStruct("GpuWrite", { ...window, value: Value })
])

/**
 * One op of a workload (see {@link WorkloadOp}).
 *
 * @category models
 * @since 0.2.0
 */
export type WorkloadOp = typeof WorkloadOp.Type

/**
 * A workload: the buffers (their sizes in pages, 1 to 32 each, 1 to 3
 * buffers; each starts mapped read+write, anonymous, private, zero, 64 KiB
 * aligned so 64 KiB ranges fit) and up to 40 ops run in
 * order.
 *
 * @category models
 * @since 0.2.0
 */
export const Workload = Schema.Struct({
  buffers: Schema.Array(Pages).check(Schema.isBetweenLength(1, MAX_BUFFERS)),
  ops: Schema.Array(WorkloadOp).check(Schema.isBetweenLength(0, MAX_OPS))
})

/**
 * A workload (see {@link Workload}).
 *
 * @category models
 * @since 0.2.0
 */
export type Workload = typeof Workload.Type

/**
 * Random workloads, derived from the {@link Workload} schema (shrinking drops
 * ops and shortens buffers). Use with `it.effect.prop`, `Arbitrary.checkEffect`
 * or `Arbitrary.sampleEffect`.
 *
 * @category arbitraries
 * @since 0.2.0
 */
export const arbitrary: Arbitrary.Arbitrary<Workload> = Arbitrary.schema(Workload)

/**
 * An op's outcome: it ran and did what the model said (`ok`), it failed as
 * the model said it must (`failed`: an access to an unmapped or protected
 * page), or it was not issued because the model cannot predict it (`skipped`:
 * a window only partly accessible, an `mprotect`/`madvise` over a hole).
 *
 * @category models
 * @since 0.2.0
 */
export type Outcome = "ok" | "failed" | "skipped"

/**
 * A window of memory: `[addr, addr + length)`.
 *
 * @category models
 * @since 0.2.0
 */
export interface Span {
  readonly addr: number
  readonly length: number
}

/**
 * Options of {@link runWorkload}: what the model assumes of the driver.
 *
 * @category options
 * @since 0.2.0
 */
export interface WorkloadOptions {
  /**
   * The driver runs with `readOnlyMirror` (kernel-semantics §11.3): GPU reads
   * of read-only CPU mappings succeed. Default false, as the driver's default
   * (a writable mirror: every GPU access of a read-only mapping faults).
   */
  readonly readOnlyMirror?: boolean
}

/**
 * What a workload run leaves: each buffer's span (its address and full
 * length), every op's outcome, and the spans both the CPU and the GPU can
 * read at the end (mapped, and read+write unless `readOnlyMirror`, §11.3):
 * what `assertCoherent` can compare.
 *
 * @category models
 * @since 0.2.0
 */
export interface WorkloadRun {
  readonly buffers: ReadonlyArray<Span>
  readonly outcomes: ReadonlyArray<Outcome>
  readonly readable: ReadonlyArray<Span>
}

/**
 * A workload run that disagreed with the model at op `step`: a read returned
 * other bytes, or an op succeeded or failed against the model's prediction.
 *
 * @category errors
 * @since 0.2.0
 */
export class WorkloadDiverged extends Schema.TaggedError<WorkloadDiverged>()("WorkloadDiverged", {
  step: Schema.Number,
  op: Schema.String,
  detail: Schema.String
}) {
  override get message(): string {
    return `workload op ${this.step} ${this.op}: ${this.detail}`
  }
}

/** The model of one page: mapped or not, its protection and its bytes. */
interface PageModel {
  mapped: boolean
  prot: ProtName
  bytes: Uint8Array
}

const freshPage = (): PageModel => ({ mapped: true, prot: "rw", bytes: new Uint8Array(PAGE_SIZE) })

const patternOf = (value: number, length: number): Uint8Array => {
  const b = new Uint8Array(length)
  for (let i = 0; i < length; i++) b[i] = (value + i) & 0xff
  return b
}

const can = (p: PageModel, write: boolean): boolean => p.mapped && p.prot !== "none" && (!write || p.prot === "rw")

/**
 * Can the GPU access `p`? kernel-semantics §11.3: with a writable mirror (Xe's
 * default) every GPU fault is a write fault, so a GPU read of a read-only CPU
 * mapping fails too (`EPERM`); with `readOnlyMirror` reads need only read.
 */
const gpuCan = (p: PageModel, write: boolean, readOnlyMirror: boolean): boolean => can(p, write || !readOnlyMirror)

/**
 * The model's prediction for an access of `pages`: all pages accessible
 * (`ok`), the first one not (`failed`: the access faults before touching
 * anything), or a mix (`skipped`).
 */
const predict = (pages: ReadonlyArray<PageModel>, ok: (p: PageModel) => boolean): Outcome =>
  pages.every(ok) ? "ok" : !ok(pages[0]!) ? "failed" : "skipped"

const firstDifference = (got: Uint8Array, want: Uint8Array): number => {
  if (got.length !== want.length) return Math.min(got.length, want.length)
  for (let i = 0; i < got.length; i++) if (got[i] !== want[i]) return i
  return -1
}

const readableSpans = (
  buffers: ReadonlyArray<Span>,
  model: ReadonlyArray<ReadonlyArray<PageModel>>,
  readOnlyMirror: boolean
): Array<Span> => {
  const spans: Array<Span> = []
  model.forEach((pages, b) => {
    let start = -1
    for (let i = 0; i <= pages.length; i++) {
      const ok = i < pages.length && gpuCan(pages[i]!, false, readOnlyMirror)
      if (ok && start < 0) start = i
      if (!ok && start >= 0) {
        spans.push({ addr: buffers[b]!.addr + start * PAGE_SIZE, length: (i - start) * PAGE_SIZE })
        start = -1
      }
    }
  })
  return spans
}

/**
 * Runs `workload` on the stack's `Cpu` and `Gpu`: maps its buffers, then runs
 * each op, comparing every read with the model and every outcome with the
 * model's prediction. Succeeds with the {@link WorkloadRun} (for
 * `assertCoherent` over `run.readable`); fails with `WorkloadDiverged` at the
 * first disagreement, or with the `mmap` error if the buffers cannot be mapped.
 * The process is left running (call `assertNoLeaks` to tear down and check).
 *
 * @category interpreters
 * @since 0.2.0
 */
export const runWorkload = (
  workload: Workload,
  options: WorkloadOptions = {}
): Effect.Effect<WorkloadRun, WorkloadDiverged, Cpu | Gpu> =>
  Effect.gen(function*() {
    const rom = options.readOnlyMirror ?? false
    const cpuRead = (p: PageModel) => can(p, false)
    const cpuWrite = (p: PageModel) => can(p, true)
    const gpuRead = (p: PageModel) => gpuCan(p, false, rom)
    const gpuWrite = (p: PageModel) => gpuCan(p, true, rom)
    const cpu = yield* Cpu
    const gpu = yield* Gpu
    const buffers: Array<Span> = []
    for (let b = 0; b < workload.buffers.length; b++) {
      const length = workload.buffers[b]! * PAGE_SIZE
      const addr = yield* cpu.mmap({ length, align: 64 * 1024 }).pipe(
        Effect.mapError((e) => new WorkloadDiverged({ step: -1, op: `mmap buffer ${b}`, detail: e.message }))
      )
      buffers.push({ addr, length })
    }
    const model = workload.buffers.map((n) => Array.from({ length: n }, freshPage))
    const outcomes: Array<Outcome> = []

    for (let step = 0; step < workload.ops.length; step++) {
      const op = workload.ops[step]!
      const diverged = (detail: string) => new WorkloadDiverged({ step, op: JSON.stringify(op), detail })
      const b = op.buffer % buffers.length
      const buf = buffers[b]!
      const pagesOf = model[b]!
      const first = "page" in op ? op.page % pagesOf.length : 0
      const count = "pages" in op ? Math.min(op.pages, pagesOf.length - first) : pagesOf.length
      const win = pagesOf.slice(first, first + count)
      const addr = buf.addr + first * PAGE_SIZE
      const length = count * PAGE_SIZE
      // An op whose outcome must match `expect`; `run` yields the bytes read (reads) or nothing.
      const access = (expect: Outcome, run: Effect.Effect<Uint8Array | void, unknown>, want?: Uint8Array) =>
        Effect.gen(function*() {
          if (expect === "skipped") return "skipped" as const
          const r = yield* Effect.result(run)
          if (r._tag === "Failure") {
            if (expect === "ok") {
              return yield* diverged(`failed but the model says it succeeds: ${String((r.failure as Error).message ?? r.failure)}`)
            }
            return "failed" as const
          }
          if (expect === "failed") return yield* diverged("succeeded but the model says it faults")
          if (want !== undefined && r.success instanceof Uint8Array) {
            const at = firstDifference(r.success, want)
            if (at >= 0) {
              return yield* diverged(`byte at ${addr + at} is ${r.success[at]}, the model says ${want[at]}`)
            }
          }
          return "ok" as const
        })
      const modelBytes = () => {
        const out = new Uint8Array(length)
        win.forEach((p, i) => out.set(p.bytes, i * PAGE_SIZE))
        return out
      }
      const store = (bytes: Uint8Array) => win.forEach((p, i) => p.bytes.set(bytes.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE)))

      switch (op._tag) {
        case "Munmap": {
          yield* cpu.munmap(addr, length).pipe(Effect.mapError((e) => diverged(e.message)))
          for (const p of win) p.mapped = false
          outcomes.push("ok")
          break
        }
        case "Remap": {
          yield* cpu.munmap(buf.addr, buf.length).pipe(Effect.mapError((e) => diverged(e.message)))
          yield* cpu.mmap({ length: buf.length, addr: buf.addr, fixed: true }).pipe(Effect.mapError((e) => diverged(e.message)))
          model[b] = pagesOf.map(freshPage)
          outcomes.push("ok")
          break
        }
        case "Mprotect":
        case "Madvise": {
          if (!win.every((p) => p.mapped)) {
            outcomes.push("skipped")
            break
          }
          if (op._tag === "Mprotect") {
            yield* cpu.mprotect(addr, length, fromName(op.prot)).pipe(Effect.mapError((e) => diverged(e.message)))
            for (const p of win) p.prot = op.prot
          } else {
            yield* cpu.madviseDontNeed(addr, length).pipe(Effect.mapError((e) => diverged(e.message)))
            for (const p of win) p.bytes.fill(0)
          }
          outcomes.push("ok")
          break
        }
        case "CpuRead": {
          outcomes.push(yield* access(predict(win, cpuRead), cpu.read(addr, length), modelBytes()))
          break
        }
        case "GpuRead": {
          outcomes.push(yield* access(predict(win, gpuRead), gpu.access(addr, length, "read"), modelBytes()))
          break
        }
        case "CpuWrite":
        case "GpuWrite": {
          const bytes = patternOf(op.value, length)
          const expect = predict(win, op._tag === "CpuWrite" ? cpuWrite : gpuWrite)
          const run = op._tag === "CpuWrite" ? cpu.write(addr, bytes) : gpu.access(addr, length, "write", bytes)
          const outcome = yield* access(expect, run)
          if (outcome === "ok") store(bytes)
          outcomes.push(outcome)
          break
        }
      }
    }
    return { buffers, outcomes, readable: readableSpans(buffers, model, rom) }
  })
