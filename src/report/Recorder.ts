/**
 * The run recorder (issue #19): turns one scenario run into its event log
 * (`domain/RunEvent.ts`) without touching the driver's hot paths.
 *
 * - A recording `Tracer` (effect's `Tracer` interface): installing any tracer
 *   turns the driver's cold-boundary spans on (`programs/Spans.ts`); each span
 *   that ends becomes an event — `gpusvm.fault` → `fault`, `gpusvm.invalidate`
 *   → `invalidation`, `gpusvm.migrate` → `migration`, `gpusvm.gc` → `gc`,
 *   `gpusvm.get_pages` → `get-pages`, `gpusvm.bind` (when it bound) → `bind`,
 *   `gpusvm.step.<op>` → `op`. The actor is read from the fiber that starts the
 *   span (`Interleaving.ActorName`: `t0`, `t1`, …, `gc-worker`).
 * - A wrapper of the run's `StackFactory` ({@link Recorder.factory}): it
 *   installs the tracer for the stack's own fibers (the GC worker), records
 *   the CPU side's mapping calls (`Cpu.mmap`, `munmap`, `mremap`, `mprotect`,
 *   `exit`) as VMA events, and keeps the `GpuSvm` and device pagemaps so that,
 *   after each span, it can take a snapshot — only through effects that are
 *   `Effect.sync` reads (`GpuSvm.ranges`, `notifiers`, `DevicePagemap.usage`,
 *   `traffic`, the simulated `Machine.stats`), never a service call with a yield point, so the
 *   recorded run interleaves exactly as an unrecorded one — and derive range
 *   created/removed/state, notifier, eviction, kernel page-move and counter
 *   sample events by difference.
 * - {@link Recorder.finish}: the result's violations and failures.
 *
 * @since 0.3.0
 */
import { Cause, Clock, Context, Effect, Exit, Fiber, Layer, Tracer } from "effect"
import * as Prot from "../domain/Prot.ts"
import type { Range } from "../domain/Range.ts"
import type { RunEvent, RunEventBody } from "../domain/RunEvent.ts"
import type { ScenarioResult } from "../domain/ScenarioResult.ts"
import type { StackFactory } from "../programs/ScenarioRunner.ts"
import { Cpu } from "../services/Cpu.ts"
import { type DevicePagemapApi, DevicePagemaps } from "../services/DevicePagemap.ts"
import { GpuSvm, type GpuSvmApi } from "../services/GpuSvm.ts"
import { ActorName } from "../services/Interleaving.ts"
import { Machine } from "../services/Machine.ts"

/** An address attribute (`hex` string or number) as a number. */
/** The fault span's `gpusvm.retries.<errno>` attributes as the event's `why`. */
const whyOf = (a: ReadonlyMap<string, unknown>): { why?: Record<string, number> } => {
  const why: Record<string, number> = {}
  for (const [k, v] of a) if (k.startsWith("gpusvm.retries.") && typeof v === "number") why[k.slice("gpusvm.retries.".length)] = v
  return Object.keys(why).length === 0 ? {} : { why }
}

const num = (v: unknown): number => (typeof v === "number" ? v : typeof v === "string" ? Number(v) : 0)

/** The residency of a range (for the address-space map). */
const stateOf = (r: Range): "system" | "vram" | "unmapped" =>
  r.flags.hasDevmemPages ? "vram" : r.flags.hasDmaMapping ? "system" : "unmapped"

/** The name of a failure's tag (a typed error's `_tag`), for `error` fields. */
const errorName = (exit: Exit.Exit<unknown, unknown>): string | undefined => {
  if (Exit.isSuccess(exit)) return undefined
  if (Cause.hasInterruptsOnly(exit.cause)) return "Interrupted"
  const e = Cause.squash(exit.cause)
  return typeof e === "object" && e !== null && "_tag" in e ? String((e as { _tag: unknown })._tag) : String(e)
}

/**
 * A run's recorder: the tracer, the factory wrapper, and the events so far.
 *
 * @category models
 * @since 0.3.0
 */
export interface Recorder {
  /** The recording tracer. */
  readonly tracer: Tracer.Tracer
  /** Wraps a stack factory so that its stack is observed (tracer installed, CPU mappings recorded, snapshots taken). */
  readonly factory: (f: StackFactory) => StackFactory
  /** Records the result's verdict (violations, failures) and returns every event, in `seq` order. */
  readonly finish: (result: ScenarioResult) => ReadonlyArray<RunEvent>
  /** The events recorded so far, in `seq` order. */
  readonly events: () => ReadonlyArray<RunEvent>
}

