/**
 * `FaultHandler`: the GPU page-fault handler of the seed's example 1
 * (kernel-semantics §10.1), as Xe structures it. Under the driver SVM lock,
 * loop: run the garbage collector; `rangeFindOrInsert`; migrate if the policy
 * says so (the driver unbinds the range first and marks the window as its own
 * migration); `rangeGetPages` (`MixedPages` → evict and retry; `BadAddress` /
 * `PermissionDenied` → retry, first dropping the range if an mprotect or munmap
 * split its VMA since it was created); bind under the notifier lock only if
 * `rangePagesValid`, else retry (`EAGAIN`).
 *
 * Bounded: at most `maxRetries` rounds, then `GpuFaultError` carrying the last
 * cause. An atomic fault the policy wants in device memory runs with
 * `devmemOnly`, up to `migrateTries` migration attempts with the timeslice
 * doubling per retry (Xe). The range is faulted read-only only when its VMA is
 * read-only; a write or atomic fault on a read-only VMA is a `GpuFaultError`
 * with cause `PermissionDenied`.
 *
 * @since 0.1.0
 */
import { Effect, Option, Result } from "effect"
import { GpuFaultError } from "../domain/Errors.ts"
import type { Range } from "../domain/Range.ts"
import type { DevicePagemapApi } from "../services/DevicePagemap.ts"
import type { Gpu, GpuPageFault } from "../services/Gpu.ts"
import type { GpuSvmApi } from "../services/GpuSvm.ts"
import type { Mm } from "../services/Mm.ts"
import type { DriverState } from "./DriverState.ts"
import * as GarbageCollector from "./GarbageCollector.ts"
import { countFault, countRetry } from "./Metrics.ts"
import type { MigrationPolicyApi } from "./MigrationPolicy.ts"

/** What a fault handler needs. */
export interface FaultEnv {
  readonly st: DriverState
  readonly svm: GpuSvmApi
  readonly gpu: Gpu["Service"]
  readonly mm: Mm["Service"]
  readonly policy: MigrationPolicyApi
}

const giveUp = (fault: GpuPageFault, reason: string, retries: number, last?: { readonly _tag: string; readonly message: string }) =>
  new GpuFaultError({
    reason,
    addr: fault.addr,
    retries,
    ...(last === undefined ? {} : { cause: last.message, causeTag: last._tag })
  })

/**
 * Migrates `range` into `target` as the driver's own migration: unbind it on the
 * GPU and drop its DMA mappings first (its own MIGRATE event will be skipped by
 * the invalidation callback), then `populateMm`.
 */
export const migrateRange = (env: FaultEnv, target: DevicePagemapApi, range: Range, timesliceMs: number) =>
  Effect.gen(function*() {
    const own = { start: range.start, end: range.end }
    env.st.ownMigrations.push(own)
    return yield* Effect.gen(function*() {
      yield* env.gpu.invalidate(range.start, range.end)
      yield* env.svm.rangeUnmapPages(range)
      yield* target.populateMm(range.start, range.end, { timesliceMs })
      env.st.counters.migrations++
    }).pipe(Effect.ensuring(Effect.sync(() => {
      const i = env.st.ownMigrations.indexOf(own)
      if (i >= 0) env.st.ownMigrations.splice(i, 1)
    })))
  })

/**
 * Binds the live range on the GPU under the notifier lock if its pages are
 * still valid (`driver_bind_range`); false means `EAGAIN`.
 */
export const bindRange = (env: FaultEnv, range: Range, readOnly: boolean): Effect.Effect<boolean> =>
  env.svm.withNotifierLock(Effect.gen(function*() {
    if (!(yield* env.svm.rangePagesValid(range))) return false
    const live = yield* env.svm.range(range)
    if (Option.isNone(live) || live.value.dmaAddr === undefined) return false
    yield* env.gpu.bind(live.value.start, live.value.end, live.value.dmaAddr, { readOnly })
    return true
  }))

/** Does `range` still lie inside one VMA? */
const fitsOneVma = (env: FaultEnv, range: Range): Effect.Effect<boolean> =>
  Effect.map(env.mm.vmaLookup(range.start), (v) => Option.isSome(v) && v.value.start <= range.start && range.end <= v.value.end)

