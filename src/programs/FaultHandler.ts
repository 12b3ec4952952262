/**
 * `FaultHandler`: the GPU page-fault handler of the seed's example 1
 * (kernel-semantics §10.1), as Xe's `__xe_svm_handle_pagefault` structures
 * it. Under the driver SVM lock, loop: run the garbage collector;
 * `rangeFindOrInsert` (any error: give up); a devmem-only fault on a range
 * that can never migrate: `AccessDenied` at once (§11.10); spend one migration
 * try and migrate if the policy says so (the driver unbinds the range first
 * and marks the window as its own migration; a failure retries the fault, or
 * gives up if it was a devmem-only fault's last try); `rangeGetPages` (`MixedPages` →
 * evict and retry; `BadAddress` / `PermissionDenied` → retry); bind under the
 * notifier lock only if `rangePagesValid`, else retry (`EAGAIN`).
 *
 * Bounded: at most `maxRetries` rounds, then `GpuFaultError` carrying the last
 * cause. Migration tries (§11.6): 1 for a normal fault, `migrateTries` (3) for
 * a devmem-only (atomic) one, each round spending one whether it migrates or
 * not, so a retry after `EAGAIN` does not migrate again; a devmem-only fault
 * whose tries are spent gives up on the next get_pages failure. The timeslice
 * doubles per retry of a devmem-only fault.
 *
 * Read-only (§11.3): with the default writable mirror every fault is made
 * with `ctx.read_only` false, so a fault in a CPU VMA without write
 * permission is a `GpuFaultError` with cause `PermissionDenied` (from
 * find_or_insert); with `readOnlyMirror` reads there are faulted read-only
 * and writes refused up front.
 *
 * Madvise attributes (`Attributes.ts`): the fault's GPU VA window is the
 * madvise piece containing it (so no range crosses a piece); its atomic
 * attribute decides whether an atomic needs VRAM (`xe_vma_need_vram_for_atomic`;
 * `cpu` → `GpuFaultError` with cause `AccessDenied`, EACCES, at once), and the
 * policy gets its attributes (preferred location, migration policy).
 *
 * A range whose VMA mprotect split (§11.4) is retried until `maxRetries`, then
 * given up with reason `SPLIT_VMA_LIVELOCK`; `onSplitVma: "recreate"` drops it
 * so the next round creates one inside the VMA as it is now.
 *
 * @since 0.1.0
 */
import * as BufferObjects from "./BufferObjects.ts"
import { Effect, Option, Result } from "effect"
import { PAGE_SIZE } from "../domain/Address.ts"
import { AccessDenied, Again, BadAddress, GpuFaultError, type GpuFaultCause, PermissionDenied } from "../domain/Errors.ts"
import { NOT_NOW, type Now } from "../domain/Now.ts"
import type { Range } from "../domain/Range.ts"
import type { DevicePagemapApi } from "../services/DevicePagemap.ts"
import type { Gpu, GpuPageFault } from "../services/Gpu.ts"
import type { GpuSvmApi } from "../services/GpuSvm.ts"
import type { Hmm } from "../services/Hmm.ts"
import type { Mm } from "../services/Mm.ts"
import * as Attributes from "./Attributes.ts"
import * as DeviceExclusive from "./DeviceExclusive.ts"
import { checkPagesThresholdFor, type DriverState } from "./DriverState.ts"
import * as GarbageCollector from "./GarbageCollector.ts"
import * as Metrics from "./Metrics.ts"
import * as Spans from "./Spans.ts"
import type { MigrationPolicyApi } from "./MigrationPolicy.ts"

/**
 * What a fault handler needs.
 *
 * @category models
 */
export interface FaultEnv {
  readonly st: DriverState
  readonly svm: GpuSvmApi
  readonly gpu: Gpu["Service"]
  readonly mm: Mm["Service"]
  readonly policy: MigrationPolicyApi
  /** `make_device_exclusive` (kernel-semantics §11.17, the `systemAtomics: "exclusive"` path). */
  readonly hmm: Hmm["Service"]
}

