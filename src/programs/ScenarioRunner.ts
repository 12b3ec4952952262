/**
 * `ScenarioRunner`: runs a decoded scenario (scenarios.md) on a machine the
 * caller supplies, checks every expectation and the invariants of design.md
 * §8, and returns the `--json` result object. Written only against service
 * interfaces: the CLI (or a test) passes a `MachineFactory` that builds the
 * machine's layer from the scenario's `machine` block.
 *
 * Threads run concurrently (one fiber each), meet at named barriers, and
 * interleave as the machine's seeded schedule decides. A failed expectation is
 * recorded and the thread goes on; an unexpected typed error (or defect) is
 * recorded and ends that thread. The run never fails: every problem is a
 * `failure` (an unmet expectation) or a `violation` (an invariant breach).
 *
 * After the threads: the live ranges and notifiers are captured for the
 * result, the tree-integrity invariant is checked, then the process exits (if
 * it has not) and GPU SVM is torn down (`fini`), and the no-leak invariant is
 * checked: no notifier, DMA mapping or device allocation may remain.
 *
 * @since 0.1.0
 */
import { Clock, Deferred, Effect, Exit, Layer, Option } from "effect"
import { asActor, Interleaving } from "../services/Interleaving.ts"
import { hex } from "../domain/Address.ts"
import type { KernelProfile } from "../domain/GpuSvmConfig.ts"
import type { Injection } from "../services/Machine.ts"
import type { Scenario, Step } from "../domain/Scenario.ts"
import { expectedBytes, patternByte, stepPath } from "../domain/Scenario.ts"
import type { ResultFailure, ResultViolation, ScenarioResult } from "../domain/ScenarioResult.ts"
import { Cpu } from "../services/Cpu.ts"
import { DevicePagemaps } from "../services/DevicePagemap.ts"
import type { Dma } from "../services/Dma.ts"
import { Gpu } from "../services/Gpu.ts"
import { GpuSvm } from "../services/GpuSvm.ts"
import type { Hmm } from "../services/Hmm.ts"
import { Machine } from "../services/Machine.ts"
import { Mm } from "../services/Mm.ts"
import type { MmuNotifier } from "../services/MmuNotifier.ts"
import { Driver } from "./Driver.ts"
import * as MigrationPolicy from "./MigrationPolicy.ts"
import * as Prot from "../domain/Prot.ts"

/** What the runner needs of a machine. */
export type ScenarioMachine = Cpu | Mm | MmuNotifier | Hmm | Dma | Machine | Gpu | DevicePagemaps

/** The machine settings a factory receives (from the scenario, with the CLI's `--seed` applied). */
export interface MachineRequest {
  /** VRAM per pagemap (0 = no device memory). */
  readonly vramBytes: number
  /** Seed of the thread interleaving, if any. */
  readonly seed: number | undefined
  /** Initial fault injections. */
  readonly inject: Injection
  /** The device-private owner the GPU SVM instance uses (the pagemap must carry it). */
  readonly devicePrivateOwner: string
}

/** Builds a fresh machine for one scenario run. */
export type MachineFactory = (spec: MachineRequest) => Layer.Layer<ScenarioMachine>

/** Options of a run. */
export interface RunOptions {
  /** Overrides the scenario's schedule seed. */
  readonly seed?: number
  /** Default VRAM per pagemap when the scenario gives none (default 256 MiB). */
  readonly defaultVramBytes?: number
  /** Wall-clock bound on the whole run (default 60 s): past it, a `bounded-work` violation. */
  readonly timeoutMs?: number
  /** The kernel profile (kernel-semantics §11.16); overrides the scenario's `svm.kernel` (default "7.0"). */
  readonly kernel?: KernelProfile
}

/** The device-private owner scenarios run with. */
export const OWNER = "gpusvm-scenario"

interface Buffer {
  readonly addr: number
  readonly length: number
}

/** A named barrier shared by the threads that use it (cyclic: it resets after each release). */
interface Barrier {
  readonly parties: number
  arrived: number
  gate: Deferred.Deferred<void, BarrierDeadlock>
}