/** Drops a stale range as the garbage collector would: evict what is in device memory, unbind, remove. */
const dropRange = (env: FaultEnv, range: Range): Effect.Effect<void> =>
  Effect.gen(function*() {
    const live = yield* env.svm.range(range)
    if (Option.isNone(live)) return
    if (live.value.flags.hasDevmemPages || live.value.flags.migrateDevmem) yield* Effect.ignore(env.svm.rangeEvict(range))
    yield* env.gpu.invalidate(range.start, range.end)
    yield* env.svm.rangeRemove(range)
    env.st.seen.delete(range.id)
  })

/** The fault loop, under the driver SVM lock. */
const loop = Effect.fnUntraced(function*(env: FaultEnv, fault: GpuPageFault) {
  const { st, svm, policy } = env
  const o = st.options
  const vma = yield* env.mm.vmaLookup(fault.addr)
  if (Option.isNone(vma)) return yield* giveUp(fault, "no VMA at the fault address", 0, { _tag: "VmaNotFound", message: "ENOENT" })
  const readOnly = !vma.value.prot.write
  if (readOnly && (fault.write || fault.atomic)) {
    return yield* giveUp(fault, "GPU write to a read-only mapping", 0, { _tag: "PermissionDenied", message: "EPERM" })
  }
  const devmemOnly = fault.atomic && policy.atomicNeedsVram
  let timeslice = o.timesliceMs
  let migrateLeft = devmemOnly ? o.migrateTries : 1
  let last: { readonly _tag: string; readonly message: string } | undefined
  for (let round = 0; round <= o.maxRetries; round++) {
    yield* GarbageCollector.run(st, svm, env.gpu)
    const ctx = {
      readOnly,
      devmemPossible: policy.devmemPossible,
      devmemOnly,
      checkPagesThreshold: o.checkPagesThreshold,
      timesliceMs: timeslice
    }
    const found = yield* Effect.result(svm.rangeFindOrInsert(fault.addr, o.gpuvaStart, o.gpuvaEnd, ctx))
    if (Result.isFailure(found)) return yield* giveUp(fault, "no GPU SVM range for the address", round, found.failure)
    const range = found.success
    if (!st.seen.has(range.id)) {
      st.seen.add(range.id)
      st.counters.rangesCreated++
    }
    if (migrateLeft > 0) {
      const target = yield* policy.target(svm, range, fault)
      if (target !== undefined) {
        const migrated = yield* Effect.result(migrateRange(env, target, range, timeslice))
        if (Result.isFailure(migrated)) {
          migrateLeft--
          st.counters.migrationFailures++
          last = migrated.failure
          if (devmemOnly) {
            if (migrateLeft === 0) return yield* giveUp(fault, "could not migrate to device memory for an atomic access", round, last)
            timeslice = timeslice === 0 ? 1 : timeslice * 2
            yield* countRetry(st.counters, migrated.failure.errno === "EBUSY" ? "EBUSY" : "EFAULT")
            continue
          }
        }
      }
    }
    const got = yield* Effect.result(svm.rangeGetPages(range, ctx))
    if (Result.isFailure(got)) {
      const e = got.failure
      last = e
      if (e._tag === "MixedPages") {
        yield* countRetry(st.counters, "EOPNOTSUPP")
        yield* svm.rangeEvict(range).pipe(Effect.ignore)
        continue
      }
      if (e._tag === "BadAddress" || e._tag === "PermissionDenied") {
        yield* countRetry(st.counters, e._tag === "BadAddress" ? "EFAULT" : "EPERM")
        // A range that no longer lies inside one VMA (an mprotect or munmap split
        // its VMA after it was created) can never be faulted as a whole again: drop
        // it, so that the next round creates a range inside the VMA as it is now.
        if (!(yield* fitsOneVma(env, range))) yield* dropRange(env, range)
        if (devmemOnly) {
          timeslice = timeslice === 0 ? 1 : timeslice * 2
          migrateLeft = Math.max(migrateLeft, 1)
        }
        continue
      }
      return yield* giveUp(fault, "get_pages failed", round, e)
    }
    if (yield* bindRange(env, range, readOnly)) return
    last = { _tag: "Again", message: "EAGAIN: pages invalidated before the bind" }
    yield* countRetry(st.counters, "EAGAIN")
  }
  return yield* giveUp(fault, "no progress", o.maxRetries, last)
})

/**
 * `FaultHandler.handle`: resolves one GPU page fault (the GPU then retries the
 * access). Takes the driver SVM lock. Errors: `GpuFaultError` (bounded).
 */
export const handle = (env: FaultEnv) => (fault: GpuPageFault): Effect.Effect<void, GpuFaultError> =>
  Effect.andThen(countFault(env.st.counters), env.st.svmLock.withPermits(1)(loop(env, fault)))