const giveUp = (fault: GpuPageFault, reason: string, retries: number, last?: GpuFaultCause) =>
  GpuFaultError.of(fault.addr, reason, last, retries)

/**
 * Migrates `range` into `target` as the driver's own migration: unbind it on the
 * GPU and drop its DMA mappings first (its own MIGRATE event will be skipped by
 * the invalidation callback), then `populateMm`.
 *
 * @category functions
 */
export const migrateRange = (env: FaultEnv, target: DevicePagemapApi, range: Range, timesliceMs: number) =>
  Effect.gen(function*() {
    const own = { start: range.start, end: range.end }
    env.st.ownMigrations.push(own)
    return yield* Effect.gen(function*() {
      yield* GarbageCollector.unbind(env.gpu, range, env.st.metrics)
      yield* env.svm.rangeUnmapPages(range)
      yield* Spans.migrate("to_vram", range.start, range.end, target.populateMm(range.start, range.end, { timesliceMs }))
      Metrics.add(env.st.metrics, Metrics.migrationsTotal)
      Metrics.add(env.st.metrics, Metrics.bytesToVramTotal, range.end - range.start)
    }).pipe(Effect.ensuring(Effect.sync(() => {
      const i = env.st.ownMigrations.indexOf(own)
      if (i >= 0) env.st.ownMigrations.splice(i, 1)
    })))
  })

/**
 * Binds the live range on the GPU under the notifier lock if its pages are
 * still valid (`driver_bind_range`); false means `EAGAIN`.
 *
 * @category functions
 */
export const bindRange = (env: FaultEnv, range: Range, readOnly: boolean, taken?: readonly [number, number]): Effect.Effect<boolean> =>
  env.svm.withNotifierLock(bindLocked(env, range, readOnly, taken))

/**
 * The body of {@link bindRange}, under the notifier lock (no per-call generator closure: issue #16).
 * `taken`: the pages just made device-exclusive, the only system-memory PTEs given the atomic bit
 * (kernel-semantics §11.17, `DeviceExclusive.atomicWindow`).
 */
const bindLocked = Effect.fnUntraced(function*(env: FaultEnv, range: Range, readOnly: boolean, taken: readonly [number, number] | undefined) {
  // drm_gpusvm_range_pages_valid (hasDmaMapping || hasDevmemPages of the live range) read from the same
  // live range that is bound: one service step instead of two (issue #16)
  const live = yield* env.svm.range(range)
  if (Option.isNone(live) || !(live.value.flags.hasDmaMapping || live.value.flags.hasDevmemPages)) return false
  if (live.value.dmaAddr === undefined) return false
  const atomicWindow = DeviceExclusive.atomicWindow(env.st, taken)
  yield* env.gpu.bind(live.value.start, live.value.end, live.value.dmaAddr, atomicWindow === undefined ? { readOnly } : { readOnly, atomicWindow })
  return true
})

/**
 * {@link bindRange} in the calling step (issue #16): the notifier lock free and the GPU binding now, the
 * same check and bind as `bindLocked`; `NOT_NOW` (nothing bound) otherwise.
 */
const bindNow = (env: FaultEnv, range: Range, readOnly: boolean, taken: readonly [number, number] | undefined): Now<boolean> => {
  const { withNotifierLockNow, rangeNow } = env.svm
  const gpuBindNow = env.gpu.bindNow
  if (gpuBindNow === undefined || withNotifierLockNow === undefined || rangeNow === undefined) return NOT_NOW
  return withNotifierLockNow((): Now<boolean> => {
    const live = rangeNow(range)
    if (live === undefined || !(live.flags.hasDmaMapping || live.flags.hasDevmemPages) || live.dmaAddr === undefined) return false
    const atomicWindow = DeviceExclusive.atomicWindow(env.st, taken)
    const o = atomicWindow === undefined ? { readOnly } : { readOnly, atomicWindow }
    return gpuBindNow(live.start, live.end, live.dmaAddr, o) === NOT_NOW ? NOT_NOW : true
  })
}