const describeError = (e: unknown): { readonly tag: string; readonly text: string; readonly causeTag?: string } => {
  if (typeof e === "object" && e !== null && "_tag" in e) {
    const tag = String((e as { _tag: unknown })._tag)
    const text = e instanceof Error ? e.message : tag
    const causeTag = (e as { causeTag?: unknown }).causeTag
    return typeof causeTag === "string" ? { tag, text, causeTag } : { tag, text }
  }
  return { tag: "Unknown", text: String(e) }
}

const firstDifference = (got: Uint8Array, want: Uint8Array): number => {
  for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) return i
  return -1
}

const protOf = (p: "rw" | "r" | "rwx" | "none" | undefined) => Prot.fromName(p ?? "rw")

/** The simulated file a `kind: "file"` buffer maps: one file per buffer name (a stable hash of the name). */
const fileSeedOf = (name: string): number => {
  let h = 17
  for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) % 1_000_003
  return h
}

/**
 * Runs one scenario to a result. Never fails; a run that cannot even build its
 * machine reports that as a violation.
 */
export const run = (scenario: Scenario, factory: MachineFactory, options: RunOptions = {}): Effect.Effect<ScenarioResult> =>
  Effect.gen(function*() {
    // Under the explorer (a controlled Interleaving) time is virtual, threads are
    // actors named t0, t1, … and deadlocks are the scheduler's to find, so the
    // wall-clock timeout is off and the duration is virtual time (replays match
    // byte for byte).
    const il = yield* Interleaving
    const now = il.controlled ? Clock.currentTimeMillis : Effect.sync(() => performance.now())
    const started = yield* now
    const failures: Array<ResultFailure> = []
    const violations: Array<ResultViolation> = []
    const svmSpec = scenario.svm ?? {}
    const spec: MachineRequest = {
      vramBytes: scenario.machine?.vramBytes ?? options.defaultVramBytes ?? 256 * 1024 * 1024,
      seed: options.seed ?? scenario.machine?.schedule?.seed,
      inject: scenario.machine?.inject ?? {},
      devicePrivateOwner: OWNER
    }
    const config = {
      name: scenario.name,
      devicePrivateOwner: OWNER,
      ...(svmSpec.chunkSizes === undefined ? {} : { chunkSizes: svmSpec.chunkSizes }),
      ...(svmSpec.notifierSize === undefined ? {} : { notifierSize: svmSpec.notifierSize }),
      ...(svmSpec.hmmTimeoutMs === undefined ? {} : { hmmTimeoutMs: svmSpec.hmmTimeoutMs }),
      ...((options.kernel ?? svmSpec.kernel) === undefined ? {} : { kernel: options.kernel ?? svmSpec.kernel })
    }
    const driverOptions = {
      ...(svmSpec.gpuvaStart === undefined ? {} : { gpuvaStart: svmSpec.gpuvaStart }),
      ...(svmSpec.gpuvaEnd === undefined ? {} : { gpuvaEnd: svmSpec.gpuvaEnd }),
      ...(svmSpec.checkPagesThreshold === undefined ? {} : { checkPagesThreshold: svmSpec.checkPagesThreshold }),
      ...(svmSpec.readOnlyMirror === undefined ? {} : { readOnlyMirror: svmSpec.readOnlyMirror }),
      ...(svmSpec.onSplitVma === undefined ? {} : { onSplitVma: svmSpec.onSplitVma })
    }
    const machine = factory(spec)
    const stack = Driver.layer(config, driverOptions).pipe(
      // the policy reads the machine's pagemaps, so it is built over the (same, memoised) machine
      Layer.provideMerge(Layer.mergeAll(machine, MigrationPolicy.fromName(scenario.policy.migrate).pipe(Layer.provide(machine))))
    )
    const body = Effect.gen(function*() {
      const cpu = yield* Cpu
      const gpu = yield* Gpu
      const svm = yield* GpuSvm
      const driver = yield* Driver
      const mach = yield* Machine
      const pagemaps = (yield* DevicePagemaps).all
      const buffers = new Map<string, Buffer>()
      let exited = false

      const usages = new Map<string, number>()
      for (const t of scenario.threads) {
        const names = new Set(t.steps.flatMap((s) => (s.op === "barrier" ? [s.name] : [])))
        for (const n of names) usages.set(n, (usages.get(n) ?? 0) + 1)
      }
      const barriers = new Map<string, Barrier>()
      for (const [name, parties] of usages) barriers.set(name, { parties, arrived: 0, gate: yield* Deferred.make<void, BarrierDeadlock>() })
      // Deadlock detection (design.md §8, bounded work): threads block only at
      // barriers, so when every thread still running waits at one, none can ever
      // arrive. The waits are failed with BarrierDeadlock and reported at once
      // (violation `deadlock`), instead of waiting for the timeout.
      let running = scenario.threads.length
      const waitingAt = new Map<string, string>()
      let deadlocked = false
      const checkDeadlock = Effect.suspend(() => {
        if (deadlocked || waitingAt.size === 0 || waitingAt.size < running) return Effect.void
        deadlocked = true
        violations.push({
          invariant: "deadlock",
          detail: `every running thread waits at a barrier no other thread can reach: ${[...waitingAt].map(([w, n]) => `${w} at barrier ${n}`).join("; ")}`
        })
        return Effect.forEach(barriers.values(), (b) => Deferred.fail(b.gate, new BarrierDeadlock()), { discard: true })
      })

      const window = (buf: string, offset: number | undefined, length: number | undefined) => {
        const b = buffers.get(buf)
        if (b === undefined) return undefined
        const off = offset ?? 0
        return { addr: b.addr + off, offset: off, length: length ?? Math.max(b.length - off, 0) }
      }

      /** Runs one step; a typed failure is returned as the error (the caller records it). */
      const exec = (step: Step | Exclude<Step, { op: "expect-error" }>, where: string): Effect.Effect<void, unknown> => {
        switch (step.op) {
          case "mmap":
            return Effect.map(
              cpu.mmap({
                length: step.length,
                ...(step.addr === undefined ? {} : { addr: step.addr }),
                ...(step.fixed === undefined ? {} : { fixed: step.fixed }),
                ...(step.align === undefined ? {} : { align: step.align }),
                ...(step.kind === undefined ? {} : { kind: step.kind }),
                ...(step.shared === undefined ? {} : { shared: step.shared }),
                prot: protOf(step.prot),
                ...(step.kind === "file" ? { fileSeed: fileSeedOf(step.as) } : {})
              }),
              (addr) => {
                buffers.set(step.as, { addr, length: step.length })
              }
            )
          case "munmap":
          case "madvise-dontneed":
          case "mprotect": {
            const w = window(step.buf, step.offset, step.length)
            if (w === undefined) return Effect.fail(unknownBuffer(step.buf))
            if (step.op === "munmap") return cpu.munmap(w.addr, w.length)
            if (step.op === "madvise-dontneed") return cpu.madviseDontNeed(w.addr, w.length)
            return cpu.mprotect(w.addr, w.length, protOf(step.prot))
          }
          case "mremap": {
            const b = buffers.get(step.buf)
            if (b === undefined) return Effect.fail(unknownBuffer(step.buf))
            return Effect.map(
              cpu.mremap(b.addr, b.length, step.newLength, step.dontUnmap === true ? { dontUnmap: true } : {}),
              (addr) => {
                buffers.set(step.as ?? step.buf, { addr, length: step.newLength })
              }
            )
          }
          case "cpu-write":
          case "gpu-write": {
            const w = window(step.buf, step.offset, step.length)
            if (w === undefined) return Effect.fail(unknownBuffer(step.buf))
            const bytes = new Uint8Array(w.length)
            for (let i = 0; i < w.length; i++) bytes[i] = patternByte(step.pattern, w.offset + i)
            return step.op === "cpu-write" ? cpu.write(w.addr, bytes) : Effect.asVoid(gpu.access(w.addr, w.length, "write", bytes))
          }
          case "cpu-read":
          case "gpu-read": {
            const w = window(step.buf, step.offset, step.length)
            if (w === undefined) return Effect.fail(unknownBuffer(step.buf))
            const read: Effect.Effect<Uint8Array | void, unknown> = step.op === "cpu-read" ? cpu.read(w.addr, w.length) : gpu.access(w.addr, w.length, "read")
            return Effect.map(read, (got) => {
              const want = expectedBytes(step.expect, w.length, w.offset)
              const bytes = got instanceof Uint8Array ? got : new Uint8Array(0)
              const at = bytes.length < want.length ? bytes.length : firstDifference(bytes, want)
              if (at >= 0) {
                failures.push({
                  step: where,
                  detail: `${step.op} of ${step.buf}: byte at offset ${w.offset + at} (${hex(w.addr + at)}) is ${bytes[at] ?? "missing"}, expected ${want[at]}`
                })
              }
            })
          }
          case "gpu-atomic-inc": {
            const w = window(step.buf, step.offset, 4)
            if (w === undefined) return Effect.fail(unknownBuffer(step.buf))
            return Effect.asVoid(gpu.access(w.addr, 4, "atomic"))
          }
          case "gpu-fault": {
            const w = window(step.buf, step.offset, 1)
            if (w === undefined) return Effect.fail(unknownBuffer(step.buf))
            return driver.handleFault({ addr: w.addr, write: step.write ?? false, atomic: false })
          }
          case "prefetch": {
            const w = window(step.buf, step.offset, step.length)
            if (w === undefined) return Effect.fail(unknownBuffer(step.buf))
            return driver.prefetch(w.addr, w.addr + w.length, { to: step.to })
          }
          case "evict-all":
            return Effect.forEach(pagemaps, (p) => p.evictAll, { discard: true })
          case "expect-ranges":
            return Effect.map(svm.ranges(), (live) => {
              const got = live.map((r) => [r.start, r.end] as const)
              const want = step.ranges
              const same = got.length === want.length && got.every(([s, e], i) => s === want[i]![0] && e === want[i]![1])
              if (!same) {
                const show = (xs: ReadonlyArray<readonly [number, number]>) => xs.map(([s, e]) => `[${hex(s)}, ${hex(e)})`).join(" ")
                failures.push({ step: where, detail: `live ranges ${show(got) || "(none)"}, expected ${show(want) || "(none)"}` })
              }
            })
          case "barrier": {
            const b = barriers.get(step.name)!
            return Effect.suspend(() => {
              if (deadlocked) return Effect.void
              const gate = b.gate
              b.arrived++
              if (b.arrived < b.parties) {
                waitingAt.set(where, step.name)
                const wait = Effect.ensuring(Deferred.await(gate), Effect.sync(() => waitingAt.delete(where)))
                return Effect.andThen(checkDeadlock, il.blocking(`barrier ${step.name} at ${where}`, wait))
              }
              b.arrived = 0
              // its waiters are released now, not when they next run: the deadlock
              // check must not count them as waiting any longer
              for (const [w, n] of waitingAt) if (n === step.name) waitingAt.delete(w)
              return Effect.flatMap(Deferred.make<void, BarrierDeadlock>(), (next) => {
                b.gate = next
                return Deferred.succeed(gate, undefined)
              })
            })
          }
          case "exit":
            return Effect.andThen(cpu.exit, Effect.andThen(svm.fini, Effect.sync(() => {
              exited = true
            })))
          case "expect-error": {
            const inner = step.step
            return Effect.flatMap(Effect.exit(exec(inner, `${where}.step`)), (exit) => {
              if (Exit.isSuccess(exit)) {
                failures.push({ step: where, detail: `expected error ${step.tag}, but ${inner.op} succeeded` })
                return Effect.void
              }
              const reason = exit.cause.reasons[0]
              const err = reason !== undefined && reason._tag === "Fail" ? describeError(reason.error) : { tag: "Defect", text: String(exit.cause) }
              if (err.tag !== step.tag && err.causeTag !== step.tag) {
                failures.push({ step: where, detail: `expected error ${step.tag}, got ${err.tag}: ${err.text}` })
              }
              return Effect.void
            })
          }
        }
      }

      // No yield point of its own at a thread's start: a thread runs, when forked,
      // up to its first service call (whose yield point the explorer controls) or
      // its first barrier; a point here would only add schedules that differ in
      // when a thread reached a barrier nobody else had reached yet.
      const thread = (steps: ReadonlyArray<Step>, t: number) =>
        Effect.ensuring(threadSteps(steps, t), Effect.andThen(Effect.sync(() => running--), checkDeadlock))
      const threadSteps = (steps: ReadonlyArray<Step>, t: number) =>
        Effect.gen(function*() {
          for (let i = 0; i < steps.length; i++) {
            const where = stepPath(scenario, t, i)
            if (il.controlled) yield* il.note(`${where} ${steps[i]!.op}`)
            const exit = yield* Effect.exit(exec(steps[i]!, where))
            if (Exit.isFailure(exit)) {
              const reason = exit.cause.reasons[0]
              const err = reason !== undefined && reason._tag === "Fail" ? describeError(reason.error) : { tag: "Defect", text: String(exit.cause) }
              failures.push({ step: where, detail: `${steps[i]!.op} failed: ${err.text}` })
              // a thread that stops must not leave others waiting at its barriers
              for (let j = i + 1; j < steps.length; j++) {
                const s = steps[j]!
                if (s.op === "barrier") yield* exec(s, where).pipe(Effect.ignore)
              }
              return
            }
          }
        })

      const timeout = options.timeoutMs ?? 60_000
      const threads = Effect.forEach(scenario.threads, (t, i) => asActor(thread(t.steps, i), `t${i}`), { concurrency: "unbounded", discard: true })
      const finished = il.controlled ? yield* Effect.asSome(threads) : yield* threads.pipe(Effect.timeoutOption(timeout))
      if (Option.isNone(finished)) {
        violations.push({ invariant: "bounded-work", detail: `the threads did not finish within ${timeout} ms` })
      }

      // Snapshot for the result, before teardown.
      const ranges = yield* svm.ranges()
      const notifiers = yield* svm.notifiers
      const stats = yield* mach.stats
      const counters = yield* driver.counters
      const svmStats = yield* svm.stats
      const usage = yield* Effect.forEach(pagemaps, (p) => p.usage)
      const traffic = yield* Effect.forEach(pagemaps, (p) => p.traffic)

      // Invariant 4: tree integrity.
      const sizes = new Set(svm.config.chunkSizes)
      for (let i = 0; i < ranges.length; i++) {
        const r = ranges[i]!
        if (i > 0 && ranges[i - 1]!.end > r.start) violations.push({ invariant: "tree-integrity", detail: `ranges overlap at ${hex(r.start)}` })
        if (!sizes.has(r.end - r.start)) violations.push({ invariant: "tree-integrity", detail: `range [${hex(r.start)}, ${hex(r.end)}) is not a configured chunk size` })
        const n = notifiers.find((x) => x.start <= r.start && r.end <= x.end)
        if (n === undefined) violations.push({ invariant: "tree-integrity", detail: `range [${hex(r.start)}, ${hex(r.end)}) lies in no notifier` })
      }
      for (let i = 1; i < notifiers.length; i++) {
        if (notifiers[i - 1]!.end > notifiers[i]!.start) violations.push({ invariant: "tree-integrity", detail: `notifiers overlap at ${hex(notifiers[i]!.start)}` })
      }

      // Teardown, then invariant 3: no leaks.
      if (!exited) {
        yield* cpu.exit
        yield* svm.fini
      }
      const after = yield* mach.stats
      if ((yield* svm.notifiers).length > 0 || after.notifiersLive > 0) {
        violations.push({ invariant: "no-leaks", detail: `${after.notifiersLive} MMU notifiers left after exit` })
      }
      if ((yield* svm.ranges()).length > 0) violations.push({ invariant: "no-leaks", detail: "ranges left after fini" })
      // kernel-semantics §11.16: every mmget_not_zero must have had its mmput by now (the 6.17 range_evict leak).
      const mmRefs = yield* (yield* Mm).references
      if (mmRefs > 0) violations.push({ invariant: "mm-ref-leak", detail: `${mmRefs} mm references (mmget_not_zero without mmput) left after teardown` })
      // kernel-semantics §11.16: the 6.17 get_pages restart loop spent its work budget.
      const livelocks = (yield* svm.stats).livelocks
      if (livelocks > 0) {
        violations.push({ invariant: "livelock", detail: `${livelocks} get_pages calls restarted without bound (kernel ${svm.config.kernel}) until the work budget was spent` })
      }
      if (after.dmaMappingsLive > 0) violations.push({ invariant: "no-leaks", detail: `${after.dmaMappingsLive} DMA mappings left after exit` })
      for (const p of pagemaps) {
        const u = yield* p.usage
        if (u.usedBytes > 0 || u.allocations > 0) {
          violations.push({ invariant: "no-leaks", detail: `pagemap ${p.id}: ${u.usedBytes} bytes in ${u.allocations} device allocations left after exit` })
        }
      }
      // Invariants 1–2 as the machine saw them (IOMMU faults, stale device access, bad unmaps).
      for (const v of yield* mach.violations) violations.push({ invariant: v.invariant, detail: v.detail })

      const sum = (xs: ReadonlyArray<number>) => xs.reduce((a, b) => a + b, 0)
      return {
        scenario: scenario.name,
        ok: violations.length === 0 && failures.length === 0,
        violations,
        failures,
        metrics: {
          faults: counters.faults,
          faultRetries: { ...counters.faultRetries },
          rangesCreated: svmStats.rangesCreated,
          rangesRemoved: svmStats.rangesRemoved,
          notifiersCreated: svmStats.notifiersCreated,
          notifiersRemoved: svmStats.notifiersRemoved,
          invalidations: { unmap: 0, clear: 0, migrate: 0, ...stats.invalidations },
          bytesToVram: sum(traffic.map((t) => t.bytesToVram)),
          bytesToRam: sum(traffic.map((t) => t.bytesToRam)),
          evictions: sum(traffic.map((t) => t.evictions)) + counters.evictions,
          gcRuns: counters.gcRuns,
          dmaMappingsLive: stats.dmaMappingsLive,
          deviceBytesLive: sum(usage.map((u) => u.usedBytes))
        },
        ranges: ranges.map((r) => ({ start: r.start, end: r.end, flags: { ...r.flags } })),
        notifiers: notifiers.map((n) => ({ start: n.start, end: n.end })),
        durationMs: Math.round(((yield* now) - started) * 1000) / 1000
      } satisfies ScenarioResult
    })
    const result = yield* Effect.exit(Effect.scoped(Effect.provide(body, stack)))
    if (Exit.isSuccess(result)) return result.value
    return incompleteResult(
      scenario.name,
      [{ invariant: "runner", detail: `the run could not complete: ${String(result.cause)}` }],
      failures,
      Math.round(((yield* now) - started) * 1000) / 1000
    )
  })