/** A span that becomes an event when it ends. */
class RecordingSpan extends Tracer.NativeSpan {
  readonly seq: number
  readonly actor: string
  readonly onEnd: (span: RecordingSpan, endTime: bigint, exit: Exit.Exit<unknown, unknown>) => void
  readonly onStep: ((actor: string, step: string) => void) | undefined
  constructor(
    options: ConstructorParameters<typeof Tracer.NativeSpan>[0],
    seq: number,
    actor: string,
    onEnd: (span: RecordingSpan, endTime: bigint, exit: Exit.Exit<unknown, unknown>) => void,
    onStep: ((actor: string, step: string) => void) | undefined
  ) {
    super(options)
    this.seq = seq
    this.actor = actor
    this.onEnd = onEnd
    this.onStep = onStep
  }
  override attribute(key: string, value: unknown): void {
    super.attribute(key, value)
    // a step span's path is set right after the tracer made it: the actor's current step from now on
    if (key === "step" && typeof value === "string" && this.onStep !== undefined) this.onStep(this.actor, value)
  }
  override end(endTime: bigint, exit: Exit.Exit<unknown, unknown>): void {
    if (this.status._tag === "Ended") return
    super.end(endTime, exit)
    this.onEnd(this, endTime, exit)
  }
}

/**
 * A fresh recorder for one run.
 *
 * @category constructors
 * @since 0.3.0
 */