/**
 * Was `range`'s VMA split by mprotect since the range was created
 * (kernel-semantics §11.4)? The range is still live and not unmapped (a munmap
 * split marks it unmapped and the collector removes it), but no longer lies
 * inside one VMA.
 */
const splitByMprotect = Effect.fnUntraced(function*(env: FaultEnv, range: Range) {
  const live = yield* env.svm.range(range)
  if (Option.isNone(live) || live.value.flags.unmapped) return false
  const v = yield* env.mm.vmaLookup(range.start)
  return !(Option.isSome(v) && v.value.start <= range.start && range.end <= v.value.end)
})

/** Drops a stale range as the garbage collector would: evict what is in device memory, unbind, remove. */
const dropRange = (env: FaultEnv, range: Range): Effect.Effect<void> =>
  Effect.gen(function*() {
    const live = yield* env.svm.range(range)
    if (Option.isNone(live)) return
    if (live.value.flags.hasDevmemPages || live.value.flags.migrateDevmem) yield* Effect.ignore(env.svm.rangeEvict(range))
    yield* GarbageCollector.unbind(env.gpu, range, env.st.metrics)
    yield* env.svm.rangeRemove(range)
    env.st.seen.delete(range.id)
  })

/**
 * The §11.4 give-up reason of a fault that kept failing on a range whose VMA mprotect split.
 *
 * @category constants
 */
export const SPLIT_VMA_LIVELOCK = "livelock: range spans a VMA split by mprotect"

const findFailed = (e: GpuFaultCause): string =>
  e._tag === "PermissionDenied"
    ? "GPU fault in a CPU mapping without write permission (writable mirror)"
    : "no GPU SVM range for the address"

const doubled = (ms: number): number => (ms === 0 ? 1 : ms * 2)

/** The `Result` of a get_pages done by its fast path. */
const PAGES_NOW = Result.succeed<void>(undefined)

/**
 * One round of {@link loop} in the calling step (issue #16): the common fault — a plain mirror, no
 * collector work queued, no atomic needing device memory or device-exclusive access, a policy that
 * decides now not to migrate — found or created, faulted in, mapped and bound synchronously through the
 * services' fast paths. True when the fault is resolved; false when the loop must run (the calls made so
 * far left only what the loop's own calls would leave: a range found or created, pages faulted in).
 * Caller: the driver SVM lock free now (`svmLockFreeNow`) and no tracer installed.
 */
const fastFault = (env: FaultEnv, fault: GpuPageFault): boolean => {
  const { st, svm, policy } = env
  const o = st.options
  if (!st.vmBinds.plain || o.readOnlyMirror || st.gcQueue.length > 0 || policy.targetNow === undefined) return false
  if (fault.atomic && o.systemAtomics === "exclusive") return false
  const piece = Attributes.pieceAt(st, fault.addr)
  if (Attributes.needVramForAtomic(st, piece.attrs, fault.atomic, fault.addr) !== false) return false
  const ctx = {
    readOnly: false,
    devmemPossible: policy.devmemPossible,
    devmemOnly: false,
    checkPagesThreshold: checkPagesThresholdFor(o, policy.devmemPossible),
    timesliceMs: o.timesliceMs
  }
  const { rangeFindOrInsertNow, rangeGetPagesNow } = svm
  if (rangeFindOrInsertNow === undefined || rangeGetPagesNow === undefined) return false
  const range = rangeFindOrInsertNow(fault.addr, piece.start, piece.end, ctx)
  if (range === NOT_NOW) return false
  if (!st.seen.has(range.id)) {
    st.seen.add(range.id)
    Metrics.add(st.metrics, Metrics.rangesCreatedTotal)
  }
  // the round's one migration try (§11.6): decided now only when the policy stays in place
  if (policy.targetNow(svm, range, { write: fault.write, atomic: fault.atomic, devmemOnly: false, attrs: piece.attrs }) !== undefined) return false
  if (rangeGetPagesNow(range, ctx) === NOT_NOW) return false
  return bindNow(env, range, false, undefined) === true
}