/**
 * The result of a run that did not get to its snapshot (the machine could not
 * be built, the explorer ended it): not ok, the given violations and failures,
 * zero metrics, no ranges.
 */
export const incompleteResult = (
  name: string,
  violations: ReadonlyArray<ResultViolation>,
  failures: ReadonlyArray<ResultFailure>,
  durationMs: number
): ScenarioResult => ({
  scenario: name,
  ok: false,
  violations: [...violations],
  failures: [...failures],
  metrics: {
    faults: 0,
    faultRetries: { EAGAIN: 0, EBUSY: 0, EOPNOTSUPP: 0, EFAULT: 0, EPERM: 0 },
    rangesCreated: 0,
    rangesRemoved: 0,
    notifiersCreated: 0,
    notifiersRemoved: 0,
    invalidations: { unmap: 0, clear: 0, migrate: 0 },
    bytesToVram: 0,
    bytesToRam: 0,
    evictions: 0,
    gcRuns: 0,
    dmaMappingsLive: 0,
    deviceBytesLive: 0
  },
  ranges: [],
  notifiers: [],
  durationMs
})

const unknownBuffer = (name: string) => ({ _tag: "UnknownBuffer", message: `unknown buffer "${name}"` })

/** The error a barrier wait ends with when the runner found the threads deadlocked. */
class BarrierDeadlock {
  readonly _tag = "BarrierDeadlock"
  readonly message = "deadlock: no other thread can reach this barrier"
}