export const make = (): Recorder => {
  const events: Array<RunEvent> = []
  const realStart = performance.now()
  let seq = 0
  let clockStart: bigint | undefined
  let lastAtMs = 0
  const stepOf = new Map<string, string>()

  let svm: GpuSvmApi | undefined
  let pagemaps: ReadonlyArray<DevicePagemapApi> = []
  let machine: Machine["Service"] | undefined
  const liveRanges = new Map<number, { start: number; end: number; state: string }>()
  const liveNotifiers = new Set<string>()
  let last = { vramUsed: 0, dmaLive: 0, bytesToVram: 0, bytesToRam: 0, evictions: 0 }
  // driver-migrated bytes since the last snapshot (the rest of the traffic is the kernel's own page moves)
  let migratedToVram = 0
  let migratedToRam = 0

  const atMsOf = (t: bigint): number => {
    clockStart ??= t
    return Math.max(0, Number(t - clockStart) / 1e6)
  }
  const currentActor = (): string => Fiber.getCurrent()?.getRef(ActorName) ?? "main"
  const nowAtMs = (): number => {
    const f = Fiber.getCurrent()
    if (f === undefined) return lastAtMs
    return atMsOf(f.getRef(Clock.Clock).currentTimeNanosUnsafe())
  }

  const push = (body: RunEventBody, at: { seq?: number; atMs?: number; actor?: string } = {}): void => {
    const actor = at.actor ?? body.actor ?? currentActor()
    const atMs = at.atMs ?? nowAtMs()
    lastAtMs = Math.max(lastAtMs, atMs)
    const step = stepOf.get(actor)
    events.push({
      ...(step === undefined ? {} : { step }),
      ...body,
      seq: at.seq ?? seq++,
      actor,
      atMs: Math.round(atMs * 1000) / 1000,
      realMs: Math.round((performance.now() - realStart) * 1000) / 1000
    } as RunEvent)
  }

  /** Ranges, notifiers and counters by difference with the last snapshot (sync reads only). */
  const snapshot = (actor: string, atMs: number): void => {
    if (svm === undefined) return
    const s = svm
    const read = Effect.runSyncExit(
      Effect.all({
        ranges: s.ranges(),
        notifiers: s.notifiers,
        usage: Effect.forEach(pagemaps, (p) => p.usage),
        traffic: Effect.forEach(pagemaps, (p) => p.traffic),
        stats: machine === undefined ? Effect.succeed(undefined) : machine.stats
      })
    )
    if (Exit.isFailure(read)) return
    const { ranges, notifiers, usage, traffic, stats } = read.value
    const seen = new Set<number>()
    for (const r of ranges) {
      seen.add(r.id)
      const st = stateOf(r)
      const was = liveRanges.get(r.id)
      if (was === undefined) {
        push({ kind: "range-created", id: r.id, start: r.start, end: r.end, notifierStart: r.notifierStart }, { actor, atMs })
        liveRanges.set(r.id, { start: r.start, end: r.end, state: st })
        if (st !== "unmapped") push({ kind: "range-state", id: r.id, start: r.start, end: r.end, state: st }, { actor, atMs })
      } else if (was.state !== st) {
        was.state = st
        push({ kind: "range-state", id: r.id, start: r.start, end: r.end, state: st }, { actor, atMs })
      }
    }
    for (const [id, r] of liveRanges) {
      if (!seen.has(id)) {
        liveRanges.delete(id)
        push({ kind: "range-removed", id, start: r.start, end: r.end, notifierStart: r.start }, { actor, atMs })
      }
    }
    const nseen = new Set<string>()
    for (const n of notifiers) {
      const key = `${n.start}-${n.end}`
      nseen.add(key)
      if (!liveNotifiers.has(key)) {
        liveNotifiers.add(key)
        push({ kind: "notifier-created", start: n.start, end: n.end }, { actor, atMs })
      }
    }
    for (const key of liveNotifiers) {
      if (!nseen.has(key)) {
        liveNotifiers.delete(key)
        const [a, b] = key.split("-")
        push({ kind: "notifier-removed", start: Number(a), end: Number(b) }, { actor, atMs })
      }
    }
    let vramUsed = 0
    for (const u of usage) vramUsed += u.usedBytes
    const dmaLive = stats?.dmaMappingsLive ?? 0
    let bytesToVram = 0
    let bytesToRam = 0
    let evictions = 0
    for (const t of traffic) {
      bytesToVram += t.bytesToVram
      bytesToRam += t.bytesToRam
      evictions += t.evictions
    }
    if (evictions > last.evictions) {
      push({ kind: "eviction", count: evictions - last.evictions, bytes: Math.max(0, bytesToRam - last.bytesToRam) }, { actor, atMs })
    }
    const kernelToRam = bytesToRam - last.bytesToRam - migratedToRam
    const kernelToVram = bytesToVram - last.bytesToVram - migratedToVram
    if (kernelToRam > 0 && evictions === last.evictions) push({ kind: "page-move", direction: "to_ram", bytes: kernelToRam }, { actor, atMs })
    if (kernelToVram > 0) push({ kind: "page-move", direction: "to_vram", bytes: kernelToVram }, { actor, atMs })
    migratedToRam = 0
    migratedToVram = 0
    if (vramUsed !== last.vramUsed || dmaLive !== last.dmaLive || bytesToVram !== last.bytesToVram || bytesToRam !== last.bytesToRam) {
      push({ kind: "sample", vramUsed, dmaLive, bytesToVram, bytesToRam }, { actor, atMs })
    }
    last = { vramUsed, dmaLive, bytesToVram, bytesToRam, evictions }
  }

  const onEnd = (span: RecordingSpan, endTime: bigint, exit: Exit.Exit<unknown, unknown>): void => {
    const a = span.attributes
    const name = span.name
    const at = { seq: span.seq, atMs: atMsOf(span.startTime), actor: span.actor }
    const durMs = Math.round((Number(endTime - span.startTime) / 1e6) * 1000) / 1000
    const error = errorName(exit)
    const err = error === undefined ? {} : { error }
    if (name === "gpusvm.fault") {
      const addr = num(a.get("gpusvm.addr"))
      snapshot(span.actor, atMsOf(endTime))
      let range: { start: number; end: number } | undefined
      for (const r of liveRanges.values()) if (r.start <= addr && addr < r.end) range = { start: r.start, end: r.end }
      push({
        kind: "fault",
        addr,
        write: a.get("gpusvm.write") === true,
        atomic: a.get("gpusvm.atomic") === true,
        retries: num(a.get("gpusvm.retries")),
        ...whyOf(a),
        ...(range === undefined ? {} : { range }),
        ...err,
        durMs
      }, at)
      return
    }
    if (name === "gpusvm.invalidate") {
      push({
        kind: "invalidation",
        event: String(a.get("gpusvm.event") ?? ""),
        start: num(a.get("gpusvm.start")),
        end: num(a.get("gpusvm.end")),
        notifier: String(a.get("gpusvm.notifier") ?? ""),
        ...(typeof a.get("gpusvm.owner") === "string" ? { owner: a.get("gpusvm.owner") as string } : {}),
        durMs
      }, at)
      snapshot(span.actor, atMsOf(endTime))
      return
    }
    if (name === "gpusvm.migrate") {
      const direction = a.get("gpusvm.direction") === "to_ram" ? "to_ram" : "to_vram"
      const bytes = num(a.get("gpusvm.bytes"))
      if (Exit.isSuccess(exit)) {
        if (direction === "to_ram") migratedToRam += bytes
        else migratedToVram += bytes
      }
      push({ kind: "migration", direction, start: num(a.get("gpusvm.start")), end: num(a.get("gpusvm.end")), bytes, durMs }, at)
      snapshot(span.actor, atMsOf(endTime))
      return
    }
    if (name === "gpusvm.get_pages") {
      push({ kind: "get-pages", start: num(a.get("gpusvm.start")), end: num(a.get("gpusvm.end")), ...err }, at)
      return
    }
    if (name === "gpusvm.bind") {
      if (a.get("gpusvm.bound") === true) push({ kind: "bind", start: num(a.get("gpusvm.start")), end: num(a.get("gpusvm.end")) }, at)
      return
    }
    if (name === "gpusvm.gc") {
      push({ kind: "gc", ranges: num(a.get("gpusvm.ranges")), durMs }, at)
      snapshot(span.actor, atMsOf(endTime))
      return
    }
    if (name.startsWith("gpusvm.step.")) {
      const step = a.get("step")
      push({
        kind: "op",
        op: name.slice("gpusvm.step.".length),
        thread: num(a.get("thread")),
        index: num(a.get("index")),
        ...(typeof step === "string" ? { step } : {}),
        ...err,
        durMs
      }, at)
      snapshot(span.actor, atMsOf(endTime))
      if (stepOf.get(span.actor) === step) stepOf.delete(span.actor)
    }
  }

  const onStep = (actor: string, step: string): void => void stepOf.set(actor, step)
  const tracer = Tracer.make({
    span(options) {
      const actor = currentActor()
      return new RecordingSpan(options, seq++, actor, onEnd, options.name.startsWith("gpusvm.step.") ? onStep : undefined)
    }
  })

  const mapping = (body: RunEventBody): void => {
    push(body, { actor: currentActor() })
  }

  const wrapCpu = (cpu: Cpu["Service"]): Cpu["Service"] => ({
    ...cpu,
    mmap: (o) =>
      Effect.tap(cpu.mmap(o), (addr) =>
        Effect.sync(() => mapping({ kind: "vma-created", start: addr, end: addr + o.length, prot: o.prot === undefined ? "rw-" : Prot.toString(o.prot) }))),
    munmap: (addr, length) => Effect.tap(cpu.munmap(addr, length), () => Effect.sync(() => mapping({ kind: "vma-removed", start: addr, end: addr + length }))),
    mprotect: (addr, length, prot) =>
      Effect.tap(cpu.mprotect(addr, length, prot), () =>
        Effect.sync(() => mapping({ kind: "vma-created", start: addr, end: addr + length, prot: Prot.toString(prot) }))),
    mremap: (addr, oldLength, newLength, o) =>
      Effect.tap(cpu.mremap(addr, oldLength, newLength, o), (to) =>
        Effect.sync(() => {
          if (o?.dontUnmap !== true && !(to === addr)) mapping({ kind: "vma-removed", start: addr, end: addr + oldLength })
          if (to === addr && newLength < oldLength) mapping({ kind: "vma-removed", start: addr + newLength, end: addr + oldLength })
          mapping({ kind: "vma-created", start: to, end: to + newLength })
        })),
    exit: Effect.tap(cpu.exit, () => Effect.sync(() => mapping({ kind: "vma-removed", start: 0, end: Number.MAX_SAFE_INTEGER })))
  })

  const factory = (f: StackFactory): StackFactory => (req) => {
    const inner = f(req)
    return Layer.fromBuild((memoMap, scope) =>
      Effect.map(
        Effect.provideService(Layer.buildWithMemoMap(inner, memoMap, scope), Tracer.Tracer, tracer),
        (ctx) => {
          svm = Context.get(ctx, GpuSvm)
          pagemaps = Context.get(ctx, DevicePagemaps).all
          machine = Context.get(ctx, Machine)
          const out = Context.add(ctx, Cpu, wrapCpu(Context.get(ctx, Cpu)))
          return Context.add(out, Tracer.Tracer, tracer) as typeof ctx
        }
      )
    ) as ReturnType<StackFactory>
  }

  const sorted = (): ReadonlyArray<RunEvent> => [...events].sort((a, b) => a.seq - b.seq)

  const finish = (result: ScenarioResult): ReadonlyArray<RunEvent> => {
    snapshot("main", lastAtMs)
    const at = { atMs: lastAtMs }
    for (const f of result.failures) {
      const m = /^threads\[(\d+)\]/.exec(f.step)
      const actor = m !== null ? `t${m[1]}` : f.step.startsWith("steps[") ? "t0" : "main"
      events.push({ kind: "failure", what: "expectation", detail: f.detail, step: f.step, seq: seq++, actor, atMs: at.atMs, realMs: Math.round((performance.now() - realStart) * 1000) / 1000 })
    }
    for (const v of result.violations) {
      events.push({ kind: "violation", what: v.invariant, detail: v.detail, seq: seq++, actor: "main", atMs: at.atMs, realMs: Math.round((performance.now() - realStart) * 1000) / 1000 })
    }
    return sorted()
  }

  return { tracer, factory, finish, events: sorted }
}