/**
 * The fault loop, under the driver SVM lock; `__xe_svm_handle_pagefault` step
 * by step.
 */
const loop = Effect.fnUntraced(function*(env: FaultEnv, fault: GpuPageFault, exclusiveEnd: number | undefined, quiet: boolean) {
  const { st, svm, policy } = env
  const o = st.options
  // kernel-semantics §11.17: a BO-bound window is the BO's GPU VMA (rebind it, never an SVM range);
  // where the CPU-address mirror is unbound there is no GPU VMA at all
  if (!st.vmBinds.plain) {
    const where = BufferObjects.classify(st, fault.addr)
    if (where === "bo") {
      yield* BufferObjects.rebindAt(st, env.gpu, fault.addr)
      return exclusiveEnd ?? fault.addr
    }
    if (where === "unmirrored") {
      return yield* giveUp(fault, "no GPU VMA: the CPU-address mirror is unbound here", 0, new BadAddress({ reason: "no GPU VMA at the address (mirror unbound)", addr: fault.addr }))
    }
  }
  // §11.17: an atomic that the device can only do on system memory through device-exclusive access
  // (`systemAtomics: "exclusive"`, or the explicit request `exclusiveEnd`), as nouveau does.
  const explicit = exclusiveEnd !== undefined
  const exclusive = explicit || (fault.atomic && o.systemAtomics === "exclusive")
  // §11.3: `ctx.read_only` is the GPU mirror's, not the CPU VMA's. With the
  // default writable mirror it is false and find_or_insert refuses (EPERM) any
  // fault in a CPU VMA without write permission; `readOnlyMirror` faults reads
  // there read-only and refuses writes up front, as Xe refuses a write in a
  // read-only GPU VMA.
  let readOnly = false
  if (o.readOnlyMirror) {
    const vma = yield* env.mm.vmaLookup(fault.addr)
    if (Option.isSome(vma) && !vma.value.prot.write) {
      if (fault.write || fault.atomic) {
        return yield* giveUp(fault, "GPU write to a read-only mirror", 0, new PermissionDenied({ reason: "GPU write to a read-only mirror", addr: fault.addr }))
      }
      readOnly = true
    }
  }
  // xe_vma_need_vram_for_atomic: the madvise atomic attribute of the fault's
  // piece decides whether an atomic needs VRAM; `cpu` refuses it (EACCES).
  const need = Attributes.needVramForAtomic(st, Attributes.pieceAt(st, fault.addr).attrs, fault.atomic, fault.addr)
  if (need instanceof AccessDenied) return yield* giveUp(fault, "GPU atomic where the madvise atomic attribute is cpu", 0, need)
  const devmemOnly = need && policy.atomicNeedsVram && !exclusive
  // §11.8: Xe's `devmem_possible ? SZ_64K : 0`, unless the user set one.
  const checkPagesThreshold = checkPagesThresholdFor(o, policy.devmemPossible)
  let timeslice = o.timesliceMs
  // §11.6: Xe's migrate_try_count, spent by every round that reaches the
  // migration check, whether it migrates, fails or finds nothing to do.
  // the explicit request takes the pages where they are (dmirror_exclusive does not migrate)
  let migrateLeft = devmemOnly ? o.migrateTries : explicit ? 0 : 1
  let last: GpuFaultCause | undefined
  let split = false
  for (let round = 0; round <= o.maxRetries; round++) {
    // an empty queue is a no-op run: skipped here, two Effect steps less per round (issue #16)
    if (st.gcQueue.length > 0) yield* GarbageCollector.run(st, svm, env.gpu)
    const ctx = {
      readOnly,
      devmemPossible: policy.devmemPossible,
      devmemOnly,
      checkPagesThreshold,
      timesliceMs: timeslice
    }
    // The GPU VMA of the fault is its madvise piece (re-read each round: the
    // collector may have reset attributes): ranges never cross a piece.
    const piece = Attributes.pieceAt(st, fault.addr)
    // issue #16: each call's synchronous fast path first (NOT_NOW: the Effect version, with its points)
    let range = svm.rangeFindOrInsertNow?.(fault.addr, piece.start, piece.end, ctx) ?? NOT_NOW
    if (range === NOT_NOW) {
      const found = yield* Effect.result(svm.rangeFindOrInsert(fault.addr, piece.start, piece.end, ctx))
      if (Result.isFailure(found)) return yield* giveUp(fault, findFailed(found.failure), round, found.failure)
      range = found.success
    }
    if (!st.seen.has(range.id)) {
      st.seen.add(range.id)
      Metrics.add(st.metrics, Metrics.rangesCreatedTotal)
    }
    // §11.10: an access that needs device memory on a range that can never
    // migrate (file, shmem, hugetlb) is EACCES at once, without trying.
    if (devmemOnly && !range.flags.migrateDevmem) {
      const denied = new AccessDenied({ reason: "device memory needed (devmem_only) but the range cannot migrate", addr: fault.addr })
      return yield* giveUp(fault, "atomic access needs device memory the range can never use", round, denied)
    }
    // §11.6: `--migrate_try_count >= 0 && needs_migrate_to_vram(...)`.
    migrateLeft--
    if (migrateLeft >= 0) {
      const target = yield* policy.target(svm, range, { write: fault.write, atomic: fault.atomic, devmemOnly, attrs: piece.attrs })
      if (target !== undefined) {
        const migrated = yield* Effect.result(migrateRange(env, target, range, timeslice))
        if (devmemOnly) timeslice = doubled(timeslice)
        if (Result.isFailure(migrated)) {
          Metrics.add(st.metrics, Metrics.migrationFailuresTotal)
          last = migrated.failure
          if (devmemOnly && migrateLeft === 0) {
            return yield* giveUp(fault, "could not migrate to device memory for an atomic access", round, last)
          }
          // Xe: "VRAM allocation failed, falling back to retrying fault" (a normal
          // fault has no try left then, so the next round stays in system memory).
          Metrics.countRetry(st.metrics, migrated.failure.errno === "EBUSY" ? "EBUSY" : "EFAULT")
          continue
        }
      }
    }
    const got = quiet && svm.rangeGetPagesNow !== undefined && svm.rangeGetPagesNow(range, ctx) !== NOT_NOW
      ? PAGES_NOW
      : yield* Effect.result(Spans.getPages(range.start, range.end, svm.rangeGetPages(range, ctx)))
    if (Result.isFailure(got)) {
      const e = got.failure
      last = e
      if (e._tag === "MixedPages" || e._tag === "BadAddress" || e._tag === "PermissionDenied") {
        // "Corner where CPU mappings have changed": retry, unless a devmem-only
        // fault has no migration try left.
        if (devmemOnly) timeslice = doubled(timeslice)
        if (devmemOnly && migrateLeft <= 0) {
          return yield* giveUp(fault, "get_pages failed and no migration try is left for an atomic access", round, e)
        }
        Metrics.countRetry(st.metrics, e._tag === "MixedPages" ? "EOPNOTSUPP" : e._tag === "BadAddress" ? "EFAULT" : "EPERM")
        split = false
        if (e._tag === "MixedPages") {
          yield* svm.rangeEvict(range).pipe(Effect.ignore)
        } else if (yield* splitByMprotect(env, range)) {
          // §11.4: find_or_insert will keep returning this range and get_pages
          // keep failing on the part the CPU VMA no longer allows. Xe retries
          // (a livelock, bounded here); `recreate` drops it instead.
          if (o.onSplitVma === "recreate") yield* dropRange(env, range)
          else split = true
        }
        continue
      }
      return yield* giveUp(fault, "get_pages failed", round, e)
    }
    let taken: readonly [number, number] | undefined
    if (exclusive) {
      const t = yield* Effect.result(takeExclusive(env, range, fault, exclusiveEnd))
      if (Result.isFailure(t)) {
        last = t.failure
        if (t.failure._tag !== "Busy") return yield* giveUp(fault, "make_device_exclusive failed", round, last)
        Metrics.countRetry(st.metrics, "EBUSY")
        continue
      }
      taken = t.success
    }
    const boundNow = quiet ? bindNow(env, range, readOnly, taken) : NOT_NOW
    if (boundNow === NOT_NOW ? yield* Spans.bind(range.start, range.end, bindRange(env, range, readOnly, taken)) : boundNow) return range.end
    last = new Again({ reason: "pages invalidated before the bind", addr: fault.addr })
    split = false
    if (devmemOnly) timeslice = doubled(timeslice)
    Metrics.countRetry(st.metrics, "EAGAIN")
  }
  return yield* giveUp(fault, split ? SPLIT_VMA_LIVELOCK : "no progress", o.maxRetries, last)
})

/**
 * After get_pages, for an exclusive fault (kernel-semantics §11.17): the pages
 * to take — the faulting page, or `[fault.addr, exclusiveEnd)` clipped to the
 * range for the explicit request — taken with `make_device_exclusive` when the
 * range is in system memory. Returns the window taken (to bind with the atomic
 * bit), `undefined` when the range is in device memory (atomics there are
 * native); fails with the call's typed error.
 */
const takeExclusive = Effect.fnUntraced(function*(env: FaultEnv, range: Range, fault: GpuPageFault, exclusiveEnd: number | undefined) {
  const live = yield* env.svm.range(range)
  if (Option.isSome(live) && live.value.flags.hasDevmemPages) return undefined
  const page = Math.floor(fault.addr / PAGE_SIZE) * PAGE_SIZE
  const end = exclusiveEnd === undefined ? page + PAGE_SIZE : Math.min(range.end, exclusiveEnd)
  yield* DeviceExclusive.take(env.st, env.hmm, env.mm, page, end)
  const window: readonly [number, number] = [page, end]
  return window
})

/**
 * `FaultHandler.handle`: resolves one GPU page fault (the GPU then retries the
 * access). Takes the driver SVM lock. Errors: `GpuFaultError` (bounded).
 *
 * @category functions
 */
export const handle = (env: FaultEnv) => (fault: GpuPageFault): Effect.Effect<void, GpuFaultError> =>
  Effect.withFiber((fiber) => {
    Metrics.add(env.st.metrics, Metrics.faultsTotal)
    // issue #16: the common fault resolved in this step when nothing can interleave (see fastFault)
    const quiet = !Spans.tracing(fiber)
    if (quiet && env.st.svmLockFreeNow() && fastFault(env, fault)) return Effect.void
    return env.st.withSvmLock(Spans.fault(env.st.metrics, fault, Effect.asVoid(loop(env, fault, undefined, quiet))))
  })

/**
 * The explicit device-exclusive request over `[start, end)` (kernel-semantics
 * §11.17; the scenario step `make-exclusive`, `lib/test_hmm.c`'s
 * `HMM_DMIRROR_EXCLUSIVE`): range by range, under the driver SVM lock, the
 * fault loop of an atomic fault at the window's next page that takes every
 * page of the window inside the range with `make_device_exclusive` after
 * get_pages and binds them with the atomic bit; no migration. Not counted as
 * a GPU fault. Errors: `GpuFaultError` (bounded, as a fault).
 *
 * @category functions
 * @since 0.3.0
 */
export const makeExclusive = (env: FaultEnv) => (start: number, end: number): Effect.Effect<void, GpuFaultError> =>
  DeviceExclusive.makeExclusive(
    (addr, windowEnd) => env.st.withSvmLock(loop(env, { addr, write: true, atomic: true }, windowEnd, false)),
    start,
    end
  )
